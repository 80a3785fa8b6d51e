"""ApplyBatch reserve and capture items: each answered as the single Reserve/CaptureReservation would
answer it at that point, in request order against the running balances and reservations, with keys in
the single RPCs' key spaces (what pay-outs rely on to batch a chunk's reservations and captures)."""

from __future__ import annotations

import sqlalchemy as sa

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from tests.wallet.test_wallet_batch import credit, stored_keys
from tests.wallet.wallet_helpers import assert_books_balance, md, money, new_key, new_seller, ref


def reserve_request(seller: str, amount: int, currency: str = "USD", payout: str = "") -> pb.ReserveRequest:
    reference = ref(pb.REFERENCE_KIND_PAYOUT, payout or None)
    return pb.ReserveRequest(seller_id=seller, amount=money(amount, currency), reference=reference)


def reserve(key: str, seller: str, amount: int, currency: str = "USD") -> pb.ApplyBatchItem:
    return pb.ApplyBatchItem(idempotency_key=key, reserve=reserve_request(seller, amount, currency))


def capture_request(reservation_id: str, amount: int | None = None, currency: str = "USD"):
    request = pb.CaptureReservationRequest(
        reservation_id=reservation_id, reference=ref(pb.REFERENCE_KIND_PAYOUT)
    )
    if amount is not None:
        request.amount.CopyFrom(money(amount, currency))
    return request


def capture(key: str, reservation_id: str, amount: int | None = None, currency: str = "USD"):
    return pb.ApplyBatchItem(idempotency_key=key, capture=capture_request(reservation_id, amount, currency))


def outcome(result: pb.ApplyBatchResult) -> tuple:
    """(kind, replayed, available after, reserved after) or ("error", reason, code)."""
    which = result.WhichOneof("outcome")
    if which == "error":
        return ("error", result.error.reason, result.error.code)
    answer = getattr(result, which)
    assert answer.wallet.available == answer.movement.available_after
    assert answer.wallet.reserved == answer.movement.reserved_after
    return (
        which,
        result.replayed,
        answer.movement.available_after.amount_minor,
        answer.movement.reserved_after.amount_minor,
    )


async def reservations_of(engine, seller: str) -> dict[str, tuple[str, int, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT id, state, captured_minor, remaining_minor FROM reservations WHERE seller_id = :s"
            ),
            {"s": seller},
        )
        return {r.id: (r.state, r.captured_minor, r.remaining_minor) for r in rows}


async def test_mixed_batch_of_reservations_and_captures_in_request_order(stub, engine):
    a, b, nobody = new_seller(), new_seller(), new_seller()
    await stub.Credit(
        pb.CreditRequest(seller_id=a, amount=money(100), reference=ref()), metadata=md(new_key())
    )
    earlier = await stub.Reserve(reserve_request(a, 30), metadata=md(new_key()))
    earlier_id = earlier.reservation.reservation_id
    other = await stub.Reserve(reserve_request(a, 5), metadata=md(new_key()))

    k = [new_key() for _ in range(12)]
    items = [
        reserve(k[0], a, 50),  # 0: a 15 available, 85 reserved
        reserve(k[1], a, 16),  # 1: refused, 15 available
        capture(k[2], earlier_id, 10),  # 2: part of the earlier reservation: 75 reserved
        capture(k[3], earlier_id),  # 3: the rest (20): 55 reserved, closed
        capture(k[4], earlier_id, 1),  # 4: closed now
        capture(k[5], "rsv_" + "0" * 32),  # 5: no such reservation
        capture(k[6], other.reservation.reservation_id, 1, "EUR"),  # 6: not its currency
        reserve(k[7], nobody, 1),  # 7: a wallet that does not exist
        credit(k[8], a, 1),  # 8: a 16 available
        reserve(k[9], a, 16),  # 9: sees the credit: 0 available, 71 reserved
        capture(k[10], "not-a-reservation"),  # 10
        reserve(k[11], b, 0),  # 11
    ]
    reply = await stub.ApplyBatch(pb.ApplyBatchRequest(items=items))
    assert [outcome(r) for r in reply.results] == [
        ("reserve", False, 15, 85),
        ("error", "INSUFFICIENT_FUNDS", "FAILED_PRECONDITION"),
        ("capture", False, 15, 75),
        ("capture", False, 15, 55),
        ("error", "RESERVATION_EXHAUSTED", "FAILED_PRECONDITION"),
        ("error", "RESERVATION_NOT_FOUND", "NOT_FOUND"),
        ("error", "CURRENCY_MISMATCH", "INVALID_ARGUMENT"),
        ("error", "INSUFFICIENT_FUNDS", "FAILED_PRECONDITION"),
        ("credit", False, 16, 55),
        ("reserve", False, 0, 71),
        ("error", "INVALID_RESERVATION_ID", "INVALID_ARGUMENT"),
        ("error", "AMOUNT_NOT_POSITIVE", "INVALID_ARGUMENT"),
    ]
    assert reply.results[1].error.message == "available is 0.15 USD; 0.16 USD requested"
    # The answers carry the reservations as the single RPCs would.
    opened = reply.results[0].reserve.reservation
    assert (opened.state, opened.amount.amount_minor, opened.remaining.amount_minor) == (
        pb.RESERVATION_STATE_OPEN,
        50,
        50,
    )
    assert reply.results[0].reserve.movement.reservation_id == opened.reservation_id
    first, rest = reply.results[2].capture.reservation, reply.results[3].capture.reservation
    assert (first.state, first.captured.amount_minor, first.remaining.amount_minor) == (
        pb.RESERVATION_STATE_PARTIALLY_SETTLED,
        10,
        20,
    )
    assert (rest.state, rest.captured.amount_minor, rest.remaining.amount_minor) == (
        pb.RESERVATION_STATE_CLOSED,
        30,
        0,
    )

    # Stored as answered: balances are the sum of the movements, the reservations as the answers say.
    books = await assert_books_balance(engine, a)
    assert (books.available, books.reserved, books.movement_count) == (0, 71, 8)
    stored = await reservations_of(engine, a)
    assert stored[earlier_id] == ("CLOSED", 30, 0)
    assert stored[opened.reservation_id] == ("OPEN", 0, 50)
    assert stored[reply.results[9].reserve.reservation.reservation_id] == ("OPEN", 0, 16)
    assert stored[other.reservation.reservation_id] == ("OPEN", 0, 5)
    assert len(stored) == 4
    got = await stub.GetReservation(pb.GetReservationRequest(reservation_id=earlier_id))
    assert got.reservation == rest
    # Refused items stored nothing under their keys.
    assert await stored_keys(engine, k) == {k[0], k[2], k[3], k[8], k[9]}
    assert await reservations_of(engine, nobody) == {}


