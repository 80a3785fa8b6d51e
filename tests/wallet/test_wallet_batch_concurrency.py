"""Concurrent ApplyBatch calls and single Credit/Debit/Reserve calls on the same few hot wallets: every
batch locks several wallets (items in random wallet order), singles lock one. No deadlock, no lost
update, balances = sum of what was accepted = sum of movements, and replaying everything changes
nothing."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import grpc

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as pb_grpc
from svckit.testing import refusal_info
from tests.wallet.test_wallet_batch import credit, debit
from tests.wallet.wallet_helpers import assert_books_balance, md, money, new_key, new_seller, ref

HOT_WALLETS = 4
BATCH_WORKERS, BATCHES_PER_WORKER, ITEMS_PER_BATCH = 12, 6, 25
SINGLE_WORKERS, CALLS_PER_WORKER = 32, 12
CHANNELS = 6
SEED = 2_000


async def test_concurrent_batches_and_single_calls_on_hot_wallets(infra, services, engine):
    sellers = [new_seller() for _ in range(HOT_WALLETS)]
    channels = [infra.channel(services["wallet"].address) for _ in range(CHANNELS)]
    stubs = [pb_grpc.WalletServiceStub(c) for c in channels]
    try:
        for s in sellers:
            await stubs[0].Credit(
                pb.CreditRequest(seller_id=s, amount=money(SEED), reference=ref()), metadata=md(new_key())
            )

        batches: list[tuple[pb.ApplyBatchRequest, pb.ApplyBatchResponse]] = []
        singles: list[tuple[str, object, str, object]] = []  # (rpc, request, key, response)
        refusals: list[str] = []

        async def batch_worker(n: int) -> None:
            rng = random.Random(n)
            stub = stubs[n % CHANNELS]
            for _ in range(BATCHES_PER_WORKER):
                items = []
                for _ in range(ITEMS_PER_BATCH):
                    seller = rng.choice(sellers)
                    if rng.random() < 0.5:
                        items.append(credit(new_key(), seller, rng.randint(1, 100)))
                    else:
                        items.append(debit(new_key(), seller, rng.randint(1, 300)))
                request = pb.ApplyBatchRequest(items=items)
                reply = await stub.ApplyBatch(request)
                for r in reply.results:
                    if r.HasField("error"):
                        refusals.append(r.error.reason)
                batches.append((request, reply))

        async def single_worker(n: int) -> None:
            rng = random.Random(1000 + n)
            stub = stubs[n % CHANNELS]
            for _ in range(CALLS_PER_WORKER):
                seller = rng.choice(sellers)
                roll = rng.random()
                request: pb.CreditRequest | pb.DebitRequest | pb.ReserveRequest
                if roll < 0.45:
                    rpc, request = (
                        "Credit",
                        pb.CreditRequest(
                            seller_id=seller, amount=money(rng.randint(1, 100)), reference=ref()
                        ),
                    )
                elif roll < 0.9:
                    rpc, request = (
                        "Debit",
                        pb.DebitRequest(
                            seller_id=seller,
                            amount=money(rng.randint(1, 300)),
                            reference=ref(pb.REFERENCE_KIND_REFUND),
                        ),
                    )
                else:
                    rpc, request = (
                        "Reserve",
                        pb.ReserveRequest(
                            seller_id=seller,
                            amount=money(rng.randint(1, 50)),
                            reference=ref(pb.REFERENCE_KIND_PAYOUT),
                        ),
                    )
                key = new_key()
                try:
                    response = await getattr(stub, rpc)(request, metadata=md(key))
                except grpc.aio.AioRpcError as exc:
                    refusals.append(refusal_info(exc).reason)
                    continue
                singles.append((rpc, request, key, response))

        await asyncio.gather(
            *(batch_worker(n) for n in range(BATCH_WORKERS)),
            *(single_worker(n) for n in range(SINGLE_WORKERS)),
        )
        assert set(refusals) <= {"INSUFFICIENT_FUNDS"}, set(refusals)
        assert len(batches) == BATCH_WORKERS * BATCHES_PER_WORKER

        # Balances = seed + what was accepted; = sum of movements; resulting balances chain unbroken.
        expected = defaultdict(lambda: [SEED, 0])
        applied = 0
        for request, reply in batches:
            for item, result in zip(request.items, reply.results, strict=True):
                if result.WhichOneof("outcome") == "credit":
                    expected[item.credit.seller_id][0] += item.credit.amount.amount_minor
                    applied += 1
                elif result.WhichOneof("outcome") == "debit":
                    expected[item.debit.seller_id][0] -= item.debit.amount.amount_minor
                    applied += 1
                assert not result.replayed
        for rpc, request, _, _ in singles:
            sign = {"Credit": 1, "Debit": -1, "Reserve": -1}[rpc]
            expected[request.seller_id][0] += sign * request.amount.amount_minor
            if rpc == "Reserve":
                expected[request.seller_id][1] += request.amount.amount_minor
        assert applied > 0 and "INSUFFICIENT_FUNDS" in refusals  # the workload really contended
        books_before = {}
        for s in sellers:
            b = await assert_books_balance(engine, s)
            assert [b.available, b.reserved] == expected[s], s
            books_before[s] = b

        # Replaying everything changes nothing: applied items and calls answer their original.
        async def replay_batch(n: int, request, reply) -> None:
            again = await stubs[n % CHANNELS].ApplyBatch(request)
            for one, two in zip(reply.results, again.results, strict=True):
                which = one.WhichOneof("outcome")
                assert two.replayed and getattr(two, which) == getattr(one, which)

        async def replay_single(n: int, rpc, request, key, response) -> None:
            assert await getattr(stubs[n % CHANNELS], rpc)(request, metadata=md(key)) == response

        # A refused debit is a fresh attempt when retried and may succeed now, so replay only the
        # applied items: each batch rebuilt from them.
        applied_only = []
        for request, reply in batches:
            keep = [i for i, r in enumerate(reply.results) if not r.HasField("error")]
            applied_only.append(
                (
                    pb.ApplyBatchRequest(items=[request.items[i] for i in keep]),
                    pb.ApplyBatchResponse(results=[reply.results[i] for i in keep]),
                )
            )
        await asyncio.gather(
            *(replay_batch(n, rq, rp) for n, (rq, rp) in enumerate(applied_only)),
            *(replay_single(n, *call) for n, call in enumerate(singles)),
        )
        for s in sellers:
            assert await assert_books_balance(engine, s) == books_before[s]
    finally:
        for c in channels:
            await c.close()
