"""Coalesced single postings (LEDGER_COALESCE_POSTINGS): concurrent PostTransaction calls share one batch
statement, yet every call gets exactly the answer the one-statement-per-call path gives."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import grpc
import psycopg

from ledger_svc import bootstrap as ledger_bootstrap
from ledger_svc.config import LedgerSettings
from svckit.db import drop_database
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.runtime import start_service
from svckit.testing import Infra, refusal_info
from tests.ledger.ledger_helpers import C, D, entry, md, transfer


@asynccontextmanager
async def ledger(
    infra: Infra, **settings: Any
) -> AsyncIterator[tuple[pb_grpc.LedgerServiceStub, pb_grpc.LedgerServiceStub, str]]:
    """A ledger on a fresh database with the given settings: (stub, admin stub, database url).

    ``stub`` calls as ``payment`` (postings), ``admin`` as ``operator`` (opening and closing accounts)."""
    name = f"{infra.prefix}_ledger_{uuid.uuid4().hex[:8]}"
    handle = await start_service(
        infra.settings(LedgerSettings, database_name=name, **settings),
        ledger_bootstrap.MIGRATIONS,
        ledger_bootstrap.build,
    )
    try:
        async with (
            infra.channel(handle.address) as channel,
            infra.channel(handle.address, "operator") as admin_channel,
        ):
            yield (
                pb_grpc.LedgerServiceStub(channel),
                pb_grpc.LedgerServiceStub(admin_channel),
                infra.database_url_for(name),
            )
    finally:
        await handle.stop(0.1)
        drop_database(infra.database_url_for(name))


async def call(stub, request: pb.PostTransactionRequest, key: str | None) -> tuple:
    """One PostTransaction: ("OK", replayed, transaction) or (code, reason, message)."""
    metadata = md(key) if key is not None else [("x-request-id", "no-key")]
    rpc = stub.PostTransaction(request, metadata=metadata)
    try:
        reply = await rpc
    except grpc.aio.AioRpcError as exc:
        return (exc.code().name, refusal_info(exc).reason, exc.details())
    replayed = dict(await rpc.initial_metadata()).get("idempotent-replayed") == "true"
    return ("OK", replayed, reply.transaction)


def _assigned_cleared(tx: pb.Transaction) -> pb.Transaction:
    """The transaction without what the database assigns (id, post time): comparable across ledgers."""
    out = pb.Transaction()
    out.CopyFrom(tx)
    out.ClearField("id")
    out.ClearField("post_time")
    return out


BANK, REVENUE, SELLER = "asset:bank:co", "revenue:sales:co", "liability:seller_payable:co1"
EUR_ACCOUNT, CLOSED = "asset:eur:co", "asset:closed:co"


async def _scenario(stub, admin) -> tuple[list[tuple], dict, dict[str, list[tuple]], dict]:
    """Set up the same state on a fresh ledger, then fire one concurrent burst of single postings.

    Every call's answer is independent of the order the burst is served in (the single path's
    contract), so a coalescing and a non-coalescing ledger must answer the burst identically.
    Returns the normalized answers in burst order, the originals of the replayed keys, the burst by
    kind, and the bank's totals before the burst.
    """
    originals: dict[str, pb.Transaction] = {}
    for i in range(10):  # keys to replay
        reply = await stub.PostTransaction(transfer(BANK, REVENUE, 100 + i), metadata=md(f"replay-{i}"))
        originals[f"replay-{i}"] = reply.transaction
    for i in range(8):  # keys to reuse with another request
        await stub.PostTransaction(transfer(BANK, REVENUE, 200 + i), metadata=md(f"reuse-{i}"))
    # The EUR account gets the lower id, so a posting that is both on it in USD and on the closed
    # account is refused for the currency, by account id order, even though its closed entry comes first.
    await stub.PostTransaction(transfer(EUR_ACCOUNT, "revenue:eur:co", 50, "EUR"), metadata=md())
    await stub.PostTransaction(transfer(CLOSED, REVENUE, 10), metadata=md())
    await admin.CloseAccount(pb.CloseAccountRequest(name=CLOSED), metadata=md())
    await stub.PostTransaction(transfer(BANK, SELLER, 100), metadata=md())
    before = await _balances(stub, [BANK])

    burst: list[tuple[str, pb.PostTransactionRequest, str | None]] = []
    for i in range(20):
        burst.append(("good", transfer(f"asset:good:g{i}", f"revenue:good:g{i}", i + 1), f"good-{i}"))
    for i in range(10):
        burst.append(("replay", transfer(BANK, REVENUE, 100 + i), f"replay-{i}"))
    for i in range(5):
        burst.append(("reuse", transfer(BANK, REVENUE, 999), f"reuse-{i}"))
        burst.append(("closed", transfer(CLOSED, BANK, 5 + i), f"closed-{i}"))
        burst.append(("currency", transfer(EUR_ACCOUNT, BANK, 5 + i), f"currency-{i}"))
        burst.append(("overdraft", transfer(SELLER, BANK, 101 + i), f"overdraft-{i}"))
        burst.append(("unbalanced", pb.PostTransactionRequest(
            entries=[entry(BANK, D, 10), entry(REVENUE, C, 9 + i + 2)]), f"unbalanced-{i}"))  # fmt: skip
        burst.append(("no-key", transfer(BANK, REVENUE, 1), None))
        # Two calls with one new key: one posts, the other replays it or finds it in use.
        burst += [("same-key", transfer(BANK, f"revenue:pair:p{i}", 7), f"pair-{i}")] * 2
    for i in range(3):
        burst.append(("two-faults", pb.PostTransactionRequest(
            entries=[entry(CLOSED, D, 3), entry(EUR_ACCOUNT, C, 3)]), f"faults-{i}"))  # fmt: skip
    for i in range(3):
        # A refused posting naming a new account in EUR must not create it for a USD posting.
        burst.append(("new-eur-refused", transfer(f"asset:new:n{i}", BANK, 1, "EUR"), f"reuse-{5 + i}"))
        burst.append(("new-usd", transfer(f"asset:new:n{i}", BANK, 2), f"new-{i}"))
    random.Random(7).shuffle(burst)

    answers = await asyncio.gather(*(call(stub, request, key) for _, request, key in burst))
    normalized: list[tuple] = []
    by_kind: dict[str, list[tuple]] = defaultdict(list)
    for (kind, request, key), answer in zip(burst, answers, strict=True):
        by_kind[kind].append((request, key, answer))
        if kind == "same-key":
            continue  # which of the two posts depends on timing; checked below
        if answer[0] == "OK":
            normalized.append((kind, "OK", answer[1], _assigned_cleared(answer[2])))
        else:
            normalized.append((kind, *answer))
    return normalized, originals, by_kind, before


async def _balances(stub, names) -> dict[str, tuple[int, int]]:
    out = {}
    for name in sorted(names):
        b = await stub.GetBalance(pb.GetBalanceRequest(account=name))
        out[name] = (b.debits_minor, b.credits_minor)
    return out


def _groups(database_url: str, prefix: str) -> tuple[int, int]:
    """(transactions, database transactions that wrote them) among the postings with keys `prefix-*`."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM idempotency_keys "
            "WHERE scope = 'ledger.PostTransaction' AND key LIKE %s",
            (f"{prefix}-%",),
        ).fetchone()
    return cast(tuple[int, int], row)  # aggregates without GROUP BY: exactly one row


