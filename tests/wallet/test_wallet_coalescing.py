"""Coalesced single calls (WALLET_COALESCE_MOVEMENTS): concurrent Credit/Debit calls share one batch
transaction, yet every call gets exactly the answer the one-transaction-per-call path gives."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import grpc
import psycopg

from svckit.db import drop_database
from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as pb_grpc
from svckit.runtime import start_service
from svckit.testing import Infra, refusal_info
from tests.wallet.wallet_helpers import md, money
from wallet_svc import bootstrap as wallet_bootstrap
from wallet_svc.config import WalletSettings

TOP = 2**63 - 1


@asynccontextmanager
async def wallet(infra: Infra, **settings: Any) -> AsyncIterator[tuple[pb_grpc.WalletServiceStub, str]]:
    """A wallet service on a fresh database with the given settings: (stub, database url)."""
    name = f"{infra.prefix}_wallet_{uuid.uuid4().hex[:8]}"
    handle = await start_service(
        infra.settings(WalletSettings, database_name=name, **settings),
        wallet_bootstrap.MIGRATIONS,
        wallet_bootstrap.build,
    )
    try:
        async with infra.channel(handle.address) as channel:
            yield pb_grpc.WalletServiceStub(channel), infra.database_url_for(name)
    finally:
        await handle.stop(0.1)
        drop_database(infra.database_url_for(name))


def cr(
    seller: str,
    amount: int,
    currency: str = "USD",
    ref_id: str = "po_1",
    kind: pb.ReferenceKind = pb.REFERENCE_KIND_PAYMENT_ORDER,
) -> tuple:
    return (
        "Credit",
        pb.CreditRequest(
            seller_id=seller, amount=money(amount, currency), reference=pb.Reference(kind=kind, id=ref_id)
        ),
    )


def db(seller: str, amount: int, ref_id: str = "rf_1") -> tuple:
    return (
        "Debit",
        pb.DebitRequest(
            seller_id=seller,
            amount=money(amount),
            reference=pb.Reference(kind=pb.REFERENCE_KIND_REFUND, id=ref_id),
        ),
    )


async def call(stub, rpc: str, request, key: str | None) -> tuple:
    """("OK", replayed, response) or (code, reason, message, error metadata)."""
    metadata = md(key) if key is not None else [("x-request-id", "no-key")]
    pending = getattr(stub, rpc)(request, metadata=metadata)
    try:
        reply = await pending
    except grpc.aio.AioRpcError as exc:
        info = refusal_info(exc)
        return (exc.code().name, info.reason, exc.details(), tuple(sorted(info.metadata.items())))
    replayed = dict(await pending.initial_metadata()).get("idempotent-replayed") == "true"
    return ("OK", replayed, reply)


def _assigned_cleared(response):
    """The answer without what the database assigns (movement id, times): comparable across services."""
    out = type(response)()
    out.CopyFrom(response)
    out.movement.ClearField("movement_id")
    out.movement.ClearField("create_time")
    out.wallet.ClearField("update_time")
    return out


async def _scenario(stub) -> tuple[list[tuple], dict, dict[str, list[tuple]]]:
    """The same state on a fresh service, then one concurrent burst of single calls whose answers do
    not depend on the order the burst is served in. Returns the normalized answers in burst order,
    the originals of the replayed keys, and the burst's answers by kind."""
    originals: dict[str, object] = {}
    for i in range(8):
        originals[f"replay-c{i}"] = await stub.Credit(cr("replayer", 100 + i)[1], metadata=md(f"replay-c{i}"))
    for i in range(8):
        await stub.Credit(cr("reuser", 200 + i)[1], metadata=md(f"reuse-{i}"))
    for i in range(10):
        await stub.Credit(cr(f"funded{i}", 1000)[1], metadata=md(f"fund-{i}"))
    for i in range(4):
        originals[f"replay-d{i}"] = await stub.Debit(db(f"funded{i}", 1 + i)[1], metadata=md(f"replay-d{i}"))
    await stub.Credit(cr("overdrawn", 100)[1], metadata=md("fund-overdrawn"))
    await stub.Credit(cr("top", TOP - 5)[1], metadata=md("fund-top"))

    burst: list[tuple[str, str, object, str | None]] = []
    for i in range(20):
        burst.append(("good", *cr(f"fresh{i}", i + 1, ref_id=f"po_{i}"), f"good-{i}"))
    for i in range(10):
        burst.append(("debit", *db(f"funded{i}", 300, ref_id=f"rf_{i}"), f"debit-{i}"))
    for i in range(8):
        burst.append(("replay", *cr("replayer", 100 + i), f"replay-c{i}"))
        burst.append(("reuse", *cr("reuser", 999), f"reuse-{i}"))
    for i in range(4):
        burst.append(("replay", *db(f"funded{i}", 1 + i), f"replay-d{i}"))
    for i in range(5):
        burst.append(("overdraft", *db("overdrawn", 101 + i), f"over-{i}"))
        burst.append(("limit", *cr("top", 6 + i), f"limit-{i}"))
        burst.append(("nowallet", *db(f"nobody{i}", 5), f"nowallet-{i}"))
        burst.append(("no-key", *cr("fresh0", 1), None))
        burst.append(("bad-seller", *cr("bad seller!", 1), f"bad-seller-{i}"))
        burst.append(("bad-amount", *db("funded9", 0), f"bad-amount-{i}"))
        burst.append(("bad-currency", *cr("fresh1", 1, "XXX"), f"bad-currency-{i}"))
        burst.append(
            ("bad-reference", *cr("fresh1", 1, kind=pb.REFERENCE_KIND_UNSPECIFIED), f"bad-reference-{i}")
        )
        # An invalid request under a used key is a reused key (the key is looked at first).
        burst.append(("invalid-reused", *cr("reuser", 0), f"reuse-{i}"))
        # Two calls with one new key: one applies, the other replays it or finds it in use.
        burst += [("same-key", *cr(f"pair{i}", 7), f"pair-{i}")] * 2
    random.Random(11).shuffle(burst)

    answers = await asyncio.gather(*(call(stub, rpc, request, key) for _, rpc, request, key in burst))
    normalized: list[tuple] = []
    by_kind: dict[str, list[tuple]] = defaultdict(list)
    for (kind, _, request, key), answer in zip(burst, answers, strict=True):
        by_kind[kind].append((request, key, answer))
        if kind == "same-key":
            continue  # which of the two applies depends on timing; checked below
        if answer[0] == "OK":
            normalized.append((kind, "OK", answer[1], _assigned_cleared(answer[2])))
        else:
            normalized.append((kind, *answer))
    return normalized, originals, by_kind


