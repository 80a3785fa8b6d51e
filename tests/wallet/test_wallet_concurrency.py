"""64 concurrent gRPC writers on one hot wallet: no lost update, no deadlock, never negative, the books
add up, and replaying every request changes nothing that was already done."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import cast

import grpc
import pytest

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import error_info
from tests.wallet.wallet_helpers import assert_books_balance, md, money, new_key, new_seller, ref

WRITERS = 64
CHANNELS = 8
LOAD_SECONDS = 3.0  # how long writers keep going (not an assertion)
MAX_OPS_PER_WRITER = 40
MIN_OPS_PER_WRITER = 4  # even on a crowded machine every writer really writes

# The only refusals a correct wallet gives this workload.
EXPECTED_REFUSALS = {"INSUFFICIENT_FUNDS", "RESERVATION_EXHAUSTED"}

# The five calls the writers make, and their answers (each has a movement; the request, an amount).
MovementRequest = (
    pb.CreditRequest | pb.DebitRequest | pb.ReserveRequest | pb.ReleaseRequest | pb.CaptureReservationRequest
)
MovementResponse = (
    pb.CreditResponse
    | pb.DebitResponse
    | pb.ReserveResponse
    | pb.ReleaseResponse
    | pb.CaptureReservationResponse
)


@dataclass
class Call:
    rpc: str
    request: MovementRequest
    key: str
    response: MovementResponse | None = None
    refusal: str | None = None


@dataclass
class Writer:
    rng: random.Random
    open_reservations: dict[str, int] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)


async def _invoke(
    stub: pb_grpc.WalletServiceStub, call: Call
) -> tuple[MovementResponse | None, str | None, bool]:
    """(response, refusal reason, replayed flag); anything but an expected refusal fails the test."""
    try:
        rpc_call = getattr(stub, call.rpc)(call.request, metadata=md(call.key))
        response = await rpc_call
        replayed = ("idempotent-replayed", "true") in tuple(await rpc_call.initial_metadata())
        return response, None, replayed
    except grpc.aio.AioRpcError as exc:
        info = error_info(exc)
        reason = info.reason if info else exc.code().name
        assert reason in EXPECTED_REFUSALS, (
            f"{call.rpc} failed unexpectedly: {exc.code()} {reason} {exc.details()}"
        )
        return None, reason, False


def _next_call(w: Writer, seller: str, shared_rsv: str) -> Call:
    roll = w.rng.random()
    if roll < 0.10:  # contend with everyone on one reservation
        rpc = "Release" if w.rng.random() < 0.5 else "CaptureReservation"
        req_type = pb.ReleaseRequest if rpc == "Release" else pb.CaptureReservationRequest
        request: MovementRequest = req_type(
            reservation_id=shared_rsv, amount=money(7), reference=ref(pb.REFERENCE_KIND_PAYOUT)
        )
        return Call(rpc, request, new_key())
    if roll < 0.25 and w.open_reservations:
        rid, remaining = w.rng.choice(sorted(w.open_reservations.items()))
        rpc = "Release" if w.rng.random() < 0.6 else "CaptureReservation"
        req_type = pb.ReleaseRequest if rpc == "Release" else pb.CaptureReservationRequest
        request = req_type(reservation_id=rid, reference=ref(pb.REFERENCE_KIND_PAYOUT))
        if w.rng.random() < 0.5 and remaining > 1:
            request.amount.CopyFrom(money(w.rng.randint(1, remaining - 1)))
        return Call(rpc, request, new_key())
    if roll < 0.60:
        amount = w.rng.randint(1, 1000)
        return Call(
            "Credit", pb.CreditRequest(seller_id=seller, amount=money(amount), reference=ref()), new_key()
        )
    if roll < 0.85:
        amount = w.rng.randint(1, 2500)
        request = pb.DebitRequest(
            seller_id=seller, amount=money(amount), reference=ref(pb.REFERENCE_KIND_REFUND)
        )
        return Call("Debit", request, new_key())
    amount = w.rng.randint(1, 600)
    request = pb.ReserveRequest(
        seller_id=seller, amount=money(amount), reference=ref(pb.REFERENCE_KIND_PAYOUT)
    )
    return Call("Reserve", request, new_key())


def _track(w: Writer, call: Call) -> None:
    """Keep the writer's view of its own reservations (no one else touches them)."""
    if call.response is None:
        return
    # The rpc decides the message types (_next_call builds each request for its rpc).
    if call.rpc == "Reserve":
        reserved = cast(pb.ReserveResponse, call.response)
        w.open_reservations[reserved.reservation.reservation_id] = reserved.reservation.amount.amount_minor
        return
    if call.rpc not in ("Release", "CaptureReservation"):
        return
    request = cast(pb.ReleaseRequest | pb.CaptureReservationRequest, call.request)
    response = cast(pb.ReleaseResponse | pb.CaptureReservationResponse, call.response)
    if request.reservation_id in w.open_reservations:
        # The writer alone uses this reservation, so it knows exactly what must have been taken.
        before = w.open_reservations[request.reservation_id]
        taken = request.amount.amount_minor if request.HasField("amount") else before
        assert response.movement.amount.amount_minor == taken
        remaining = before - taken
        assert response.reservation.remaining.amount_minor == remaining
        if remaining:
            w.open_reservations[request.reservation_id] = remaining
        else:
            del w.open_reservations[request.reservation_id]