async def test_reserve_and_capture_items_share_keys_with_the_single_rpcs(stub):
    seller = new_seller()
    await stub.Credit(
        pb.CreditRequest(seller_id=seller, amount=money(100), reference=ref()), metadata=md(new_key())
    )
    # A batch reservation, then the single Reserve with its key and request: the same reservation.
    rk = new_key()
    request = reserve_request(seller, 40)
    batched = (
        await stub.ApplyBatch(
            pb.ApplyBatchRequest(items=[pb.ApplyBatchItem(idempotency_key=rk, reserve=request)])
        )
    ).results[0]
    rpc = stub.Reserve(request, metadata=md(rk))
    assert await rpc == batched.reserve
    assert dict(await rpc.initial_metadata()).get("idempotent-replayed") == "true"
    # A single capture, then a batch item with its key and request: replayed, not captured twice.
    ck = new_key()
    capture_req = capture_request(batched.reserve.reservation.reservation_id, 15)
    single = await stub.CaptureReservation(capture_req, metadata=md(ck))
    again = (
        await stub.ApplyBatch(
            pb.ApplyBatchRequest(items=[pb.ApplyBatchItem(idempotency_key=ck, capture=capture_req)])
        )
    ).results[0]
    assert again.replayed and again.capture == single
    # The reservation's key with another request is refused as the single Reserve refuses it.
    reused = (await stub.ApplyBatch(pb.ApplyBatchRequest(items=[reserve(rk, seller, 1)]))).results[0]
    assert (reused.error.reason, reused.error.code) == ("IDEMPOTENCY_KEY_REUSED", "INVALID_ARGUMENT")
    wallet = (await stub.GetWallet(pb.GetWalletRequest(seller_id=seller, currency="USD"))).wallet
    assert (wallet.available.amount_minor, wallet.reserved.amount_minor) == (60, 25)


async def test_a_replayed_batch_of_reservations_and_captures_changes_nothing(stub, engine):
    seller = new_seller()
    await stub.Credit(
        pb.CreditRequest(seller_id=seller, amount=money(100), reference=ref()), metadata=md(new_key())
    )
    held = await stub.Reserve(reserve_request(seller, 60), metadata=md(new_key()))
    request = pb.ApplyBatchRequest(
        items=[
            capture(new_key(), held.reservation.reservation_id),
            reserve(new_key(), seller, 40),
            reserve(new_key(), seller, 1),  # refused now and again: nothing is left
        ]
    )
    first = await stub.ApplyBatch(request)
    before = (await assert_books_balance(engine, seller), await reservations_of(engine, seller))
    again = await stub.ApplyBatch(request)
    after = (await assert_books_balance(engine, seller), await reservations_of(engine, seller))
    assert before == after
    assert [r.replayed for r in again.results] == [True, True, False]
    assert again.results[0].capture == first.results[0].capture
    assert again.results[1].reserve == first.results[1].reserve
    assert again.results[2].error.reason == "INSUFFICIENT_FUNDS"
    assert (before[0].available, before[0].reserved) == (0, 40)
