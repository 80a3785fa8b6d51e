"""What a batch post guarantees: PostTransactions answers item for item, and leaves the same
balances, as the same postings sent one by one; a replay changes nothing; its transactions join the
hash chain like any other; batches racing an account's close neither deadlock nor post on it after."""

from __future__ import annotations

import asyncio
import uuid
from typing import cast

import grpc
import psycopg
import pytest

from ledger_svc.service import LedgerService
from ledger_svc.uow import LedgerUnitOfWork
from svckit.db import create_engine
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.idempotency import IdempotencyStore
from svckit.testing import refusal_info
from tests.ledger.ledger_helpers import md, transfer
from tests.ledger.test_ledger_coalescing import ledger

BANK, CASH, FEES = "asset:bank:fp", "asset:cash:fp", "expense:fees:fp"
SELLER = "liability:seller_payable:fp"  # non-negative on first use
CLOSED = "asset:closed:fp"
NEW = "revenue:fresh:fp"  # opened on first use by the batch

# Settings of both ledgers: one call per statement for the one-by-one reference (the single-posting
# function), and a chainer that stays idle after its first pass, so the tests can see which queue a
# batch used (a batch decided as a whole queues one chain_queue_batches row, one decided item by item
# one chain_queue row per transaction), so both ways of deciding are covered.
SETTINGS = {"coalesce_postings": False, "chain_interval_seconds": 60}


async def _setup(stub, admin) -> None:
    """The same starting state on each ledger: accounts (opened by ``admin``, an operator), a funded
    seller, two used keys."""
    for name in (BANK, CASH, FEES, CLOSED):
        await admin.CreateAccount(pb.CreateAccountRequest(name=name, currency="USD"), metadata=md())
    await admin.CloseAccount(pb.CloseAccountRequest(name=CLOSED), metadata=md())
    await stub.PostTransaction(transfer(BANK, SELLER, 1_000), metadata=md("fund-seller"))
    await stub.PostTransaction(transfer(BANK, CASH, 70), metadata=md("used-key"))


def _items(variant: str) -> list[tuple[str, pb.PostTransactionRequest]]:
    """A batch over shared hot accounts mixing accepted and refused items, in request order.

    ``whole``: nothing depends on a running balance (decided as a whole); ``overdraw``: an item would
    take the seller below zero and a later one fits again; ``closed``: an item names a closed account.
    """
    items = [
        ("i1", transfer(BANK, SELLER, 500)),  # seller 1,500
        ("i2", transfer(SELLER, CASH, 1_200)),  # seller 300: a non-negative account going down, still >= 0
        ("i3", transfer(BANK, CASH, 10, "EUR")),  # CURRENCY_MISMATCH
        ("used-key", transfer(BANK, CASH, 70)),  # replay of the setup's posting
        ("fund-seller", transfer(BANK, CASH, 5)),  # IDEMPOTENCY_KEY_REUSED
        ("i4", transfer(CASH, NEW, 40, description="first use", metadata={"k": "v", "a": "b"})),
        ("i5", transfer(FEES, BANK, 25, external_ref="ref-5")),
        (
            "i6",
            transfer(SELLER, FEES, 301 if variant == "overdraw" else 300),
        ),  # 1 below zero, or exactly zero
        ("i8", transfer(CASH, BANK, 3)),
    ]
    if variant == "overdraw":
        items.append(("i7", transfer(SELLER, FEES, 299)))  # fits once i6 was refused
    if variant == "closed":
        items.append(("i9", transfer(CLOSED, BANK, 2)))  # ACCOUNT_CLOSED
        items.append(("i10", transfer(BANK, CASH, 4)))
    return items


def _outcome(result: pb.PostTransactionsResult) -> tuple:
    if result.WhichOneof("outcome") == "error":
        return ("error", result.error.reason, result.error.message, result.error.code)
    tx = result.transaction
    return ("ok", result.replayed, list(tx.entries), tx.description, tx.external_ref, dict(tx.metadata))


async def _one_by_one(stub, items) -> list[tuple]:
    outcomes: list[tuple] = []
    for key, request in items:
        call = stub.PostTransaction(request, metadata=md(key))
        try:
            reply = await call
        except grpc.aio.AioRpcError as exc:
            outcomes.append(("error", refusal_info(exc).reason, exc.details(), exc.code().name))
            continue
        replayed = dict(await call.initial_metadata()).get("idempotent-replayed") == "true"
        tx = reply.transaction
        outcomes.append(
            ("ok", replayed, list(tx.entries), tx.description, tx.external_ref, dict(tx.metadata))
        )
    return outcomes