async def test_coalesced_burst_answers_exactly_like_single_statement_postings(infra):
    async with (
        ledger(infra, coalesce_postings=True, coalesce_max_in_flight=1) as (on, on_admin, on_url),
        ledger(infra, coalesce_postings=False) as (off, off_admin, off_url),
    ):
        got_on, originals_on, kinds_on, before = await _scenario(on, on_admin)
        got_off, _, kinds_off, _ = await _scenario(off, off_admin)
        assert got_on == got_off

        expect = {
            "closed": ("FAILED_PRECONDITION", "ACCOUNT_CLOSED"),
            "currency": ("INVALID_ARGUMENT", "CURRENCY_MISMATCH"),
            "overdraft": ("FAILED_PRECONDITION", "INSUFFICIENT_BALANCE"),
            "unbalanced": ("INVALID_ARGUMENT", "UNBALANCED_TRANSACTION"),
            "reuse": ("INVALID_ARGUMENT", "IDEMPOTENCY_KEY_REUSED"),
            "new-eur-refused": ("INVALID_ARGUMENT", "IDEMPOTENCY_KEY_REUSED"),
            "two-faults": ("INVALID_ARGUMENT", "CURRENCY_MISMATCH"),
            "no-key": ("INVALID_ARGUMENT", "IDEMPOTENCY_KEY_MISSING"),
        }
        for kind, (code, reason) in expect.items():
            answers = [a for _, _, a in kinds_on[kind]]
            assert {a[:2] for a in answers} == {(code, reason)}, (kind, answers)
        for _, key, answer in kinds_on["replay"]:
            assert answer == ("OK", True, originals_on[key])
        for kind in ("good", "new-usd"):
            for request, _, answer in kinds_on[kind]:
                assert answer[:2] == ("OK", False)
                assert list(answer[2].entries) == list(request.entries)

        for kinds, url in ((kinds_on, on_url), (kinds_off, off_url)):
            by_key = defaultdict(list)
            for _, key, answer in kinds["same-key"]:
                by_key[key].append(answer)
            for answers in by_key.values():
                fresh = [a for a in answers if a[:2] == ("OK", False)]
                assert len(fresh) == 1, answers
                (other,) = [a for a in answers if a is not fresh[0]]
                assert other == ("OK", True, fresh[0][2]) or other[:2] == (
                    "ABORTED",
                    "IDEMPOTENCY_KEY_IN_USE",
                )
            assert _groups(url, "pair")[0] == 5  # one transaction per key

        # Balances: the same on both ledgers, and the sum of the accepted postings.
        accepted = [
            a[2] for kind in ("good", "new-usd", "same-key") for _, _, a in kinds_on[kind] if a[:2] == ("OK", False)
        ]  # fmt: skip
        names = {e.account for tx in accepted for e in tx.entries}
        expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for tx in accepted:
            for e in tx.entries:
                expected[e.account][0 if e.direction == D else 1] += e.amount_minor
        on_balances = await _balances(on, names)
        assert on_balances == await _balances(off, names)
        for name in names:
            debits, credits = before.get(name, (0, 0))
            assert on_balances[name] == (debits + expected[name][0], credits + expected[name][1]), name
        assert (await on.GetAccount(pb.GetAccountRequest(name="asset:new:n0"))).account.currency == "USD"
        report = await on.VerifyLedger(pb.VerifyLedgerRequest())
        assert report.ok, list(report.findings)[:3]

        # The coalescing ledger really shared database transactions between calls; the other did not.
        postings, transactions = _groups(on_url, "good")
        assert postings == 20 and transactions < postings
        assert _groups(off_url, "good") == (20, 20)


