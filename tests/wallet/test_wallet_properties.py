"""Property-based: random sequences of wallet operations, including replays and reused keys, against
the real service. After every step: balances never negative, stored balances = sum of movements, the
service agrees with a tiny reference model, and a refused operation changed nothing."""

from __future__ import annotations

import grpc
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.wallet.wallet_helpers import assert_books_balance, md, money, new_key, new_seller, ref

amounts = st.integers(min_value=1, max_value=600)
operations = st.one_of(
    st.tuples(st.just("Credit"), amounts),
    st.tuples(st.just("Debit"), amounts),
    st.tuples(st.just("Reserve"), amounts),
    st.tuples(st.sampled_from(["Release", "CaptureReservation"]), st.integers(0, 4), st.none() | amounts),
    st.tuples(st.just("replay"), st.integers(0, 30)),
    st.tuples(st.just("reuse"), st.integers(0, 30)),
)


class Model:
    """What the wallet must hold: balances, reservations (remaining), and which keys stored what."""

    def __init__(self) -> None:
        self.available = 0
        self.reserved = 0
        self.remaining: dict[str, int] = {}
        self.stored: dict[tuple[str, str], tuple[bytes, object]] = {}

    def expect(self, rpc: str, request) -> str | None:
        """The refusal reason the model predicts for a fresh call, or None when it must succeed."""
        if rpc in ("Debit", "Reserve"):
            return "INSUFFICIENT_FUNDS" if request.amount.amount_minor > self.available else None
        if rpc in ("Release", "CaptureReservation"):
            if request.reservation_id not in self.remaining:
                return "RESERVATION_NOT_FOUND"
            remaining = self.remaining[request.reservation_id]
            wanted = request.amount.amount_minor if request.HasField("amount") else remaining
            return "RESERVATION_EXHAUSTED" if remaining == 0 or wanted > remaining else None
        return None

    def apply(self, rpc: str, request, response) -> None:
        """Apply a call the service accepted, computing the amounts from the request and the model only."""
        if rpc in ("Credit", "Debit", "Reserve"):
            amount = request.amount.amount_minor
        else:
            remaining = self.remaining[request.reservation_id]
            amount = request.amount.amount_minor if request.HasField("amount") else remaining
        assert response.movement.amount.amount_minor == amount
        da, dr = {"Credit": (1, 0), "Debit": (-1, 0), "Reserve": (-1, 1), "Release": (1, -1),
                  "CaptureReservation": (0, -1)}[rpc]  # fmt: skip
        self.available += da * amount
        self.reserved += dr * amount
        if rpc == "Reserve":
            self.remaining[response.reservation.reservation_id] = amount
        elif rpc in ("Release", "CaptureReservation"):
            self.remaining[request.reservation_id] -= amount
        if rpc not in ("Credit", "Debit"):
            rid = response.reservation.reservation_id
            assert response.reservation.remaining.amount_minor == self.remaining[rid]


def _request(op, seller: str, model: Model):
    rpc = op[0]
    if rpc in ("Credit", "Debit", "Reserve"):
        req_type = {"Credit": pb.CreditRequest, "Debit": pb.DebitRequest, "Reserve": pb.ReserveRequest}[rpc]
        return req_type(seller_id=seller, amount=money(op[1]), reference=ref())
    rids = list(model.remaining) or ["rsv_" + "f" * 32]
    req_type = pb.ReleaseRequest if rpc == "Release" else pb.CaptureReservationRequest
    request = req_type(reservation_id=rids[op[1] % len(rids)], reference=ref(pb.REFERENCE_KIND_PAYOUT))
    if op[2] is not None:
        request.amount.CopyFrom(money(op[2]))
    return request


async def _snapshot(engine, seller: str):
    async with engine.connect() as conn:
        wallet = (
            await conn.execute(
                sa.text("SELECT available_minor, reserved_minor FROM wallets WHERE seller_id=:s"),
                {"s": seller},
            )
        ).all()
        movements = await conn.scalar(
            sa.text("SELECT count(*) FROM wallet_movements WHERE seller_id=:s"), {"s": seller}
        )
        reservations = (
            await conn.execute(
                sa.text("SELECT id, state, remaining_minor FROM reservations WHERE seller_id=:s ORDER BY id"),
                {"s": seller},
            )
        ).all()
    return wallet, movements, reservations


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operations, min_size=1, max_size=10))
async def test_random_operation_sequences_keep_every_invariant(stub, engine, ops):
    seller, model = new_seller(), Model()
    history: list[tuple[str, object, str]] = []  # (rpc, request, key) of every call made
    for op in ops:
        if op[0] in ("replay", "reuse"):
            if not history:
                continue
            rpc, request, key = history[op[1] % len(history)]
            if op[0] == "reuse":  # same key, different request
                request = type(request).FromString(request.SerializeToString())
                request.reference.id += "_other"
        else:
            rpc, request, key = op[0], _request(op, seller, model), new_key()
        history.append((rpc, request, key))

        stored = model.stored.get((rpc, key))
        if stored is not None:
            expected = None if stored[0] == request.SerializeToString() else "IDEMPOTENCY_KEY_REUSED"
        else:
            expected = model.expect(rpc, request)
        before = await _snapshot(engine, seller)
        try:
            call = getattr(stub, rpc)(request, metadata=md(key))
            response = await call
            replayed = ("idempotent-replayed", "true") in tuple(await call.initial_metadata())
            reason = None
        except grpc.aio.AioRpcError as exc:
            response, replayed, reason = None, False, error_info(exc).reason

        assert reason == expected, (rpc, request, reason, expected)
        if reason is not None or replayed:
            # A refusal or a replay changes nothing at all.
            assert await _snapshot(engine, seller) == before
            if replayed:
                assert stored is not None and response == stored[1]
        else:
            assert stored is None
            model.apply(rpc, request, response)
            model.stored[(rpc, key)] = (request.SerializeToString(), response)
            assert (response.wallet.available.amount_minor, response.wallet.reserved.amount_minor) == (
                model.available,
                model.reserved,
            )
        books = await assert_books_balance(engine, seller)
        assert (books.available, books.reserved) == (model.available, model.reserved)
        assert model.reserved == sum(model.remaining.values())