async def _balances(stub) -> dict[str, tuple[int, int] | None]:
    """(debits, credits) per account; None for one that does not exist."""
    out: dict[str, tuple[int, int] | None] = {}
    for name in (BANK, CASH, FEES, SELLER, CLOSED, NEW):
        try:
            b = await stub.GetBalance(pb.GetBalanceRequest(account=name))
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            out[name] = None
            continue
        out[name] = (b.debits_minor, b.credits_minor)
    return out


def _queues(url: str) -> tuple[int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        # A count(*) without GROUP BY returns exactly one row.
        single = cast(tuple[int], conn.execute("SELECT count(*) FROM chain_queue").fetchone())[0]
        batches = cast(tuple[int], conn.execute("SELECT count(*) FROM chain_queue_batches").fetchone())[0]
    return single, batches


@pytest.mark.parametrize("variant", ["whole", "overdraw", "closed"])
async def test_a_mixed_batch_over_hot_accounts_answers_like_posting_one_by_one(infra, variant):
    items = _items(variant)
    async with (
        ledger(infra, **SETTINGS) as (batch_stub, batch_admin, batch_url),
        ledger(infra, **SETTINGS) as (single_stub, single_admin, _),
    ):
        for stub, admin in ((batch_stub, batch_admin), (single_stub, single_admin)):
            await _setup(stub, admin)
        queued_before = _queues(batch_url)
        request = pb.PostTransactionsRequest(
            items=[pb.PostTransactionsItem(idempotency_key=k, transaction=r) for k, r in items]
        )
        results = (await batch_stub.PostTransactions(request, metadata=md())).results
        single, batches = (
            after - before for after, before in zip(_queues(batch_url), queued_before, strict=True)
        )
        reference = await _one_by_one(single_stub, items)

        assert len(results) == len(reference)
        for (key, _), result, expected in zip(items, results, reference, strict=True):
            got = _outcome(result)
            assert got == expected, key  # reason, message and gRPC code; or the same transaction
        reasons = {k: r.error.reason for (k, _), r in zip(items, results, strict=True) if r.HasField("error")}
        expected_reasons = {"i3": "CURRENCY_MISMATCH", "fund-seller": "IDEMPOTENCY_KEY_REUSED"}
        if variant == "overdraw":
            expected_reasons["i6"] = "INSUFFICIENT_BALANCE"
        if variant == "closed":
            expected_reasons["i9"] = "ACCOUNT_CLOSED"
        assert reasons == expected_reasons
        assert await _balances(batch_stub) == await _balances(single_stub)
        accepted = sum(1 for r in results if r.HasField("transaction") and not r.replayed)
        # Which path decided: one queue row for the whole batch, or one per transaction.
        assert (single, batches) == ((0, 1) if variant == "whole" else (accepted, 0))
        for stub in (batch_stub, single_stub):
            report = await stub.VerifyLedger(pb.VerifyLedgerRequest())
            assert report.ok, report.findings


async def test_a_replayed_batch_changes_nothing(infra):
    async with ledger(infra, **SETTINGS) as (stub, admin, url):
        await _setup(stub, admin)
        items = _items("closed")  # refusals that do not depend on balances: decided the same again
        request = pb.PostTransactionsRequest(
            items=[pb.PostTransactionsItem(idempotency_key=k, transaction=r) for k, r in items]
        )
        call_key = uuid.uuid4().hex
        first = await stub.PostTransactions(request, metadata=md(call_key))
        balances = await _balances(stub)
        with psycopg.connect(url, autocommit=True) as conn:
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM entries),"
                " (SELECT count(*) FROM idempotency_keys WHERE scope = 'ledger.PostTransaction')"
            ).fetchone()

        # The same call again: the stored answer, flagged as replayed. (A new call key stores its own
        # answer under ledger.PostTransactions, so only the items' key space is counted.)
        again = stub.PostTransactions(request, metadata=md(call_key))
        assert await again == first
        assert dict(await again.initial_metadata()).get("idempotent-replayed") == "true"
        # A new call with the same item keys: every posted item replays its transaction, the
        # refusals (which stored nothing) are decided again, the same way.
        retried = (await stub.PostTransactions(request, metadata=md())).results
        for before, after in zip(first.results, retried, strict=True):
            if before.HasField("transaction"):
                assert after.HasField("transaction") and after.transaction == before.transaction
                assert after.replayed or before.replayed  # posted the first time, replayed now
                assert after.replayed
            else:
                assert after.error == before.error

        assert await _balances(stub) == balances
        with psycopg.connect(url, autocommit=True) as conn:
            assert (
                conn.execute(
                    "SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM entries),"
                    " (SELECT count(*) FROM idempotency_keys WHERE scope = 'ledger.PostTransaction')"
                ).fetchone()
                == counts
            )
        report = await stub.VerifyLedger(pb.VerifyLedgerRequest())
        assert report.ok, report.findings