async def _wait_for(predicate: Callable[[], bool]) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_failed_group_statement_fails_each_of_its_calls_and_writes_nothing(infra):
    """A deadlock aborts the group's one statement: every call in it answers UNAVAILABLE
    TRANSIENT_CONFLICT (retry with the same key) and none of them was posted."""
    a, b, y, z = "asset:dl:a", "asset:dl:b", "asset:dl:y", "asset:dl:z"
    async with ledger(infra, coalesce_postings=True, coalesce_max_in_flight=1) as (stub, _, url):
        await stub.PostTransaction(transfer(a, b, 1), metadata=md())  # a gets the lower id
        await stub.PostTransaction(transfer(z, y, 1), metadata=md())

        def waiting_groups() -> int:
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%ledger_post_batch%'"
                ).fetchone()
            return cast(tuple[int], row)[0]  # a count(*) without GROUP BY: exactly one row

        with psycopg.connect(url) as holder_z, psycopg.connect(url) as holder_b:
            # Keep the lane busy on z while the calls under test queue up behind it.
            holder_z.execute("SELECT 1 FROM accounts WHERE name = %s FOR UPDATE", (z,))
            blocker = asyncio.ensure_future(call(stub, transfer(z, y, 2), "dl-blocker"))
            await _wait_for(lambda: waiting_groups() == 1)
            keys = [f"dl-{i}" for i in range(12)]
            calls = [asyncio.ensure_future(call(stub, transfer(a, b, 10 + i), k)) for i, k in enumerate(keys)]
            await asyncio.sleep(0.5)  # let all twelve reach the coalescer's queue
            holder_b.execute("SET deadlock_timeout = '60s'")  # the group, not the holder, is the victim
            holder_b.execute("SELECT 1 FROM accounts WHERE name = %s FOR UPDATE", (b,))
            holder_z.rollback()  # the blocker posts; the queued twelve form the next group
            assert (await blocker)[:2] == ("OK", False)
            await _wait_for(lambda: waiting_groups() == 1)  # the group holds a and waits for b
            holder_b.execute("SELECT 1 FROM accounts WHERE name = %s FOR UPDATE", (a,))  # deadlock
            holder_b.rollback()
            answers = await asyncio.gather(*calls)

        assert {x[:2] for x in answers} == {("UNAVAILABLE", "TRANSIENT_CONFLICT")}, answers
        with psycopg.connect(url, autocommit=True) as conn:
            written = conn.execute(
                "SELECT count(*) FROM idempotency_keys WHERE key LIKE 'dl-%' AND key <> 'dl-blocker'"
            ).fetchone()[0]
        assert written == 0
        balance = await stub.GetBalance(pb.GetBalanceRequest(account=a))
        assert balance.debits_minor == 1
        # The keys are free: a retry posts.
        assert (await call(stub, transfer(a, b, 10), keys[0]))[:2] == ("OK", False)
