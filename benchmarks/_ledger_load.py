"""Load-generating client of bench_ledger.py; runs in its own process (the Python gRPC client is
itself CPU-bound, so the benchmark spreads it over several processes)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from dataclasses import dataclass

import grpc

from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.tls import from_environment


@dataclass(frozen=True)
class LoadSpec:
    address: str
    accounts: int
    concurrency: int
    duration_seconds: float
    batch: int  # 0: one PostTransaction per call; n: PostTransactions with n items
    seed: int


def account_name(i: int) -> str:
    return f"asset:bench:a{i}"


def posting(rng: random.Random, accounts: int) -> pb.PostTransactionRequest:
    """Two entries between two distinct random accounts."""
    a, b = rng.sample(range(accounts), 2)
    amount = rng.randint(1, 10_000)
    return pb.PostTransactionRequest(
        entries=[
            pb.Entry(
                account=account_name(a), direction=pb.DIRECTION_DEBIT, amount_minor=amount, currency="USD"
            ),
            pb.Entry(
                account=account_name(b), direction=pb.DIRECTION_CREDIT, amount_minor=amount, currency="USD"
            ),
        ],
        description="bench",
    )


def _md(key: str) -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", key),)


# The load is built before the clock starts: a pool of random postings (and of 100-item batches),
# reused round robin with a fresh idempotency key on every use. Building a protobuf request per call
# cost the client processes a noticeable share of the machine, CPU the servers then could not use; the
# requests the servers receive are the same kind either way (random pairs, fresh keys).
POOL = 4_000  # postings per client process (batched: POOL // batch requests of `batch` items)


async def _run(spec: LoadSpec) -> dict:
    latencies: list[float] = []
    postings = 0
    errors: dict[str, int] = {}
    rng = random.Random(spec.seed)
    prefix = uuid.uuid4().hex[:12]
    counter = itertools.count()
    singles = [posting(rng, spec.accounts) for _ in range(POOL)] if not spec.batch else []
    batches = [
        pb.PostTransactionsRequest(
            items=[pb.PostTransactionsItem(transaction=posting(rng, spec.accounts)) for _ in range(spec.batch)]
        )
        for _ in range(max(spec.concurrency, POOL // spec.batch))
    ] if spec.batch else []  # fmt: skip
    # As the identity the benchmark put in TLS_* (`payment`, which may post), over mutual TLS.
    async with from_environment().aio_channel(spec.address) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        deadline = time.perf_counter() + spec.duration_seconds

        async def worker(n: int) -> None:
            nonlocal postings
            # A worker's batch requests are its own: it rewrites their keys only between its calls.
            own = itertools.cycle(batches[n :: spec.concurrency])
            while time.perf_counter() < deadline:
                if spec.batch:
                    request = next(own)
                    for item in request.items:
                        item.idempotency_key = f"{prefix}-{next(counter)}"
                    started = time.perf_counter()
                    try:
                        reply = await stub.PostTransactions(
                            request, metadata=_md(f"{prefix}-{next(counter)}")
                        )
                    except grpc.aio.AioRpcError as exc:
                        errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                        continue
                    latencies.append(time.perf_counter() - started)
                    for result in reply.results:
                        if result.HasField("transaction"):
                            postings += 1
                        else:
                            errors[result.error.reason] = errors.get(result.error.reason, 0) + 1
                else:
                    single = singles[next(counter) % len(singles)]
                    started = time.perf_counter()
                    try:
                        await stub.PostTransaction(single, metadata=_md(f"{prefix}-{next(counter)}"))
                    except grpc.aio.AioRpcError as exc:
                        errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                        continue
                    latencies.append(time.perf_counter() - started)
                    postings += 1

        await asyncio.gather(*(worker(n) for n in range(spec.concurrency)))
    return {"postings": postings, "latencies": latencies, "errors": errors}


def run_client(spec: LoadSpec) -> dict:
    """Process entry point: run the load for the spec's duration and return counts and latencies."""
    cpu = time.process_time()
    result = asyncio.run(_run(spec))
    result["cpu_seconds"] = time.process_time() - cpu
    return result


def warm_up(address: str, accounts: int) -> None:
    """Create every account (first use) before the clock starts, 100 postings per call."""

    async def go() -> None:
        async with from_environment().aio_channel(address) as channel:
            stub = pb_grpc.LedgerServiceStub(channel)
            pairs = [(i, (i + 1) % accounts) for i in range(0, accounts, 2)]
            for start in range(0, len(pairs), 100):
                items = [
                    pb.PostTransactionsItem(
                        idempotency_key=uuid.uuid4().hex,
                        transaction=pb.PostTransactionRequest(
                            entries=[
                                pb.Entry(account=account_name(a), direction=pb.DIRECTION_DEBIT, amount_minor=1, currency="USD"),
                                pb.Entry(account=account_name(b), direction=pb.DIRECTION_CREDIT, amount_minor=1, currency="USD"),
                            ]
                        ),
                    )
                    for a, b in pairs[start : start + 100]
                ]  # fmt: skip
                await stub.PostTransactions(
                    pb.PostTransactionsRequest(items=items), metadata=_md(uuid.uuid4().hex)
                )

    asyncio.run(go())


# --- the transport's own cost (bench_ledger.py's "gRPC floor" line) ------------------------------


class _CannedLedger(pb_grpc.LedgerServiceServicer):
    """Answers PostTransaction with a fixed response: no service, no database."""

    _answer = pb.PostTransactionResponse(
        transaction=pb.Transaction(id=1, description="bench")
    ).SerializeToString()

    async def PostTransaction(self, request, context):
        return pb.PostTransactionResponse.FromString(self._answer)


def serve_canned(port: int, with_interceptor: bool) -> None:
    """Process entry point: a gRPC server like svckit's (same options, optionally its interceptor)
    whose PostTransaction does nothing, to measure what a call costs the server before any ledger work."""
    from svckit.grpc_server import _RegisteringServer

    async def main() -> None:
        server = grpc.aio.server(
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 16 * 1024 * 1024)],
        )
        # With svckit's request context (and the caller check) wrapped around the method, as
        # start_server mounts servicers; over mutual TLS as the real servers.
        access = {"/ledger.v1.LedgerService/PostTransaction": frozenset({"payment"})}
        pb_grpc.add_LedgerServiceServicer_to_server(
            _CannedLedger(), _RegisteringServer(server, access) if with_interceptor else server
        )
        server.add_secure_port(f"127.0.0.1:{port}", from_environment().server_credentials())
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())