async def test_batch_transactions_waiting_for_the_chainer_are_pending_not_unchained(infra):
    """A batch's transactions wait in one chain_queue_batches row; until linked, verification counts
    them as pending (not UNCHAINED_TRANSACTION), and the chainer then links them in id order."""
    async with ledger(infra, **SETTINGS) as (stub, admin, url):
        await _setup(stub, admin)
        await stub.VerifyLedger(pb.VerifyLedgerRequest())  # links the setup's postings
        request = pb.PostTransactionsRequest(
            items=[
                pb.PostTransactionsItem(idempotency_key=uuid.uuid4().hex, transaction=transfer(BANK, CASH, n))
                for n in range(1, 6)
            ]
        )
        posted = (await stub.PostTransactions(request, metadata=md())).results
        ids = sorted(r.transaction.id for r in posted)
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute("SELECT transaction_ids FROM chain_queue_batches").fetchall()
        assert [sorted(r[0]) for r in rows] == [ids]

        # The service's verification on a snapshot taken before any chainer pass.
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=1)
        try:
            report = await LedgerService().check_ledger(LedgerUnitOfWork(engine, IdempotencyStore(engine)))
        finally:
            await engine.dispose()
        assert report.findings == [] and report.pending_link == len(ids)

        assert (await stub.VerifyLedger(pb.VerifyLedgerRequest())).ok  # links what is queued first
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM chain_queue_batches").fetchone()[0] == 0
            linked = conn.execute(
                "SELECT array_agg(transaction_id ORDER BY seq) FROM transaction_chain WHERE transaction_id = ANY(%s)",
                (ids,),
            ).fetchone()[0]
        assert linked == ids
        fetched = await stub.GetTransaction(pb.GetTransactionRequest(transaction_id=ids[0]))
        assert fetched.transaction.sequence > 0 and len(fetched.transaction.hash) == 32


async def test_concurrent_batches_over_hot_accounts_race_a_close_without_deadlock(isolated_ledger):
    """Batches take their account locks after writing (their entries' foreign-key checks hold KEY
    SHARE meanwhile); a CloseAccount racing them must not deadlock, and the account takes no entry once
    closed: every call answers, items on the account before the close are kept, those sent after it
    are refused ACCOUNT_CLOSED, stored totals equal the accepted postings, and the books verify."""
    stub, admin = isolated_ledger.stub, isolated_ledger.admin
    hot = [f"asset:race:h{i}" for i in range(4)]
    victim = "asset:race:victim"
    for name in (*hot, victim):
        await admin.CreateAccount(pb.CreateAccountRequest(name=name, currency="USD"), metadata=md())
    early_rounds_done, closed_event = asyncio.Event(), asyncio.Event()
    rounds = 8

    async def writer(n: int) -> list[tuple[int, pb.PostTransactionsItem, pb.PostTransactionsResult]]:
        results: list[tuple[int, pb.PostTransactionsItem, pb.PostTransactionsResult]] = []
        for round_ in range(rounds):
            if round_ == rounds - 1:
                await closed_event.wait()  # the last round is sent after the close has answered
            items = []
            for i in range(20):
                a, b = hot[(n + i) % 4], hot[(n + i + 1) % 4]
                items.append(
                    pb.PostTransactionsItem(
                        idempotency_key=uuid.uuid4().hex,
                        transaction=transfer(victim if i % 5 == 0 else a, b, 1 + i + round_),
                    )
                )
            reply = await stub.PostTransactions(pb.PostTransactionsRequest(items=items), metadata=md())
            results.extend((round_, item, r) for item, r in zip(items, reply.results, strict=True))
            if n == 0 and round_ == 2:
                early_rounds_done.set()
        return results

    async def closer() -> pb.Account:
        await early_rounds_done.wait()  # close while the other writers are still posting
        account = (await admin.CloseAccount(pb.CloseAccountRequest(name=victim), metadata=md())).account
        closed_event.set()
        return account

    *outcomes, closed = await asyncio.gather(*(writer(n) for n in range(8)), closer())
    assert closed.state == pb.ACCOUNT_STATE_CLOSED
    posted = [(rnd, item, r) for results in outcomes for rnd, item, r in results]
    refusals = {(r.error.reason, r.error.code) for _, _, r in posted if r.HasField("error")}
    assert refusals == {("ACCOUNT_CLOSED", "FAILED_PRECONDITION")}

    def on_victim(item: pb.PostTransactionsItem) -> bool:
        return any(e.account == victim for e in item.transaction.entries)

    assert any(on_victim(item) and r.HasField("transaction") for _, item, r in posted)  # before the close
    last = [r for rnd, item, r in posted if rnd == rounds - 1 and on_victim(item)]
    assert last and all(r.error.reason == "ACCOUNT_CLOSED" for r in last)
    assert all(r.HasField("transaction") for _, item, r in posted if not on_victim(item))

    # Stored totals equal the accepted postings, per account.
    expected: dict[str, list[int]] = {name: [0, 0] for name in (*hot, victim)}
    for _, item, r in posted:
        if r.HasField("transaction"):
            for e in item.transaction.entries:
                expected[e.account][0 if e.direction == pb.DIRECTION_DEBIT else 1] += e.amount_minor
    for name, (debits, credits) in expected.items():
        balance = await stub.GetBalance(pb.GetBalanceRequest(account=name))
        assert (balance.debits_minor, balance.credits_minor) == (debits, credits), name
    report = await stub.VerifyLedger(pb.VerifyLedgerRequest())
    assert report.ok, report.findings