def _groups(database_url: str, prefix: str) -> tuple[int, int]:
    """(answers stored, database transactions that stored them) among the keys `prefix-*`."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT xmin::text) FROM idempotency_keys WHERE key LIKE %s",
            (f"{prefix}-%",),
        ).fetchone()
    return cast(tuple[int, int], row)  # aggregates without GROUP BY: exactly one row


async def test_coalesced_burst_answers_exactly_like_one_transaction_per_call(infra):
    async with (
        wallet(infra, coalesce_movements=True) as (on, on_url),
        wallet(infra, coalesce_movements=False) as (off, off_url),
    ):
        got_on, originals_on, kinds_on = await _scenario(on)
        got_off, _, kinds_off = await _scenario(off)
        assert got_on == got_off

        expect = {
            "overdraft": ("FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"),
            "limit": ("FAILED_PRECONDITION", "BALANCE_LIMIT_EXCEEDED"),
            "nowallet": ("FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"),
            "reuse": ("INVALID_ARGUMENT", "IDEMPOTENCY_KEY_REUSED"),
            "invalid-reused": ("INVALID_ARGUMENT", "IDEMPOTENCY_KEY_REUSED"),
            "no-key": ("INVALID_ARGUMENT", "IDEMPOTENCY_KEY_MISSING"),
            "bad-seller": ("INVALID_ARGUMENT", "INVALID_SELLER_ID"),
            "bad-amount": ("INVALID_ARGUMENT", "AMOUNT_NOT_POSITIVE"),
            "bad-currency": ("INVALID_ARGUMENT", "UNKNOWN_CURRENCY"),
            "bad-reference": ("INVALID_ARGUMENT", "INVALID_REFERENCE_KIND"),
        }
        for kind, (code, reason) in expect.items():
            answers = [a for _, _, a in kinds_on[kind]]
            assert {a[:2] for a in answers} == {(code, reason)}, (kind, answers)
        assert {a[2] for _, _, a in kinds_on["overdraft"]} == {
            f"available is 1.00 USD; {x / 100:.2f} USD requested" for x in range(101, 106)
        }
        for _, key, answer in kinds_on["replay"]:
            assert answer == ("OK", True, originals_on[key])
        for request, _, answer in kinds_on["good"]:
            assert answer[:2] == ("OK", False)
            assert answer[2].wallet.available == request.amount
        for _, _, answer in kinds_on["debit"]:
            assert answer[:2] == ("OK", False)
            assert answer[2].movement.available_after.amount_minor in {700 - i for i in range(1, 5)} | {700}

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
            assert _groups(url, "pair")[0] == 5  # one movement per key
            # No refused call stored anything under its key.
            for prefix in ("over", "limit", "nowallet", "bad-seller", "bad-amount", "bad-currency"):
                assert _groups(url, prefix)[0] == 0

        # Balances and movement counts agree between the two services.
        for seller in (
            ["replayer", "reuser", "overdrawn", "top"]
            + [f"funded{i}" for i in range(10)]
            + [f"fresh{i}" for i in range(20)]
        ):
            a = await on.GetWallet(pb.GetWalletRequest(seller_id=seller, currency="USD"))
            b = await off.GetWallet(pb.GetWalletRequest(seller_id=seller, currency="USD"))
            assert (a.wallet.available, a.wallet.reserved) == (b.wallet.available, b.wallet.reserved), seller

        # The coalescing service really shared transactions between calls; the other did not.
        stored, transactions = _groups(on_url, "good")
        assert stored == 20 and transactions < stored
        assert _groups(off_url, "good") == (20, 20)


async def test_a_failed_group_transaction_answers_every_call_retryably_and_writes_nothing(infra):
    """A fault of a group's transaction that is no refusal (here a trigger the test adds, raising on every
    movement) must answer each call of the group UNAVAILABLE GROUP_TRANSACTION_FAILED, write nothing,
    and leave the keys free: a retry with the same keys then applies every call exactly once."""
    async with wallet(infra, coalesce_movements=True) as (stub, url):
        await stub.Credit(cr("hot", 1)[1], metadata=md("open-hot"))  # the wallet exists
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE EXCEPTION 'injected fault'; END $$;"
                "CREATE TRIGGER test_fault BEFORE INSERT ON wallet_movements FOR EACH ROW EXECUTE FUNCTION test_fault()"
            )
        burst = [(f"g-{i}", cr("hot", 10 + i, ref_id=f"po_{i}")[1]) for i in range(24)]

        answers = await asyncio.gather(*(call(stub, "Credit", request, key) for key, request in burst))

        reasons = {(a[0], a[1]) for a in answers}
        # Every call was refused; a call that found no company took the plain path (INTERNAL).
        assert reasons <= {("UNAVAILABLE", "GROUP_TRANSACTION_FAILED"), ("INTERNAL", "INTERNAL")}, reasons
        assert ("UNAVAILABLE", "GROUP_TRANSACTION_FAILED") in reasons
        with psycopg.connect(url, autocommit=True) as conn:
            assert (
                conn.execute("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'g-%'").fetchone()[0] == 0
            )
            assert conn.execute("SELECT count(*) FROM wallet_movements").fetchone()[0] == 1
            conn.execute("DROP TRIGGER test_fault ON wallet_movements")
        assert (
            await stub.GetWallet(pb.GetWalletRequest(seller_id="hot", currency="USD"))
        ).wallet.available.amount_minor == 1

        retried = await asyncio.gather(*(call(stub, "Credit", request, key) for key, request in burst))

        assert [a[0] for a in retried] == ["OK"] * len(burst)
        assert not any(a[1] for a in retried)  # applied now, not replays of a write that happened
        wallet_now = (await stub.GetWallet(pb.GetWalletRequest(seller_id="hot", currency="USD"))).wallet
        assert wallet_now.available.amount_minor == 1 + sum(10 + i for i in range(24))
