"""gRPC transport of ledger.v1.LedgerService: translate messages, call the service, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import UTC as _UTC
from typing import cast

import grpc
import psycopg
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_svc.coalescer import PostingCoalescer
from ledger_svc.db_errors import database_errors_translated
from ledger_svc.service import (
    Account,
    AccountType,
    Direction,
    EntryLine,
    EntryView,
    FindingKind,
    ItemKey,
    LedgerService,
    Posting,
    Transaction,
    snapshot_isolation,
)
from svckit.context import REPLAYED_METADATA, idempotency_key_var
from svckit.db import driver_connection
from svckit.errors import (
    Aborted,
    DomainError,
    InvalidArgument,
    Unprocessable,
)
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.idempotency import IdempotencyStore, idempotent_rpc, lock_id, validate_key
from svckit.metrics import IDEMPOTENCY_CONFLICTS, IDEMPOTENT_REPLAYS
from svckit.protobuf import timestamp

# Batch items share this key space, so an item and a single call with the same key are one effect.
POST_SCOPE = "ledger.PostTransaction"
BATCH_SCOPE = "ledger.PostTransactions"
MAX_BATCH_ITEMS = 1000
CHAIN_BATCH = 5000

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


def _entry_to_pb(line: EntryLine) -> pb.Entry:
    return pb.Entry(
        account=line.account,
        direction=_DIRECTION_TO_PB[line.direction],
        amount_minor=line.amount_minor,
        currency=line.currency,
    )


def transaction_to_pb(tx: Transaction) -> pb.Transaction:
    return pb.Transaction(
        id=tx.id,
        entries=[_entry_to_pb(e) for e in tx.entries],
        description=tx.description,
        external_ref=tx.external_ref,
        metadata=dict(tx.metadata),
        post_time=timestamp(tx.posted_at),
        reverses_id=tx.reverses_id or 0,
        sequence=tx.sequence,
        hash=tx.hash,
        previous_hash=tx.previous_hash,
    )


def _entry_view_to_pb(view: EntryView) -> pb.AccountEntry:
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
        entries=[_entry_to_pb(e) for e in posting.entries],
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


class _Template:
    """A posting's ``encode_answer``: the request's own bytes retagged when validation left the
    posting exactly as decoded (the same object: currencies already normal), else built anew."""

    __slots__ = ("_posting", "_raw")

    def __init__(self, posting: Posting, raw: bytes) -> None:
        self._posting = posting
        self._raw = raw

    def __call__(self, validated: Posting) -> bytes:
        if validated is self._posting:
            retagged = _retagged(self._raw)
            if retagged is not None:
                return retagged
        return _answer_template(validated)


_POST_FINGERPRINT_PREFIX = POST_SCOPE.encode() + b"\x00"


def _keyed_posting(key: str, request: pb.PostTransactionRequest) -> tuple[Posting, ItemKey]:
    """A posting and its key, exactly as svckit.idempotency would derive the key for PostTransaction
    (``fingerprint(POST_SCOPE, request)``: the same deterministic bytes, serialized once here and
    shared with the answer template)."""
    raw = request.SerializeToString(deterministic=True)
    posting = posting_from_pb(request)
    item_key = ItemKey(
        POST_SCOPE,
        key,
        lock_id(POST_SCOPE, key),
        hashlib.sha256(_POST_FINGERPRINT_PREFIX + raw).digest(),
        _Template(posting, raw),
    )
    return posting, item_key


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


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(
        self,
        service: LedgerService,
        engine: AsyncEngine,
        idempotency: IdempotencyStore,
        coalescer: PostingCoalescer | None = None,
        batch_max_in_flight: int = 0,
    ) -> None:
        self._service = service
        self._engine = engine
        self._idempotency = idempotency
        self._coalescer = coalescer
        # See LedgerSettings.batch_max_in_flight; None = no limit.
        self._batch_slots = asyncio.Semaphore(batch_max_in_flight) if batch_max_in_flight else None

    async def CreateAccount(self, request: pb.CreateAccountRequest, context: grpc.aio.ServicerContext):
        async def work(conn):
            account = await self._service.create_account(
                conn, request.name, request.currency, request.non_negative
            )
            return pb.CreateAccountResponse(account=account_to_pb(account))

        return await idempotent_rpc(
            self._idempotency, context, "ledger.CreateAccount", request, pb.CreateAccountResponse, work
        )

    async def GetAccount(self, request: pb.GetAccountRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            account = await self._service.get_account(conn, request.name)
        return pb.GetAccountResponse(account=account_to_pb(account))

    async def ListAccounts(self, request: pb.ListAccountsRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            accounts, token = await self._service.list_accounts(
                conn, request.name_prefix, request.page_size, request.page_token
            )
        return pb.ListAccountsResponse(accounts=[account_to_pb(a) for a in accounts], next_page_token=token)

    async def CloseAccount(self, request: pb.CloseAccountRequest, context: grpc.aio.ServicerContext):
        async def work(conn):
            account = await self._service.close_account(conn, request.name)
            return pb.CloseAccountResponse(account=account_to_pb(account))

        with database_errors_translated():
            return await idempotent_rpc(
                self._idempotency, context, "ledger.CloseAccount", request, pb.CloseAccountResponse, work
            )

    async def PostTransaction(self, request: pb.PostTransactionRequest, context: grpc.aio.ServicerContext):
        # svckit.idempotency's protocol, run inside the posting function: the key's lock, replay or
        # refusal, the effect and the stored answer all happen in one statement, one round trip.
        # With a coalescer, concurrent calls share one batch statement with the same answers.
        posting, key = _keyed_posting(validate_key(idempotency_key_var.get()), request)
        with database_errors_translated():
            try:
                if self._coalescer is not None:
                    outcome = await self._coalescer.post(posting, key)
                else:
                    async with self._engine.connect() as conn:
                        await conn.execution_options(isolation_level="AUTOCOMMIT")
                        outcome = await self._service.post_transaction(conn, posting, key)
            except (Aborted, Unprocessable) as err:
                IDEMPOTENCY_CONFLICTS.labels(POST_SCOPE, err.reason).inc()
                raise
        if outcome.stored_response is not None:
            IDEMPOTENT_REPLAYS.labels(POST_SCOPE).inc()
            await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
            return pb.PostTransactionResponse.FromString(outcome.stored_response)
        if outcome.answer is not None:  # the answer stored under the key, exactly
            return pb.PostTransactionResponse.FromString(outcome.answer)
        if outcome.transaction is None:  # one of the three is set: post_transaction raises refusals
            raise RuntimeError("post_transaction returned neither a transaction nor a stored answer")
        return pb.PostTransactionResponse(transaction=transaction_to_pb(outcome.transaction))

    async def PostTransactions(self, request: pb.PostTransactionsRequest, context: grpc.aio.ServicerContext):
        if len(request.items) > MAX_BATCH_ITEMS:
            raise InvalidArgument(
                "TOO_MANY_ITEMS", f"at most {MAX_BATCH_ITEMS} items per call", field="items"
            )

        async def work(conn: psycopg.AsyncConnection) -> pb.PostTransactionsResponse:
            items: list[tuple[Posting, ItemKey] | DomainError] = []
            seen: set[str] = set()
            for i, item in enumerate(request.items):
                try:
                    key = validate_key(item.idempotency_key)
                    if key in seen:
                        raise InvalidArgument(
                            "DUPLICATE_ITEM_KEY",
                            f"item {i} repeats the idempotency key of an earlier item",
                            field=f"items[{i}].idempotency_key",
                        )
                except DomainError as err:
                    items.append(err)
                    continue
                seen.add(key)
                items.append(_keyed_posting(key, item.transaction))
            outcomes = await self._service.post_transactions(conn, items)
            # The response is assembled as bytes and parsed once: an item's stored answer (a
            # PostTransactionResponse) has the same wire form as a PostTransactionsResult holding
            # that transaction (field 1 in both), plus ``replayed`` (field 3) on a replay.
            results: list[bytes] = []
            for outcome in outcomes:
                if outcome.stored_response is not None:
                    results.append(outcome.stored_response + _REPLAYED_TRUE)
                elif outcome.error is not None:
                    results.append(
                        pb.PostTransactionsResult(error=_item_error(outcome.error)).SerializeToString()
                    )
                elif outcome.answer is not None:
                    results.append(outcome.answer)
                elif outcome.transaction is None:  # an ItemOutcome holds exactly one of the four
                    raise RuntimeError("a batch item came back with no outcome")
                else:
                    results.append(
                        pb.PostTransactionsResult(
                            transaction=transaction_to_pb(outcome.transaction)
                        ).SerializeToString()
                    )
            return pb.PostTransactionsResponse.FromString(
                b"".join(_RESULTS_TAG + _varint(len(r)) + r for r in results)
            )

        # The call's key is claimed (held for the call, replayed once finished) around a single
        # autocommit statement: the batch's account locks are then held only for that statement and
        # its commit, not while the answer is assembled and the call's record written. Each item is
        # idempotent on its own key inside the statement, so a call that committed its batch but died
        # before finishing is resumed by its retry: every posted item replays its transaction.
        async with self._idempotency.claim(BATCH_SCOPE, idempotency_key_var.get(), request) as claim:
            replayed = claim.replay(pb.PostTransactionsResponse)
            if replayed is not None:
                await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
                return replayed
            with database_errors_translated():
                async with self._batch_slot(), self._engine.connect() as conn:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    response = await work(await driver_connection(conn))
            answer = await claim.finish(response)
            if answer is not response:  # the same call finished first (see Claim.finish)
                await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
            return answer

    def _batch_slot(self) -> contextlib.AbstractAsyncContextManager:
        return self._batch_slots if self._batch_slots is not None else contextlib.nullcontext()

    async def ReverseTransaction(
        self, request: pb.ReverseTransactionRequest, context: grpc.aio.ServicerContext
    ):
        async def work(conn):
            tx = await self._service.reverse_transaction(
                conn,
                request.transaction_id,
                request.description,
                request.external_ref,
                dict(request.metadata),
            )
            return pb.ReverseTransactionResponse(transaction=transaction_to_pb(tx))

        with database_errors_translated():
            return await idempotent_rpc(
                self._idempotency,
                context,
                "ledger.ReverseTransaction",
                request,
                pb.ReverseTransactionResponse,
                work,
            )

    async def GetTransaction(self, request: pb.GetTransactionRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            tx = await self._service.get_transaction(conn, request.transaction_id)
        return pb.GetTransactionResponse(transaction=transaction_to_pb(tx))

    async def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext):
        as_of = request.as_of.ToDatetime(tzinfo=_UTC) if request.HasField("as_of") else None
        async with self._engine.connect() as conn:
            balance = await self._service.get_balance(conn, request.account, as_of)
        return pb.GetBalanceResponse(
            account=balance.account,
            currency=balance.currency,
            debits_minor=balance.debits_minor,
            credits_minor=balance.credits_minor,
            balance_minor=balance.balance_minor,
            last_transaction_id=balance.last_transaction_id,
        )

    async def ListEntries(self, request: pb.ListEntriesRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            views, token = await self._service.list_entries(
                conn, request.account, request.page_size, request.page_token
            )
        return pb.ListEntriesResponse(entries=[_entry_view_to_pb(v) for v in views], next_page_token=token)

    async def VerifyLedger(self, request: pb.VerifyLedgerRequest, context: grpc.aio.ServicerContext):
        # Link what is queued first, so the report covers every transaction committed so far.
        while True:
            async with self._engine.begin() as conn:
                if await self._service.link_pending(conn, CHAIN_BATCH) < CHAIN_BATCH:
                    break
        async with self._engine.connect() as conn:
            await snapshot_isolation(conn)
            report = await self._service.verify_ledger(conn, request.max_findings)
        return pb.VerifyLedgerResponse(
            ok=report.ok,
            findings=[
                pb.Finding(
                    kind=_FINDING_TO_PB[f.kind],
                    transaction_id=f.transaction_id,
                    account=f.account,
                    expected=f.expected,
                    actual=f.actual,
                    detail=f.detail,
                )
                for f in report.findings
            ],
            transactions_checked=report.transactions_checked,
            accounts_checked=report.accounts_checked,
            truncated=report.truncated,
            transactions_pending_link=report.pending_link,
        )