def _expected(calls: list[Call]) -> tuple[int, int]:
    """Balances implied by the accepted calls alone, computed from the requests' own amounts."""
    available = reserved = 0
    for c in calls:
        if c.response is None:
            continue
        amount = c.response.movement.amount.amount_minor
        if c.rpc in ("Credit", "Debit", "Reserve"):
            assert amount == c.request.amount.amount_minor
        effect = {"Credit": (1, 0), "Debit": (-1, 0), "Reserve": (-1, 1), "Release": (1, -1),
                  "CaptureReservation": (0, -1)}[c.rpc]  # fmt: skip
        available += effect[0] * amount
        reserved += effect[1] * amount
    return available, reserved


async def _run_all(stubs, calls: list[Call]) -> list[tuple[MovementResponse | None, str | None, bool]]:
    sem = asyncio.Semaphore(WRITERS)

    async def one(i: int, call: Call):
        async with sem:
            return await _invoke(stubs[i % len(stubs)], call)

    return await asyncio.gather(*(one(i, c) for i, c in enumerate(calls)))


@pytest.fixture
async def stubs(infra, services):
    chans = [infra.channel(services["wallet"].address) for _ in range(CHANNELS)]
    yield [pb_grpc.WalletServiceStub(c) for c in chans]
    for c in chans:
        await c.close()


async def test_64_concurrent_writers_on_one_wallet_keep_the_books_exact(stubs, engine):
    seller = new_seller()
    setup = [
        Call("Credit", pb.CreditRequest(seller_id=seller, amount=money(2_000), reference=ref()), new_key()),
        Call("Reserve", pb.ReserveRequest(seller_id=seller, amount=money(500), reference=ref()), new_key()),
    ]
    for c in setup:
        c.response, c.refusal, _ = await _invoke(stubs[0], c)
    shared_rsv = setup[1].response.reservation.reservation_id

    writers = [Writer(random.Random(1000 + i)) for i in range(WRITERS)]
    deadline = time.monotonic() + LOAD_SECONDS

    async def write(i: int, w: Writer) -> None:
        stub = stubs[i % CHANNELS]
        while len(w.calls) < MIN_OPS_PER_WRITER or (
            len(w.calls) < MAX_OPS_PER_WRITER and time.monotonic() < deadline
        ):
            call = _next_call(w, seller, shared_rsv)
            call.response, call.refusal, replayed = await _invoke(stub, call)
            assert not replayed
            w.calls.append(call)
            _track(w, call)

    await asyncio.gather(*(write(i, w) for i, w in enumerate(writers)))
    calls = setup + [c for w in writers for c in w.calls]
    accepted = [c for c in calls if c.response is not None]
    refused = [c for c in calls if c.refusal is not None]
    print(f"{len(calls)} calls, {len(accepted)} accepted, refusals: {sorted({c.refusal for c in refused})}")
    assert {c.rpc for c in accepted} == {"Credit", "Debit", "Reserve", "Release", "CaptureReservation"}
    assert any(c.refusal == "INSUFFICIENT_FUNDS" for c in refused), "debits should sometimes outrun credits"

    # No lost update: the stored wallet is exactly what the accepted calls add up to, and every
    # accepted call left exactly one movement.
    b = await assert_books_balance(engine, seller)
    assert (b.available, b.reserved) == _expected(calls)
    assert b.movement_count == len(accepted)
    assert len({c.response.movement.movement_id for c in accepted}) == len(accepted)
    # The shared reservation was never over-drawn, whatever the race.
    shared = (await stubs[0].GetReservation(pb.GetReservationRequest(reservation_id=shared_rsv))).reservation
    shared_taken = sum(7 for c in accepted if getattr(c.request, "reservation_id", None) == shared_rsv)
    assert shared.released.amount_minor + shared.captured.amount_minor == shared_taken <= 500

    # Replaying every accepted request returns its original answer and changes nothing.
    replays = await _run_all(stubs, accepted)
    for c, (response, refusal, replayed) in zip(accepted, replays, strict=True):
        assert (response, refusal, replayed) == (c.response, None, True), c.rpc
    assert await assert_books_balance(engine, seller) == b

    # A refused request stored nothing, so its replay is a fresh attempt: it may now succeed, once.
    retried = await _run_all(stubs, refused)
    for c, (response, refusal, replayed) in zip(refused, retried, strict=True):
        assert not replayed
        c.response, c.refusal = response, refusal
    after = await assert_books_balance(engine, seller)
    assert (after.available, after.reserved) == _expected(calls)
    assert after.movement_count == len([c for c in calls if c.response is not None])
    # And a third pass over everything is pure replay (or the same refusal) and changes nothing.
    third = await _run_all(stubs, calls)
    for c, (response, _refusal, replayed) in zip(calls, third, strict=True):
        if c.response is not None:
            assert (response, replayed) == (c.response, True)
    assert await assert_books_balance(engine, seller) == after
