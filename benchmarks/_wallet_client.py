"""Load-generating client process for bench_wallet.py: many concurrent Credit calls over grpc.aio, or
ApplyBatch calls of ``batch`` credits each.

Runs in its own process (spawned) so the Python client does not share a GIL with the service.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field

import grpc

from svckit.gen.common.v1 import money_pb2
from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as pb_grpc
from svckit.tls import from_environment


@dataclass
class ClientResult:
    ok: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0


def run_client(
    address: str,
    sellers: int,
    concurrency: int,
    channels: int,
    measure_from: float,
    measure_until: float,
    seed: int,
    batch: int = 0,
) -> ClientResult:
    """Send credits until ``measure_until`` (wall clock); count only calls finished after ``measure_from``.

    ``sellers`` = 1 hits one hot wallet; more spreads the credits uniformly over that many wallets.
    ``batch`` > 0 sends ApplyBatch calls of that many credits instead of single Credit calls; ``ok``
    then counts applied credits and the latencies are per call.
    """
    return asyncio.run(
        _run(address, sellers, concurrency, channels, measure_from, measure_until, seed, batch)
    )


def _credit(rng: random.Random, sellers: int, amount: money_pb2.Money) -> tuple[str, pb.CreditRequest]:
    seller = "bench_hot" if sellers == 1 else f"bench_{rng.randrange(sellers)}"
    key = uuid.uuid4().hex
    request = pb.CreditRequest(
        seller_id=seller,
        amount=amount,
        reference=pb.Reference(kind=pb.REFERENCE_KIND_PAYMENT_ORDER, id=f"po_{key[:16]}"),
    )
    return key, request


async def _run(
    address, sellers, concurrency, channels, measure_from, measure_until, seed, batch
) -> ClientResult:
    result = ClientResult()
    chans = [from_environment().aio_channel(address) for _ in range(channels)]
    stubs = [pb_grpc.WalletServiceStub(c) for c in chans]
    rng = random.Random(seed)
    amount = money_pb2.Money(amount_minor=100, currency="USD")
    cpu0 = time.process_time()

    async def worker(i: int) -> None:
        stub = stubs[i % len(stubs)]
        while time.time() < measure_until:
            applied = 1
            started = time.perf_counter()
            try:
                if batch:
                    items = []
                    for _ in range(batch):
                        key, request = _credit(rng, sellers, amount)
                        items.append(pb.ApplyBatchItem(idempotency_key=key, credit=request))
                    started = time.perf_counter()
                    reply = await stub.ApplyBatch(pb.ApplyBatchRequest(items=items), timeout=30)
                    refused = [r.error for r in reply.results if r.HasField("error")]
                    applied = batch - len(refused)
                    if refused and time.time() >= measure_from:
                        result.errors += len(refused)
                        if len(result.error_samples) < 3:
                            result.error_samples.append(f"item {refused[0].reason}: {refused[0].message}")
                else:
                    key, request = _credit(rng, sellers, amount)
                    started = time.perf_counter()
                    await stub.Credit(request, metadata=(("idempotency-key", key),), timeout=30)
            except grpc.aio.AioRpcError as exc:
                if time.time() >= measure_from:
                    result.errors += 1
                    if len(result.error_samples) < 3:
                        result.error_samples.append(f"{exc.code().name}: {exc.details()}")
                continue
            finished = time.time()
            if measure_from <= finished <= measure_until:
                result.ok += applied
                result.latencies_ms.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    result.cpu_seconds = time.process_time() - cpu0
    for c in chans:
        await c.close()
    return result
