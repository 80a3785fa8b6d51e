"""The ledger's wire format, owned by the transport: protobuf messages to and from domain values, and
the stored answers of postings (the bytes an idempotency record keeps).

A posting's stored answer is a ``PostTransactionResponse``. For speed the database builds it (in
``ledger_post_response`` and ``ledger_post_batch``) from a template made here (the ``Transaction``
less its id and post time) followed by the fields it assigns. The split of the answer's fields between
this template and the SQL is written down once, in ``tests/ledger/test_ledger_stored_answers.py``
(``SQL_FIELDS`` / ``TEMPLATE_FIELDS``), which also checks that the SQL-built bytes equal this
encoder's for the same values, so a field added to the proto cannot silently diverge.
"""

from __future__ import annotations

import hashlib
from typing import cast

from ledger_svc.domain import (
    Account,
    AccountType,
    Balance,
    Direction,
    EntryLine,
    EntryView,
    Finding,
    FindingKind,
    Posting,
    Transaction,
    VerifyReport,
)
from ledger_svc.uow import RecordKey, StoredAnswer
from svckit.errors import DomainError
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.idempotency import lock_id
from svckit.protobuf import timestamp

# Batch items share this key space, so an item and a single call with the same key are one effect.
POST_SCOPE = "ledger.PostTransaction"
BATCH_SCOPE = "ledger.PostTransactions"

_TYPE_TO_PB = {
    AccountType.ASSET: pb.ACCOUNT_TYPE_ASSET,
    AccountType.LIABILITY: pb.ACCOUNT_TYPE_LIABILITY,
    AccountType.EQUITY: pb.ACCOUNT_TYPE_EQUITY,
    AccountType.REVENUE: pb.ACCOUNT_TYPE_REVENUE,
    AccountType.EXPENSE: pb.ACCOUNT_TYPE_EXPENSE,
}
_DIRECTION_TO_PB = {Direction.DEBIT: pb.DIRECTION_DEBIT, Direction.CREDIT: pb.DIRECTION_CREDIT}
_DIRECTION_FROM_PB = {v: k for k, v in _DIRECTION_TO_PB.items()}
# The stubs type Value() as a plain int; each number is one of the enum's.
_FINDING_TO_PB = {
    kind: cast(pb.FindingKind, pb.FindingKind.Value(f"FINDING_KIND_{kind.value}")) for kind in FindingKind
}


def account_to_pb(account: Account) -> pb.Account:
    msg = pb.Account(
        name=account.name,
        type=_TYPE_TO_PB[account.type],
        currency=account.currency,
        create_time=timestamp(account.created_at),
        state=pb.ACCOUNT_STATE_CLOSED if account.closed_at else pb.ACCOUNT_STATE_OPEN,
        non_negative=account.non_negative,
    )
    if account.closed_at is not None:
        msg.close_time.CopyFrom(timestamp(account.closed_at))
    return msg


def entry_to_pb(line: EntryLine) -> pb.Entry:
    return pb.Entry(
        account=line.account,
        direction=_DIRECTION_TO_PB[line.direction],
        amount_minor=line.amount_minor,
        currency=line.currency,
    )


def transaction_to_pb(tx: Transaction) -> pb.Transaction:
    return pb.Transaction(
        id=tx.id,
        entries=[entry_to_pb(e) for e in tx.entries],
        description=tx.description,
        external_ref=tx.external_ref,
        metadata=dict(tx.metadata),
        post_time=timestamp(tx.posted_at),
        reverses_id=tx.reverses_id or 0,
        sequence=tx.sequence,
        hash=tx.hash,
        previous_hash=tx.previous_hash,
    )


def entry_view_to_pb(view: EntryView) -> pb.AccountEntry:
    return pb.AccountEntry(
        entry_id=view.entry_id,
        transaction_id=view.transaction_id,
        direction=_DIRECTION_TO_PB[view.direction],
        amount_minor=view.amount_minor,
        currency=view.currency,
        post_time=timestamp(view.posted_at),
    )


def posting_from_pb(request: pb.PostTransactionRequest) -> Posting:
    # An unspecified direction becomes "" and is refused by the service's validation.
    return Posting(
        entries=tuple(
            [
                EntryLine(e.account, _DIRECTION_FROM_PB.get(e.direction, ""), e.amount_minor, e.currency)  # type: ignore[arg-type]  # "" until validation refuses it
                for e in request.entries
            ]
        ),
        description=request.description,
        external_ref=request.external_ref,
        metadata=dict(request.metadata) if request.metadata else {},
    )


