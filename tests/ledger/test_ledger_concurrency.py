"""Many concurrent gRPC writers on hot accounts, against a ledger server in its own process."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import grpc

from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import error_info
from svckit.testing import refusal_info
from tests.ledger.ledger_helpers import C, D, entry, md, transfer, uid

WRITERS = 64
RUN_SECONDS = 3.0
HOT = [
    "asset:cash:hot1",
    "asset:cash:hot2",
    "liability:deposits:hot3",
    "revenue:fees:hot4",
    "expense:cost:hot5",
]


def _random_posting(rng: random.Random) -> pb.PostTransactionRequest:
    """Two to four entries over the hot accounts, in random order, so lock order matters."""
    legs = rng.randint(2, 4)
    accounts = rng.sample(HOT, legs)
    amounts = [rng.randint(1, 1_000) for _ in range(legs - 1)]
    entries = [entry(a, D, m) for a, m in zip(accounts, amounts, strict=False)]
    entries.append(entry(accounts[-1], C, sum(amounts)))
    rng.shuffle(entries)
    return pb.PostTransactionRequest(entries=entries, description="load")


async def test_64_writers_on_hot_accounts_lose_nothing_and_replays_change_nothing(infra, ledger_process):
    channels = [infra.channel(ledger_process.address) for _ in range(8)]
    stubs = [pb_grpc.LedgerServiceStub(ch) for ch in channels]
    accepted: list[tuple[str, pb.PostTransactionRequest, pb.Transaction]] = []
    failures: list[grpc.aio.AioRpcError] = []
    deadline = time.monotonic() + RUN_SECONDS

    async def writer(n: int) -> None:
        rng = random.Random(n)
        stub = stubs[n % len(stubs)]
        while time.monotonic() < deadline:
            if n % 4 == 0:  # a quarter of the writers post batches, which lock many hot rows at once
                items = [pb.PostTransactionsItem(idempotency_key=uid(), transaction=_random_posting(rng))
                         for _ in range(5)]  # fmt: skip
                try:
                    batch = await stub.PostTransactions(
                        pb.PostTransactionsRequest(items=items), metadata=md()
                    )
                except grpc.aio.AioRpcError as exc:
                    failures.append(exc)
                    continue
                for item, result in zip(items, batch.results, strict=True):
                    assert result.HasField("transaction"), result
                    accepted.append((item.idempotency_key, item.transaction, result.transaction))
                continue
            request, key = _random_posting(rng), uid()
            try:
                reply = await stub.PostTransaction(request, metadata=md(key))
            except grpc.aio.AioRpcError as exc:
                failures.append(exc)
                continue
            accepted.append((key, request, reply.transaction))

    try:
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        assert not failures, [(f.code(), error_info(f)) for f in failures[:3]]
        assert len(accepted) > WRITERS

        expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for _, request, _ in accepted:
            for e in request.entries:
                expected[e.account][0 if e.direction == D else 1] += e.amount_minor

        async def balances() -> dict[str, list[int]]:
            out = {}
            for name in HOT:
                b = await stubs[0].GetBalance(pb.GetBalanceRequest(account=name))
                out[name] = [b.debits_minor, b.credits_minor]
            return out

        assert await balances() == dict(expected)

        # Replay every request with its key, concurrently: the same answers, no new effect (batch
        # items replay through PostTransaction: they share its key space).
        async def replay(chunk: list) -> list:
            return [
                (await stubs[i % len(stubs)].PostTransaction(req, metadata=md(key))).transaction == tx
                for i, (key, req, tx) in enumerate(chunk)
            ]

        chunks = [accepted[i::WRITERS] for i in range(WRITERS)]
        same = await asyncio.gather(*(replay(c) for c in chunks))
        assert all(all(c) for c in same)
        assert await balances() == dict(expected)

        with ledger_process.connect() as conn:
            count = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]
        assert count == len(accepted)
        report = await stubs[0].VerifyLedger(pb.VerifyLedgerRequest())
        assert report.ok, list(report.findings)[:5]
        assert report.transactions_checked == len(accepted)
    finally:
        for ch in channels:
            await ch.close()


async def test_concurrent_debits_never_overdraw_a_non_negative_account(stub):
    seller, bank = f"liability:seller_payable:race{uid()}", f"asset:bank:race{uid()}"
    await stub.PostTransaction(transfer(bank, seller, 1_000), metadata=md())

    async def payout() -> str:
        try:
            await stub.PostTransaction(transfer(seller, bank, 30), metadata=md())
            return "ok"
        except grpc.aio.AioRpcError as exc:
            return refusal_info(exc).reason

    outcomes = await asyncio.gather(*(payout() for _ in range(64)))
    assert outcomes.count("ok") == 33  # 33 * 30 = 990 <= 1,000 < 34 * 30
    assert set(outcomes) == {"ok", "INSUFFICIENT_BALANCE"}
    balance = await stub.GetBalance(pb.GetBalanceRequest(account=seller))
    assert balance.balance_minor == 10