async def test_batch_queues_each_payload_as_the_stored_rows_encode_it(infra):
    """The batch path queues each transaction's payload tail for the chainer: it must
    be exactly the canonical encoding of what was stored, for every kind of field; the chainer then
    links tailed and untailed queue rows together, in id order, into a chain that verifies."""
    async with ledger(infra, **SETTINGS) as (stub, admin, url):
        await _setup(stub, admin)
        await stub.VerifyLedger(pb.VerifyLedgerRequest())  # links the setup's postings
        odd = 'ré|sumé: 1:2 \\ "q" 🧾'
        three_legs = pb.PostTransactionRequest(
            entries=[
                pb.Entry(account=BANK, direction=pb.DIRECTION_DEBIT, amount_minor=9_000_000_000_000, currency="USD"),
                pb.Entry(account=CASH, direction=pb.DIRECTION_CREDIT, amount_minor=8_999_999_999_999, currency="USD"),
                pb.Entry(account=FEES, direction=pb.DIRECTION_CREDIT, amount_minor=1, currency="USD"),
            ],
            description=odd,
            external_ref="ref|" + odd,
            metadata={"b": "2", "B": "1", "a": odd, "é": "", "a b": "{\"j\": 1}"},
        )  # fmt: skip
        requests = [transfer(BANK, CASH, 1), three_legs, transfer(CASH, NEW, 2, metadata={"k": "v"})]
        single = (await stub.PostTransaction(transfer(CASH, BANK, 3), metadata=md())).transaction.id
        posted = await stub.PostTransactions(
            pb.PostTransactionsRequest(
                items=[
                    pb.PostTransactionsItem(idempotency_key=uuid.uuid4().hex, transaction=r) for r in requests
                ]
            ),
            metadata=md(),
        )
        later = (await stub.PostTransaction(transfer(CASH, BANK, 4), metadata=md())).transaction.id
        ids = [r.transaction.id for r in posted.results]
        with psycopg.connect(url, autocommit=True) as conn:
            (queued,) = conn.execute(
                "SELECT transaction_ids, payload_tails FROM chain_queue_batches"
            ).fetchall()
            assert queued[0] == ids
            for tx_id, tail in zip(*queued, strict=True):
                stored = conn.execute("SELECT ledger_tx_payload(%s, 0)", (tx_id,)).fetchone()[0]
                assert "LTX1|0|" + tail == stored
            assert conn.execute("SELECT count(*) FROM chain_queue").fetchone()[0] == 2  # the single postings

        report = await stub.VerifyLedger(pb.VerifyLedgerRequest())  # links everything queued first
        assert report.ok, report.findings
        with psycopg.connect(url, autocommit=True) as conn:
            linked = conn.execute(
                "SELECT array_agg(transaction_id ORDER BY seq) FROM transaction_chain WHERE transaction_id = ANY(%s)",
                ([single, *ids, later],),
            ).fetchone()[0]
        assert linked == sorted([single, *ids, later])
