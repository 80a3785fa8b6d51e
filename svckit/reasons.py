"""The catalogue of reason codes: every UPPER_SNAKE ``reason`` a service or the gateway can answer, once.

A reason names one fault, the same at the gateway and in the services, so a client branches on one
vocabulary. Each member carries its one-line meaning and, where fixed, the category it is raised with
(gRPC status and HTTP status); gateway-only codes carry their HTTP status alone.

Raise sites may pass the string literal (``InvalidArgument("MIXED_CURRENCIES", ...)``) or the member;
tests/test_reasons.py finds every reason raised in the source and fails on one missing here, or on a
member nothing raises. docs/errors.md is generated from this module: ``python -m svckit.reasons_doc``.
"""

from __future__ import annotations

import enum
from typing import Self

from svckit.errors import ErrorKind

_K = ErrorKind


class Reason(enum.StrEnum):
    meaning: str
    kind: ErrorKind | None
    """The category it is always raised with; None when only the gateway answers it (see http_status)."""
    http_status: int | None
    """The HTTP status of the problem+json answer, where fixed."""

    @staticmethod
    def _generate_next_value_(name: str, start: int, count: int, last_values: list[str]) -> str:
        return name  # the code is the member's name, so it is written once

    def __new__(cls, code: str, meaning: str, kind: ErrorKind | int | None) -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        member.kind = kind if isinstance(kind, ErrorKind) else None
        member.http_status = kind.http_status if isinstance(kind, ErrorKind) else kind
        return member

    # -- request shape and fields ---------------------------------------------------------------------
    INVALID_REQUEST = enum.auto(), "the body is not valid JSON or does not match the schema", 400
    BAD_REQUEST = enum.auto(), "the HTTP request is malformed (refused by the web framework)", 400
    INVALID_CHARACTER = enum.auto(), "the body contains a control character or unpaired surrogate", 400
    DUPLICATE_JSON_KEY = enum.auto(), "a JSON object in the body names the same key twice", 400
    INVALID_HEADER = enum.auto(), "a header value is not printable ASCII", _K.INVALID_ARGUMENT
    MISSING_FIELD = enum.auto(), "a required field is missing or empty", _K.INVALID_ARGUMENT
    INVALID_ID = enum.auto(), "an id is not 1-128 letters, digits or _.:-", _K.INVALID_ARGUMENT
    INVALID_URL = enum.auto(), "a redirect URL is not an http(s) URL", _K.INVALID_ARGUMENT
    INVALID_TEXT = enum.auto(), "a text field contains a NUL character", _K.INVALID_ARGUMENT
    TEXT_TOO_LONG = enum.auto(), "a text field is longer than its limit", _K.INVALID_ARGUMENT
    TOO_MANY_METADATA_PAIRS = enum.auto(), "more metadata pairs than allowed", _K.INVALID_ARGUMENT
    INVALID_PAGE_SIZE = enum.auto(), "page_size is negative or above the maximum", _K.INVALID_ARGUMENT
    INVALID_PAGE_TOKEN = enum.auto(), "page_token was not issued by this listing", _K.INVALID_ARGUMENT
    INVALID_FILTER = (
        enum.auto(),
        "a listing's filter is malformed: an unknown state, an empty or unreadable time range",
        _K.INVALID_ARGUMENT,
    )
    # -- money ----------------------------------------------------------------------------------------
    INVALID_AMOUNT = enum.auto(), "an amount is not a plain non-negative decimal string", _K.INVALID_ARGUMENT
    AMOUNT_NOT_A_STRING = enum.auto(), "an amount is a JSON number, not a decimal string", _K.INVALID_ARGUMENT
    AMOUNT_NOT_POSITIVE = enum.auto(), "an amount is zero or negative", _K.INVALID_ARGUMENT
    AMOUNT_TOO_LARGE = (
        enum.auto(),
        "an amount is above the configured or representable limit",
        _K.INVALID_ARGUMENT,
    )
    AMOUNT_PRECISION_EXCEEDED = (
        enum.auto(),
        "an amount has more decimals than its currency (or the PSP) allows",
        _K.INVALID_ARGUMENT,
    )
    INVALID_CURRENCY = enum.auto(), "a currency is not a 3-letter code", _K.INVALID_ARGUMENT
    UNKNOWN_CURRENCY = enum.auto(), "a currency is not an ISO 4217 code", _K.INVALID_ARGUMENT
    CURRENCY_MISMATCH = enum.auto(), "an amount's currency differs from its account's", _K.INVALID_ARGUMENT
    MIXED_CURRENCIES = (
        enum.auto(),
        "the orders of one checkout use more than one currency",
        _K.INVALID_ARGUMENT,
    )
    # -- payments -------------------------------------------------------------------------------------
    NO_PAYMENT_ORDERS = enum.auto(), "a checkout has no payment order", _K.INVALID_ARGUMENT
    TOO_MANY_LINE_ITEMS = (
        enum.auto(),
        "a payment order has more line items than allowed (20)",
        _K.INVALID_ARGUMENT,
    )
    INVALID_LINE_ITEM_NAME = (
        enum.auto(),
        "a line item's name is empty, longer than 100 characters or not one printable line",
        _K.INVALID_ARGUMENT,
    )
    INVALID_LINE_ITEM_QUANTITY = enum.auto(), "a line item's quantity is not 1-9999", _K.INVALID_ARGUMENT
    TOO_MANY_ORDERS = (
        enum.auto(),
        "a checkout has more orders than the payment service allows",
        _K.INVALID_ARGUMENT,
    )
    DUPLICATE_PAYMENT_ORDER_ID = (
        enum.auto(),
        "a checkout names one payment_order_id twice",
        _K.INVALID_ARGUMENT,
    )
    INVALID_SELLER_ACCOUNT = enum.auto(), "a seller account is not a valid name", _K.INVALID_ARGUMENT
    INVALID_PAYMENT_METHOD = enum.auto(), "payment_method is not a PSP token (pm_...)", _K.INVALID_ARGUMENT
    INVALID_REFUND_REASON = enum.auto(), "a refund reason is not one the PSP knows", _K.INVALID_ARGUMENT
    INVALID_PAYLOAD = enum.auto(), "a signed PSP webhook body is not a PSP event", _K.INVALID_ARGUMENT
    CHECKOUT_ALREADY_EXISTS = enum.auto(), "the checkout_id was used by another request", _K.ALREADY_EXISTS
    PAYMENT_ORDER_ALREADY_EXISTS = (
        enum.auto(),
        "a payment_order_id was used by another checkout",
        _K.ALREADY_EXISTS,
    )
    CHECKOUT_NOT_FOUND = enum.auto(), "no checkout with this id", _K.NOT_FOUND
    PAYMENT_ORDER_NOT_FOUND = enum.auto(), "no payment order with this id", _K.NOT_FOUND
    ORDER_NOT_IN_REVIEW = (
        enum.auto(),
        "the payment order is not waiting for a risk review",
        _K.FAILED_PRECONDITION,
    )
    ORDER_NOT_CAPTURED = (
        enum.auto(),
        "the payment order is not captured: it has no settlement to re-drive",
        _K.FAILED_PRECONDITION,
    )
    ORDER_NOT_REFUNDABLE = (
        enum.auto(),
        "the payment order is not captured, or fully refunded",
        _K.FAILED_PRECONDITION,
    )
    REFUND_EXCEEDS_CAPTURED = (
        enum.auto(),
        "the refund is larger than what is still refundable",
        _K.FAILED_PRECONDITION,
    )
    PSP_PAYMENT_UNKNOWN = (
        enum.auto(),
        "the PSP does not know the payment this order was captured with: an operator must reconcile it",
        _K.FAILED_PRECONDITION,
    )
    CHECKOUT_MISSING = enum.auto(), "a stored payment order has no checkout (a bug)", _K.INTERNAL
    PAYMENT_ORDER_MISSING = enum.auto(), "a stored refund has no payment order (a bug)", _K.INTERNAL
    # -- pay-outs -------------------------------------------------------------------------------------
    INVALID_PERIOD = (
        enum.auto(),
        "a period is not a month (2026-11) or an ISO week (2026-W47)",
        _K.INVALID_ARGUMENT,
    )
    PERIOD_NOT_ENDED = enum.auto(), "the period has not ended yet (or is in the future)", _K.INVALID_ARGUMENT
    INVALID_PSP_ACCOUNT = (
        enum.auto(),
        "a PSP account is not a connected account id (acct_...)",
        _K.INVALID_ARGUMENT,
    )
    PSP_ACCOUNT_UNKNOWN = enum.auto(), "the PSP has no connected account with this id", _K.INVALID_ARGUMENT
    INVALID_ANCHOR_DAY = (
        enum.auto(),
        "anchor_day is outside the schedule's month or week",
        _K.INVALID_ARGUMENT,
    )
    NEGATIVE_MINIMUM = enum.auto(), "a minimum payout is negative", _K.INVALID_ARGUMENT
    DUPLICATE_MINIMUM = enum.auto(), "minimum_payouts names one currency twice", _K.INVALID_ARGUMENT
    INVALID_RESERVE = enum.auto(), "the rolling reserve's share or days are out of range", _K.INVALID_ARGUMENT
    INVALID_UPDATE_FIELDS = (
        enum.auto(),
        "update_fields is empty or names a field that cannot change",
        _K.INVALID_ARGUMENT,
    )
    INVALID_SELLER_STATE = enum.auto(), "a seller state an update cannot set", _K.INVALID_ARGUMENT
    DUPLICATE_SELLER = enum.auto(), "a run names one seller twice", _K.INVALID_ARGUMENT
    SELLER_ALREADY_EXISTS = enum.auto(), "the seller is registered already", _K.ALREADY_EXISTS
    SELLER_NOT_FOUND = enum.auto(), "no registered seller with this id", _K.NOT_FOUND
    WRITE_OFF_EXCEEDS_DEBT = (
        enum.auto(),
        "a debt write-off is larger than what the seller owes in that currency",
        _K.FAILED_PRECONDITION,
    )
    PAYOUT_RUN_NOT_FOUND = enum.auto(), "no pay-out run with this id", _K.NOT_FOUND
    PAYOUT_NOT_FOUND = enum.auto(), "no pay-out with this id", _K.NOT_FOUND
    SELLER_BLOCKED = (
        enum.auto(),
        "the seller is blocked by risk: pay-outs cannot be resumed",
        _K.FAILED_PRECONDITION,
    )
    ILLEGAL_PAYOUT_TRANSITION = enum.auto(), "a pay-out state change the table forbids (a bug)", _K.INTERNAL
    STATEMENT_DOES_NOT_ADD_UP = (
        enum.auto(),
        "a statement's lines do not add up to the ledger's balance (a bug)",
        _K.INTERNAL,
    )
    # -- ledger ---------------------------------------------------------------------------------------
    INVALID_ACCOUNT_NAME = enum.auto(), "an account name is not type:owner:currency", _K.INVALID_ARGUMENT
    INVALID_ACCOUNT_TYPE = enum.auto(), "an account type is not one the ledger knows", _K.INVALID_ARGUMENT
    INVALID_DIRECTION = enum.auto(), "an entry's direction is not debit or credit", _K.INVALID_ARGUMENT
    TOO_FEW_ENTRIES = enum.auto(), "a transaction has fewer than two entries", _K.INVALID_ARGUMENT
    TOO_MANY_ENTRIES = enum.auto(), "a transaction has more entries than allowed", _K.INVALID_ARGUMENT
    UNBALANCED_TRANSACTION = enum.auto(), "debits and credits differ in some currency", _K.INVALID_ARGUMENT
    ACCOUNT_ALREADY_EXISTS = enum.auto(), "an account with this name exists", _K.ALREADY_EXISTS
    ACCOUNT_NOT_FOUND = enum.auto(), "no account with this name", _K.NOT_FOUND
    TRANSACTION_NOT_FOUND = enum.auto(), "no transaction with this id", _K.NOT_FOUND
    ACCOUNT_CLOSED = enum.auto(), "the account is closed and takes no new entries", _K.FAILED_PRECONDITION
    INSUFFICIENT_BALANCE = (
        enum.auto(),
        "the posting would take a non-negative account below zero",
        _K.FAILED_PRECONDITION,
    )
    BALANCE_OVERFLOW = enum.auto(), "the posting would overflow an account balance", _K.FAILED_PRECONDITION
    ALREADY_REVERSED = enum.auto(), "the transaction has been reversed already", _K.FAILED_PRECONDITION
    CANNOT_REVERSE_REVERSAL = enum.auto(), "a reversal cannot itself be reversed", _K.FAILED_PRECONDITION
    TRANSIENT_CONFLICT = enum.auto(), "a concurrent write conflicted; retry with the same key", _K.UNAVAILABLE
    # -- wallet ---------------------------------------------------------------------------------------
    INVALID_SELLER_ID = enum.auto(), "a seller_id is not a valid name", _K.INVALID_ARGUMENT
    INVALID_REFERENCE_KIND = enum.auto(), "reference.kind is missing or unknown", _K.INVALID_ARGUMENT
    INVALID_REFERENCE_ID = enum.auto(), "reference.id is not a valid id", _K.INVALID_ARGUMENT
    INVALID_RESERVATION_ID = enum.auto(), "a reservation_id is not rsv_<32 hex digits>", _K.INVALID_ARGUMENT
    OPERATION_MISSING = enum.auto(), "a batch item names no operation", _K.INVALID_ARGUMENT
    INSUFFICIENT_FUNDS = enum.auto(), "the wallet's available balance is too small", _K.FAILED_PRECONDITION
    BALANCE_LIMIT_EXCEEDED = enum.auto(), "the wallet balance would pass its limit", _K.FAILED_PRECONDITION
    RESERVATION_EXHAUSTED = (
        enum.auto(),
        "the reservation has less left than the capture or release asks",
        _K.FAILED_PRECONDITION,
    )
    RESERVATION_NOT_FOUND = enum.auto(), "no reservation with this id", _K.NOT_FOUND
    ILLEGAL_RESERVATION_TRANSITION = (
        enum.auto(),
        "a reservation state change the rules forbid (a bug)",
        _K.INTERNAL,
    )
    WALLET_NOT_WRITTEN = enum.auto(), "a wallet row was not updated (a bug)", _K.INTERNAL
    WALLET_RESERVED_BELOW_RESERVATIONS = (
        enum.auto(),
        "a wallet's reserved total is below its open reservations (a bug)",
        _K.INTERNAL,
    )
    BATCH_NOT_WRITTEN = enum.auto(), "a batch's rows were not all written (a bug)", _K.INTERNAL
    DUPLICATE_BATCH_KEY = enum.auto(), "two items of one coalesced batch share a key (a bug)", _K.INTERNAL
    # -- reconciliation -------------------------------------------------------------------------------
    SETTLEMENT_FILE_REFUSED = (
        enum.auto(),
        "the uploaded or fetched file is not a settlement report (empty, not UTF-8, other columns or delimiter)",
        _K.INVALID_ARGUMENT,
    )
    SETTLEMENT_REPORT_UNAVAILABLE = (
        enum.auto(),
        "the PSP's report run failed or stayed pending, or its file could not be fetched; retry later",
        _K.UNAVAILABLE,
    )
    SETTLEMENT_DAY_NOT_AVAILABLE = (
        enum.auto(),
        "the PSP has no report for this day (before its data starts, or not over yet)",
        _K.INVALID_ARGUMENT,
    )
    RUN_NOT_FOUND = enum.auto(), "no settlement reconciliation run has this id", _K.NOT_FOUND
    MISMATCH_NOT_FOUND = enum.auto(), "no reconciliation mismatch has this id", _K.NOT_FOUND
    INTERNAL_CHECKS_UNAVAILABLE = (
        enum.auto(),
        "this reconciliation service was built without the per-record checks' sources",
        _K.FAILED_PRECONDITION,
    )
    MISMATCH_NOT_OPEN = enum.auto(), "the mismatch was resolved or auto-fixed already", _K.FAILED_PRECONDITION
    INVALID_RESOLUTION_CODE = (
        enum.auto(),
        "a resolution code is not adjusted_in_ledger, written_off, psp_contacted or false_positive",
        _K.INVALID_ARGUMENT,
    )
    # -- batches (ledger and wallet) ------------------------------------------------------------------
    TOO_MANY_ITEMS = enum.auto(), "a batch has more items than allowed", _K.INVALID_ARGUMENT
    DUPLICATE_ITEM_KEY = enum.auto(), "two items of one batch share an idempotency key", _K.INVALID_ARGUMENT
    SHORTFALL_NOT_IN_BATCH = (
        enum.auto(),
        "a batch debit asks for allow_shortfall (single Debit only)",
        _K.INVALID_ARGUMENT,
    )
    # -- idempotency ----------------------------------------------------------------------------------
    IDEMPOTENCY_KEY_MISSING = enum.auto(), "a mutating call has no idempotency key", _K.INVALID_ARGUMENT
    IDEMPOTENCY_KEY_TOO_LONG = enum.auto(), "the idempotency key is longer than allowed", _K.INVALID_ARGUMENT
    IDEMPOTENCY_KEY_IN_USE = enum.auto(), "a concurrent request holds this key; retry later", _K.ABORTED
    IDEMPOTENCY_KEY_REUSED = (
        enum.auto(),
        "the key was used for a different request",
        _K.UNPROCESSABLE,
    )
    GROUP_TRANSACTION_FAILED = (
        enum.auto(),
        "a coalesced group's transaction failed; retry the same request",
        _K.UNAVAILABLE,
    )
    # -- PSP events and the events admin --------------------------------------------------------------
    INVALID_SIGNATURE = enum.auto(), "a PSP webhook signature is missing, wrong or stale", None
    INVALID_DEAD_LETTER_ID = enum.auto(), "a dead-letter id is malformed", _K.INVALID_ARGUMENT
    DISCARD_REASON_REQUIRED = enum.auto(), "discarding a dead letter needs a reason", _K.INVALID_ARGUMENT
    DEAD_LETTER_NOT_FOUND = enum.auto(), "no dead letter with this id", _K.NOT_FOUND
    # -- callers, authentication and limits -----------------------------------------------------------
    UNAUTHENTICATED = enum.auto(), "no API key, or an unknown or revoked one", 401
    FORBIDDEN = enum.auto(), "the API key lacks the scope this route needs", 403
    CALLER_NOT_ALLOWED = enum.auto(), "the mTLS identity may not call this method", _K.PERMISSION_DENIED
    RATE_LIMITED = enum.auto(), "too many requests (or failed authentications); see Retry-After", 429
    OVERLOADED = enum.auto(), "the gateway is at its concurrency limit; retry later", 503
    PAYLOAD_TOO_LARGE = enum.auto(), "the body is larger than the gateway accepts", 413
    UNSUPPORTED_MEDIA_TYPE = enum.auto(), "the body is not UTF-8 application/json", 415
    NOT_FOUND = enum.auto(), "no such route", 404
    METHOD_NOT_ALLOWED = enum.auto(), "the route does not take this HTTP method", 405
    NOT_ACCEPTABLE = enum.auto(), "the Accept header allows no type the route answers", 406
    HTTP_ERROR = enum.auto(), "another HTTP-level refusal by the web framework", None
    # -- faults ---------------------------------------------------------------------------------------
    AUTHENTICATION_UNAVAILABLE = enum.auto(), "API keys cannot be checked right now", 503
    RATE_LIMITER_UNAVAILABLE = enum.auto(), "the rate limiter's store is unreachable", 503
    UPSTREAM_UNAVAILABLE = enum.auto(), "a service the call needs is unreachable; retry", _K.UNAVAILABLE
    DATABASE_UNAVAILABLE = (
        enum.auto(),
        "the database is unreachable or dropped the connection (a restart, a failover); retry",
        _K.UNAVAILABLE,
    )
    UPSTREAM_ERROR = enum.auto(), "a service the call needs failed without a reason", _K.INTERNAL
    UPSTREAM_REFUSED_CALLER = (
        enum.auto(),
        "a service refused the gateway's own identity (deployment fault)",
        _K.INTERNAL,
    )
    INTERNAL = enum.auto(), "an unexpected error; quote the request id", _K.INTERNAL
