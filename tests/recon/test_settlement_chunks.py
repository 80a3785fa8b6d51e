"""Chunked settlement runs against the real recon database and ledger: each chunk is booked in one ledger call,
and a run that dies mid-file is resumed by running the same file again, booking nothing twice.

Our records are an in-memory stand-in (the payment service's batched read is covered by
test_settlement_run.py through the real service); the ledger is the session's, called as ``recon``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import uuid

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa

from ledger_svc import models as ledger_tables
from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import Against, Booking, OrderState, OurOrder, Rules
from recon_svc.settlement.records import ChunkBooking, GrpcSettlementBooker, settlement_entries
from recon_svc.settlement.run import reconcile_file
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as ppb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as ppb_grpc
from svckit.grpc_errors import error_info

HEADER = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,"
HEADER += "payment_metadata[checkout_id]"
RULES = Rules(fee_tolerance_minor=0)


class _Orders:
    """Our side: one captured, settled order per checkout, for exactly the checkouts given."""

    def __init__(self, amounts: dict[str, int]) -> None:
        self._amounts = amounts
        self.batched_calls = 0

    async def checkouts(self, checkout_ids):
        self.batched_calls += 1
        return {
            c: [OurOrder(f"po_{c}", "", self._amounts[c], "USD", OrderState.SUCCESS, dt.datetime.now(dt.UTC),
                         True, True, c)]
            for c in checkout_ids if c in self._amounts
        }  # fmt: skip

    async def checkout_for(self, row):
        raise AssertionError("every row carries our checkout id: the batched read answers it")


class _Crash(Exception):
    pass


class _CrashingBooker:
    """The real ledger, but the process 'dies' at the ``crash_at``-th ledger call: before it reaches the ledger,
    or (``after_posting``) after the ledger posted it and before recon heard back."""

    def __init__(self, real: GrpcSettlementBooker, crash_at: int, *, after_posting: bool) -> None:
        self._real, self._crash_at, self._after = real, crash_at, after_posting
        self.calls = 0

    async def post(self, bookings: list[ChunkBooking]) -> list[int]:
        self.calls += 1
        if self.calls == self._crash_at:
            if self._after:
                await self._real.post(bookings)
            raise _Crash
        return await self._real.post(bookings)


@pytest_asyncio.fixture
async def ledger(infra, services):
    channel = infra.channel(services["ledger"].address, "recon")
    yield GrpcSettlementBooker(lpb_grpc.LedgerServiceStub(channel), 10)
    await channel.close()


def _file(tag: str, n: int) -> tuple[bytes, dict[str, int]]:
    amounts = {f"co_{tag}_{i}": 1000 + i for i in range(n)}
    lines = [HEADER] + [
        f"txn_{tag}{i},2026-11-20 10:00:{i:02d},usd,{(1000 + i) / 100:.2f},0.30,{(1000 + i - 30) / 100:.2f},"
        f"charge,ch_{tag}{i},co_{tag}_{i}"
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode(), amounts


async def _bookings(engine, tag: str) -> list[tuple[str, int, str, int | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.bookings.c.booking_id, t.bookings.c.row_count, t.bookings.c.state,
                      t.bookings.c.ledger_transaction_id)
            .where(t.bookings.c.booking_id.in_(
                sa.select(t.rows.c.booking_id).where(t.rows.c.balance_transaction_id.like(f"txn_{tag}%"))
            ))
        )  # fmt: skip
        return [tuple(r) for r in rows]


async def _ledger_postings(services, booking_ids: list[str]) -> dict[str, int]:
    """How many ledger transactions each booking has (its id is the transaction's external_ref)."""
    tx = ledger_tables.transactions
    async with services["ledger"].engine.connect() as conn:
        rows = await conn.execute(
            sa.select(tx.c.external_ref, sa.func.count())
            .where(tx.c.external_ref.in_(booking_ids))
            .group_by(tx.c.external_ref)
        )
        return {r[0]: r[1] for r in rows}


async def test_each_chunk_is_read_in_one_call_and_booked_in_one_ledger_call(services, ledger):
    tag = uuid.uuid4().hex[:10]
    data, amounts = _file(tag, 7)
    records = _Orders(amounts)
    booker = _CrashingBooker(ledger, crash_at=0, after_posting=False)  # never crashes
    report = await reconcile_file(
        services["recon"].engine, io.BytesIO(data), records, booker, RULES, chunk_rows=3
    )
    assert report.state == "SUCCEEDED", report
    assert (report.rows_read, report.matched, report.booked, report.mismatches_by_code) == (7, 7, 7, {})
    assert (records.batched_calls, booker.calls) == (3, 3)  # chunks of 3, 3 and 1 rows
    bookings = await _bookings(services["recon"].engine, tag)
    assert sorted(b[1] for b in bookings) == [1, 3, 3] and {b[2] for b in bookings} == {"posted"}
    assert await _ledger_postings(services, [b[0] for b in bookings]) == {b[0]: 1 for b in bookings}
    assert report.booked_totals == {"USD": {"gross": sum(amounts.values()), "fee": 7 * 30}}


@pytest.mark.parametrize("after_posting", [False, True], ids=["before-the-ledger", "after-the-ledger"])
async def test_a_run_that_dies_mid_file_is_resumed_and_books_every_row_exactly_once(
    services, ledger, after_posting
):
    tag = uuid.uuid4().hex[:10]
    data, amounts = _file(tag, 7)
    engine = services["recon"].engine
    with pytest.raises(_Crash):
        await reconcile_file(
            engine, io.BytesIO(data), _Orders(amounts),
            _CrashingBooker(ledger, crash_at=2, after_posting=after_posting), RULES, chunk_rows=3,
        )  # fmt: skip
    pending = [b for b in await _bookings(engine, tag) if b[2] == "pending"]
    assert [b[1] for b in pending] == [3]  # the second chunk: claimed, its booking written, not known posted

    again = await reconcile_file(engine, io.BytesIO(data), _Orders(amounts), ledger, RULES, chunk_rows=3)
    assert again.state == "SUCCEEDED", again
    # The first two chunks were counted by the interrupted run; the rest is reconciled now.
    assert (again.already_counted, again.booked) == (6, 1)
    bookings = await _bookings(engine, tag)
    assert sorted(b[1] for b in bookings) == [1, 3, 3] and {b[2] for b in bookings} == {"posted"}
    # Every booking is one ledger transaction, the interrupted one too (replayed when it had been posted).
    assert await _ledger_postings(services, [b[0] for b in bookings]) == {b[0]: 1 for b in bookings}
    async with engine.connect() as conn:
        states = dict(
            (await conn.execute(
                sa.select(t.runs.c.run_id, t.runs.c.state).where(
                    t.runs.c.run_id.in_(sa.select(t.rows.c.run_id).where(t.rows.c.balance_transaction_id.like(f"txn_{tag}%")))
                )
            )).all()
        )  # fmt: skip
    assert sorted(states.values()) == [
        "FAILED",
        "SUCCEEDED",
    ]  # the interrupted run is closed, not left RUNNING

    third = await reconcile_file(engine, io.BytesIO(data), _Orders(amounts), ledger, RULES, chunk_rows=3)
    assert third.state == "DUPLICATE_FILE"  # completed now: the same file is recognised


async def test_the_batched_checkout_read_answers_known_checkouts_only_and_refuses_bad_requests(
    infra, services
):
    # Its found path is exercised by test_settlement_run.py (real charges matched through it); here, the edges.
    channel = infra.channel(services["payment"].address, "recon")
    stub = ppb_grpc.PaymentServiceStub(channel)
    try:
        empty = await stub.BatchGetCheckoutOrders(
            ppb.BatchGetCheckoutOrdersRequest(checkout_ids=[f"co_unknown_{uuid.uuid4().hex}"])
        )
        assert list(empty.payment_orders) == []
        for ids, reason in (
            ([f"co_{i}" for i in range(1001)], "TOO_MANY_ITEMS"),
            (["not an id!"], "INVALID_ID"),
            ([], "MISSING_FIELD"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.BatchGetCheckoutOrders(ppb.BatchGetCheckoutOrdersRequest(checkout_ids=ids))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error_info(refused.value).reason == reason
    finally:
        await channel.close()


async def test_a_row_repeated_after_the_point_of_interruption_is_still_a_duplicate(services, ledger):
    # The interrupted run committed the first chunk only; the row repeated in the second chunk was claimed by
    # it (first occurrence), so the resumed run must report the repeat, not count it as done.
    engine = services["recon"].engine
    tag = uuid.uuid4().hex[:10]
    data, amounts = _file(tag, 5)
    data = data + (data.decode().splitlines()[1] + "\n").encode()  # the first row again, at the end
    with pytest.raises(_Crash):  # after the first chunk committed, before its ledger answer
        await reconcile_file(
            engine, io.BytesIO(data), _Orders(amounts),
            _CrashingBooker(ledger, crash_at=1, after_posting=False), RULES, chunk_rows=3,
        )  # fmt: skip
    again = await reconcile_file(engine, io.BytesIO(data), _Orders(amounts), ledger, RULES, chunk_rows=3)
    assert again.state == "SUCCEEDED", again
    assert (again.already_counted, again.booked, again.mismatches_by_code) == (3, 2, {"DUPLICATE_ROW": 1})
    bookings = await _bookings(engine, tag)
    assert sorted(b[1] for b in bookings) == [2, 3] and {b[2] for b in bookings} == {"posted"}
    assert await _ledger_postings(services, [b[0] for b in bookings]) == {b[0]: 1 for b in bookings}


async def test_a_second_run_of_a_file_being_reconciled_stops_and_changes_nothing(services, ledger):
    tag = uuid.uuid4().hex[:10]
    data, amounts = _file(tag, 2)
    engine = services["recon"].engine
    sha = hashlib.sha256(data).hexdigest()
    async with engine.connect() as other_run:  # holds the file's lock as a live run does
        await other_run.execute(sa.select(sa.func.pg_advisory_lock(int(sha[:15], 16))))
        await other_run.commit()
        try:
            report = await reconcile_file(engine, io.BytesIO(data), _Orders(amounts), ledger, RULES)
        finally:
            await other_run.execute(sa.select(sa.func.pg_advisory_unlock(int(sha[:15], 16))))
            await other_run.commit()
    assert (report.state, report.booked) == ("DUPLICATE_FILE", 0)
    assert "being reconciled by another run" in report.error
    assert await _bookings(engine, tag) == []
    done = await reconcile_file(engine, io.BytesIO(data), _Orders(amounts), ledger, RULES)
    assert (done.state, done.booked) == ("SUCCEEDED", 2)  # once the other run is gone, the file runs


class _OrdersAndDisputes(_Orders):
    """As :class:`_Orders`, and a dispute row finds its checkout by our metadata (as the real records do)."""

    async def checkout_for(self, row):
        found = await self.checkouts([row.metadata.get("payment.checkout_id", "")])
        return next(iter(found.values()), None)

    async def disputes_for(self, payment_intent_id):
        return None  # no checkout of that PaymentIntent: the dispute row is matched by its checkout alone


async def test_a_chunk_books_each_account_its_rows_gross_goes_to_as_the_rows_own_postings_would(
    services, ledger
):
    # A chunk's rows are booked per currency AND per account their gross is set against: a dispute's gross is a
    # loss, a standalone fee an expense, an adjustment an adjustment, and none of them the PSP's debt.
    tag = uuid.uuid4().hex[:10]
    co_a, co_b = f"co_{tag}_a", f"co_{tag}_b"
    rows = [  # (category, gross, fee, checkout): one chunk
        ("charge", 1000, 30, co_a),
        ("charge", 2500, 60, co_b),
        ("dispute", -1000, 1500, co_a),
        ("fee", -200, 0, ""),
        ("network_cost", -15, 0, ""),
        ("other_adjustment", -120, 0, ""),
    ]
    lines = [HEADER] + [
        f"txn_{tag}{i},2026-11-20 10:00:{i:02d},usd,{gross / 100:.2f},{fee / 100:.2f},{(gross - fee) / 100:.2f},"
        f"{category},src_{tag}{i},{checkout}"
        for i, (category, gross, fee, checkout) in enumerate(rows)
    ]
    booker = _CrashingBooker(ledger, crash_at=0, after_posting=False)  # never crashes
    report = await reconcile_file(
        services["recon"].engine,
        io.BytesIO(("\n".join(lines) + "\n").encode()),
        _OrdersAndDisputes({co_a: 1000, co_b: 2500}),
        booker,
        RULES,
    )
    assert report.state == "SUCCEEDED", report
    assert (report.matched, report.booked, report.mismatches_by_code) == (6, 6, {"PSP_ADJUSTMENT": 1})
    assert booker.calls == 1  # one ledger call for the chunk
    async with services["recon"].engine.connect() as conn:
        booked = await conn.execute(
            sa.select(t.bookings.c.against, t.bookings.c.row_count, t.bookings.c.gross_minor,
                      t.bookings.c.fee_minor, t.bookings.c.state, t.bookings.c.booking_id)
            .where(t.bookings.c.booking_id.in_(
                sa.select(t.rows.c.booking_id).where(t.rows.c.balance_transaction_id.like(f"txn_{tag}%"))
            ))
        )  # fmt: skip
        bookings = {r.against: r for r in booked}
    assert {a: (r.row_count, r.gross_minor, r.fee_minor, r.state) for a, r in bookings.items()} == {
        "psp_receivable": (2, 3500, 90, "posted"),
        "dispute_losses": (1, -1000, 1500, "posted"),
        "psp_fees": (2, -215, 0, "posted"),
        "psp_adjustments": (1, -120, 0, "posted"),
    }
    # Each account moved exactly what the rows' own postings (one per row) would have moved.
    against = {
        "charge": Against.PSP_RECEIVABLE, "dispute": Against.DISPUTE_LOSSES, "fee": Against.PSP_FEES,
        "network_cost": Against.PSP_FEES, "other_adjustment": Against.PSP_ADJUSTMENTS,
    }  # fmt: skip
    expected: dict[str, int] = {}
    for category, gross, fee, _ in rows:
        for e in settlement_entries(Booking("", "", "USD", gross, fee, against[category])):
            sign = 1 if e.direction == lpb.DIRECTION_DEBIT else -1
            expected[e.account] = expected.get(e.account, 0) + sign * e.amount_minor
    entries, accounts = ledger_tables.entries, ledger_tables.accounts
    async with services["ledger"].engine.connect() as conn:
        posted = await conn.execute(
            sa.select(accounts.c.name, entries.c.direction, entries.c.amount)
            .join(accounts, accounts.c.id == entries.c.account_id)
            .join(ledger_tables.transactions, ledger_tables.transactions.c.id == entries.c.transaction_id)
            .where(ledger_tables.transactions.c.external_ref.in_([r.booking_id for r in bookings.values()]))
        )
        moved: dict[str, int] = {}
        for name, direction, amount in posted:
            moved[name] = moved.get(name, 0) + (amount if direction == "D" else -amount)
    assert {k: v for k, v in moved.items() if v} == {k: v for k, v in expected.items() if v}
    assert moved["expense:dispute_losses/USD"] == 1000 and moved["expense:psp_adjustments/USD"] == 120


async def test_a_run_that_dies_recording_its_end_leaves_its_file_to_be_run_again(services, ledger):
    # Chaos seed 861: recon was killed after the run had marked its file complete and before it recorded
    # itself SUCCEEDED; the run stayed RUNNING for good and running the file again answered DUPLICATE_FILE.
    tag = uuid.uuid4().hex[:10]
    data, amounts = _file(tag, 4)
    sha = hashlib.sha256(data).hexdigest()
    engine = services["recon"].engine
    fn, trigger = f"die_{tag}", f"die_{tag}"
    async with engine.begin() as conn:  # the process 'dies' at the statement that records the run's end
        await conn.execute(
            sa.text(
                f"CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.state = 'SUCCEEDED' AND NEW.file_sha256 = '{sha}' THEN RAISE EXCEPTION 'killed'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        await conn.execute(sa.text(
            f"CREATE TRIGGER {trigger} BEFORE UPDATE ON reconciliation_runs FOR EACH ROW EXECUTE FUNCTION {fn}()"
        ))  # fmt: skip
    try:
        with pytest.raises(Exception, match="killed"):
            await reconcile_file(engine, io.BytesIO(data), _Orders(amounts), ledger, RULES, chunk_rows=3)
    finally:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TRIGGER {trigger} ON reconciliation_runs"))
            await conn.execute(sa.text(f"DROP FUNCTION {fn}()"))

    again = await reconcile_file(engine, io.BytesIO(data), _Orders(amounts), ledger, RULES, chunk_rows=3)
    assert again.state == "SUCCEEDED", again
    assert (again.already_counted, again.booked) == (4, 0)  # every row was counted by the run that died
    async with engine.connect() as conn:
        states = (
            (await conn.execute(sa.select(t.runs.c.state).where(t.runs.c.file_sha256 == sha))).scalars().all()
        )
    assert sorted(states) == ["FAILED", "SUCCEEDED"]  # the one that died is closed, not left RUNNING