def _answer_template(posting: Posting) -> bytes:
    """PostTransactionResponse.transaction without the id and post time (the database appends them)."""
    return pb.Transaction(
        entries=[entry_to_pb(e) for e in posting.entries],
        description=posting.description,
        external_ref=posting.external_ref,
        metadata=dict(posting.metadata),
    ).SerializeToString()


# PostTransactionRequest's fields entries, description, external_ref, metadata (1-4) are
# Transaction's 2-5, with the same types: one-byte length-delimited tags, old -> new.
_REQUEST_TO_TRANSACTION_TAG = {0x0A: b"\x12", 0x12: b"\x1a", 0x1A: b"\x22", 0x22: b"\x2a"}


def _retagged(raw: bytes) -> bytes | None:
    """The answer template straight from the request's wire form: each top-level field copied with
    its Transaction tag, a fraction of the cost of building and serializing a Transaction.
    None if the request holds any other top-level field (unknown ones), which only the slow path drops."""
    out = []
    i, n = 0, len(raw)
    while i < n:
        tag = _REQUEST_TO_TRANSACTION_TAG.get(raw[i])
        if tag is None:
            return None
        j, length, shift = i + 1, 0, 0
        while True:
            byte = raw[j]
            j += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        out.append(tag)
        out.append(raw[i + 1 : j + length])
        i = j + length
    return b"".join(out)


_RESULTS_TAG = b"\x0a"  # PostTransactionsResponse.results: field 1, length-delimited
_REPLAYED_TRUE = b"\x18\x01"  # PostTransactionsResult.replayed: field 3, varint 1


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _item_error(err: DomainError) -> pb.ItemError:
    return pb.ItemError(reason=err.reason, message=err.message, code=err.kind.grpc_code.name)


class PostingAnswers:
    """The stored answer's template of a validated posting (``ledger_svc.uow.AnswerFormat``): the
    request's own bytes retagged when validation left the posting exactly as decoded (the same
    object: currencies already normal), else built anew."""

    def template(self, posting: Posting, key: RecordKey) -> bytes:
        if posting is key.decoded:
            retagged = _retagged(key.request)
            if retagged is not None:
                return retagged
        return _answer_template(posting)


_POST_FINGERPRINT_PREFIX = POST_SCOPE.encode() + b"\x00"


def keyed_posting(key: str, request: pb.PostTransactionRequest) -> tuple[Posting, RecordKey]:
    """A posting and its key, exactly as svckit.idempotency would derive the key for PostTransaction
    (``fingerprint(POST_SCOPE, request)``: the same deterministic bytes, serialized once here and
    shared with the answer template)."""
    raw = request.SerializeToString(deterministic=True)
    posting = posting_from_pb(request)
    record_key = RecordKey(
        POST_SCOPE,
        key,
        lock_id(POST_SCOPE, key),
        hashlib.sha256(_POST_FINGERPRINT_PREFIX + raw).digest(),
        raw,
        posting,
    )
    return posting, record_key


def batch_response(outcomes: list[StoredAnswer | DomainError]) -> pb.PostTransactionsResponse:
    """The batch's response, assembled as bytes and parsed once: an item's stored answer (a
    PostTransactionResponse) has the same wire form as a PostTransactionsResult holding that
    transaction (field 1 in both), plus ``replayed`` (field 3) on a replay."""
    results: list[bytes] = []
    for outcome in outcomes:
        if isinstance(outcome, DomainError):
            results.append(pb.PostTransactionsResult(error=_item_error(outcome)).SerializeToString())
        elif outcome.replayed:
            results.append(outcome.data + _REPLAYED_TRUE)
        else:
            results.append(outcome.data)
    return pb.PostTransactionsResponse.FromString(
        b"".join(_RESULTS_TAG + _varint(len(r)) + r for r in results)
    )


def balance_to_pb(balance: Balance) -> pb.GetBalanceResponse:
    return pb.GetBalanceResponse(
        account=balance.account,
        currency=balance.currency,
        debits_minor=balance.debits_minor,
        credits_minor=balance.credits_minor,
        balance_minor=balance.balance_minor,
        last_transaction_id=balance.last_transaction_id,
    )


def finding_to_pb(finding: Finding) -> pb.Finding:
    return pb.Finding(
        kind=_FINDING_TO_PB[finding.kind],
        transaction_id=finding.transaction_id,
        account=finding.account,
        expected=finding.expected,
        actual=finding.actual,
        detail=finding.detail,
    )


def report_to_pb(report: VerifyReport) -> pb.VerifyLedgerResponse:
    return pb.VerifyLedgerResponse(
        ok=report.ok,
        findings=[finding_to_pb(f) for f in report.findings],
        transactions_checked=report.transactions_checked,
        accounts_checked=report.accounts_checked,
        truncated=report.truncated,
        transactions_pending_link=report.pending_link,
    )
