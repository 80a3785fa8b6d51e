"""Credit, Debit, Reserve, Release and CaptureReservation through real gRPC against real PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.grpc_errors import error_info
from svckit.pagination import encode_token
from tests.wallet.wallet_helpers import (
    assert_books_balance,
    books,
    call_error,
    md,
    money,
    new_key,
    new_seller,
    ref,
)


async def credit(stub, seller, amount, currency="USD", key=None):
    return await stub.Credit(
        pb.CreditRequest(seller_id=seller, amount=money(amount, currency), reference=ref()),
        metadata=md(key or new_key()),
    )


async def reserve(stub, seller, amount, key=None):
    return await stub.Reserve(
        pb.ReserveRequest(seller_id=seller, amount=money(amount), reference=ref(pb.REFERENCE_KIND_PAYOUT)),
        metadata=md(key or new_key()),
    )


async def test_credit_creates_the_wallet_and_records_one_movement(stub, engine):
    seller, key = new_seller(), new_key()
    reference = ref(pb.REFERENCE_KIND_PAYMENT_ORDER, "po_123")
    resp = await stub.Credit(
        pb.CreditRequest(seller_id=seller, amount=money(1250), reference=reference), metadata=md(key)
    )
    m = resp.movement
    assert m.kind == pb.MOVEMENT_KIND_CREDIT
    assert (m.amount.amount_minor, m.amount.currency) == (1250, "USD")
    assert (m.available_after.amount_minor, m.reserved_after.amount_minor) == (1250, 0)
    assert m.reference == reference
    assert m.idempotency_key == key
    assert m.reservation_id == ""
    assert resp.wallet.available.amount_minor == 1250
    got = (await stub.GetWallet(pb.GetWalletRequest(seller_id=seller, currency="USD"))).wallet
    assert got == resp.wallet
    b = await assert_books_balance(engine, seller)
    assert (b.available, b.reserved, b.movement_count) == (1250, 0, 1)


async def test_each_currency_is_its_own_wallet(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 100, "USD")
    await credit(stub, seller, 7, "JPY")
    usd = (await stub.GetWallet(pb.GetWalletRequest(seller_id=seller, currency="USD"))).wallet
    jpy = (await stub.GetWallet(pb.GetWalletRequest(seller_id=seller, currency="jpy"))).wallet
    assert (usd.available.amount_minor, usd.available.currency) == (100, "USD")
    assert (jpy.available.amount_minor, jpy.available.currency) == (7, "JPY")


async def test_debit_removes_from_available(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 1000)
    resp = await stub.Debit(
        pb.DebitRequest(seller_id=seller, amount=money(300), reference=ref(pb.REFERENCE_KIND_REFUND)),
        metadata=md(new_key()),
    )
    assert resp.movement.kind == pb.MOVEMENT_KIND_DEBIT
    assert resp.wallet.available.amount_minor == 700
    b = await assert_books_balance(engine, seller)
    assert (b.available, b.movement_count) == (700, 2)


@pytest.mark.parametrize("rpc", ["Debit", "Reserve"])
async def test_beyond_available_is_refused_as_insufficient_funds_and_changes_nothing(stub, engine, rpc):
    seller = new_seller()
    await credit(stub, seller, 500)
    before = await books(engine, seller)
    request_type = pb.DebitRequest if rpc == "Debit" else pb.ReserveRequest
    err = await call_error(
        getattr(stub, rpc)(
            request_type(seller_id=seller, amount=money(501), reference=ref()), metadata=md(new_key())
        )
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(err)
    assert info.reason == "INSUFFICIENT_FUNDS"
    assert info.metadata["available_minor"] == "500"
    assert await books(engine, seller) == before


async def test_debit_of_an_unknown_wallet_is_insufficient_funds_and_creates_nothing(stub, engine):
    seller = new_seller()
    err = await call_error(
        stub.Debit(
            pb.DebitRequest(seller_id=seller, amount=money(1), reference=ref()), metadata=md(new_key())
        )
    )
    assert error_info(err).reason == "INSUFFICIENT_FUNDS"
    wallets = (await stub.ListWallets(pb.ListWalletsRequest(seller_id=seller))).wallets
    assert list(wallets) == []


async def test_reserved_money_is_not_available_for_debits(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 100)
    await reserve(stub, seller, 100)
    err = await call_error(
        stub.Debit(
            pb.DebitRequest(seller_id=seller, amount=money(1), reference=ref()), metadata=md(new_key())
        )
    )
    assert error_info(err).reason == "INSUFFICIENT_FUNDS"
    b = await assert_books_balance(engine, seller)
    assert (b.available, b.reserved) == (0, 100)


async def test_reservation_lifecycle_partial_release_partial_capture_then_close(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 1000)
    reserved = await reserve(stub, seller, 600)
    rsv = reserved.reservation
    assert rsv.state == pb.RESERVATION_STATE_OPEN
    assert rsv.reservation_id.startswith("rsv_")
    assert reserved.movement.reservation_id == rsv.reservation_id
    assert (reserved.wallet.available.amount_minor, reserved.wallet.reserved.amount_minor) == (400, 600)

    payout = ref(pb.REFERENCE_KIND_PAYOUT, "po_2026_11")
    released = await stub.Release(
        pb.ReleaseRequest(reservation_id=rsv.reservation_id, amount=money(100), reference=payout),
        metadata=md(new_key()),
    )
    assert released.reservation.state == pb.RESERVATION_STATE_PARTIALLY_SETTLED
    assert released.reservation.released.amount_minor == 100
    assert released.reservation.remaining.amount_minor == 500
    assert (released.wallet.available.amount_minor, released.wallet.reserved.amount_minor) == (500, 500)

    captured = await stub.CaptureReservation(
        pb.CaptureReservationRequest(reservation_id=rsv.reservation_id, amount=money(200), reference=payout),
        metadata=md(new_key()),
    )
    assert captured.movement.kind == pb.MOVEMENT_KIND_CAPTURE
    assert captured.reservation.state == pb.RESERVATION_STATE_PARTIALLY_SETTLED
    assert captured.reservation.captured.amount_minor == 200
    # Captured money leaves the wallet: available is untouched, reserved drops.
    assert (captured.wallet.available.amount_minor, captured.wallet.reserved.amount_minor) == (500, 300)

    # No amount: everything that remains.
    closed = await stub.Release(
        pb.ReleaseRequest(reservation_id=rsv.reservation_id, reference=payout), metadata=md(new_key())
    )
    assert closed.movement.amount.amount_minor == 300
    assert closed.reservation.state == pb.RESERVATION_STATE_CLOSED
    assert closed.reservation.remaining.amount_minor == 0
    assert (closed.wallet.available.amount_minor, closed.wallet.reserved.amount_minor) == (800, 0)

    got = await stub.GetReservation(pb.GetReservationRequest(reservation_id=rsv.reservation_id))
    assert got.reservation == closed.reservation
    b = await assert_books_balance(engine, seller)
    assert (b.available, b.reserved, b.movement_count) == (800, 0, 5)


async def test_capture_without_amount_takes_everything_remaining(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 900)
    rsv = (await reserve(stub, seller, 900)).reservation
    resp = await stub.CaptureReservation(
        pb.CaptureReservationRequest(
            reservation_id=rsv.reservation_id, reference=ref(pb.REFERENCE_KIND_PAYOUT)
        ),
        metadata=md(new_key()),
    )
    assert resp.reservation.state == pb.RESERVATION_STATE_CLOSED
    assert (resp.wallet.available.amount_minor, resp.wallet.reserved.amount_minor) == (0, 0)
    await assert_books_balance(engine, seller)


@pytest.mark.parametrize("rpc", ["Release", "CaptureReservation"])
async def test_a_closed_reservation_is_terminal(stub, engine, rpc):
    seller = new_seller()
    await credit(stub, seller, 300)
    rsv = (await reserve(stub, seller, 300)).reservation
    await stub.Release(
        pb.ReleaseRequest(reservation_id=rsv.reservation_id, reference=ref()), metadata=md(new_key())
    )
    before = await books(engine, seller)
    request_type = pb.ReleaseRequest if rpc == "Release" else pb.CaptureReservationRequest
    for amount in (None, money(1)):
        request = request_type(reservation_id=rsv.reservation_id, reference=ref())
        if amount is not None:
            request.amount.CopyFrom(amount)
        err = await call_error(getattr(stub, rpc)(request, metadata=md(new_key())))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_info(err).reason == "RESERVATION_EXHAUSTED"
    assert await books(engine, seller) == before


@pytest.mark.parametrize("rpc", ["Release", "CaptureReservation"])
async def test_more_than_the_reservation_holds_is_refused_and_changes_nothing(stub, engine, rpc):
    seller = new_seller()
    await credit(stub, seller, 1000)
    rsv = (await reserve(stub, seller, 400)).reservation
    before = await books(engine, seller)
    request_type = pb.ReleaseRequest if rpc == "Release" else pb.CaptureReservationRequest
    err = await call_error(
        getattr(stub, rpc)(
            request_type(reservation_id=rsv.reservation_id, amount=money(401), reference=ref()),
            metadata=md(new_key()),
        )
    )
    assert error_info(err).reason == "RESERVATION_EXHAUSTED"
    assert error_info(err).metadata["remaining_minor"] == "400"
    assert await books(engine, seller) == before
    still = await stub.GetReservation(pb.GetReservationRequest(reservation_id=rsv.reservation_id))
    assert still.reservation.state == pb.RESERVATION_STATE_OPEN


async def test_an_unknown_reservation_is_not_found(stub):
    err = await call_error(
        stub.Release(
            pb.ReleaseRequest(reservation_id="rsv_" + "0" * 32, reference=ref()), metadata=md(new_key())
        )
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(err).reason == "RESERVATION_NOT_FOUND"
    err = await call_error(stub.GetReservation(pb.GetReservationRequest(reservation_id="rsv_" + "1" * 32)))
    assert error_info(err).reason == "RESERVATION_NOT_FOUND"


async def test_release_in_another_currency_is_invalid(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 100)
    rsv = (await reserve(stub, seller, 100)).reservation
    err = await call_error(
        stub.Release(
            pb.ReleaseRequest(reservation_id=rsv.reservation_id, amount=money(10, "EUR"), reference=ref()),
            metadata=md(new_key()),
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error_info(err).reason, error_info(err).metadata["field"]) == (
        "CURRENCY_MISMATCH",
        "amount.currency",
    )


# ---- idempotency --------------------------------------------------------------------------------


async def test_each_mutation_replays_on_the_same_key_and_changes_nothing(stub, engine):
    seller = new_seller()
    calls = []
    first = await credit(stub, seller, 1000)
    rsv_request = pb.ReserveRequest(
        seller_id=seller, amount=money(400), reference=ref(pb.REFERENCE_KIND_PAYOUT)
    )
    rsv_key = new_key()
    rsv = await stub.Reserve(rsv_request, metadata=md(rsv_key))
    rid = rsv.reservation.reservation_id
    calls = [
        (stub.Reserve, rsv_request, rsv_key, rsv),
        (stub.Debit, pb.DebitRequest(seller_id=seller, amount=money(100), reference=ref()), new_key(), None),
        (
            stub.Release,
            pb.ReleaseRequest(reservation_id=rid, amount=money(50), reference=ref()),
            new_key(),
            None,
        ),
        (
            stub.CaptureReservation,
            pb.CaptureReservationRequest(reservation_id=rid, reference=ref()),
            new_key(),
            None,
        ),
    ]
    for i, (rpc, request, key, response) in enumerate(calls):
        if response is None:
            calls[i] = (rpc, request, key, await rpc(request, metadata=md(key)))
    settled = await books(engine, seller)
    assert (settled.available, settled.reserved, settled.movement_count) == (550, 0, 5)
    for rpc, request, key, response in calls:
        call = rpc(request, metadata=md(key))
        assert await call == response  # same reservation id, same movement id, same balances
        assert ("idempotent-replayed", "true") in tuple(await call.initial_metadata())
    assert await books(engine, seller) == settled
    assert first.wallet.available.amount_minor == 1000


async def test_same_key_with_a_different_request_is_refused_as_reused(stub, engine):
    seller, key = new_seller(), new_key()
    await credit(stub, seller, 100, key=key)
    before = await books(engine, seller)
    err = await call_error(credit(stub, seller, 101, key=key))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err).reason == "IDEMPOTENCY_KEY_REUSED"
    assert await books(engine, seller) == before


async def test_a_refused_call_stores_nothing_so_its_key_may_be_retried_later(stub, engine):
    seller, key = new_seller(), new_key()
    await credit(stub, seller, 100)
    request = pb.DebitRequest(seller_id=seller, amount=money(150), reference=ref(pb.REFERENCE_KIND_REFUND))
    err = await call_error(stub.Debit(request, metadata=md(key)))
    assert error_info(err).reason == "INSUFFICIENT_FUNDS"
    await credit(stub, seller, 100)
    resp = await stub.Debit(request, metadata=md(key))
    assert resp.wallet.available.amount_minor == 50
    assert (await books(engine, seller)).movement_count == 3


async def test_a_mutation_without_idempotency_key_is_refused(stub):
    err = await call_error(
        stub.Credit(pb.CreditRequest(seller_id=new_seller(), amount=money(1), reference=ref()))
    )
    assert error_info(err).reason == "IDEMPOTENCY_KEY_MISSING"


# ---- validation ------------------------------------------------------------------------------------


def _credit(**overrides):
    fields = {"seller_id": "seller_valid", "amount": money(100), "reference": ref()}
    fields.update(overrides)
    return pb.CreditRequest(**{k: v for k, v in fields.items() if v is not None})


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        (_credit(seller_id=""), "seller_id", "INVALID_SELLER_ID"),
        (_credit(seller_id="has space"), "seller_id", "INVALID_SELLER_ID"),
        (_credit(seller_id="x" * 129), "seller_id", "INVALID_SELLER_ID"),
        (_credit(amount=money(0)), "amount.amount_minor", "AMOUNT_NOT_POSITIVE"),
        (_credit(amount=money(-5)), "amount.amount_minor", "AMOUNT_NOT_POSITIVE"),
        (_credit(amount=None), "amount.currency", "INVALID_CURRENCY"),
        (_credit(amount=money(100, "XXX")), "amount.currency", "UNKNOWN_CURRENCY"),
        (_credit(amount=money(100, "US")), "amount.currency", "INVALID_CURRENCY"),
        (_credit(reference=None), "reference.kind", "INVALID_REFERENCE_KIND"),
        (_credit(reference=pb.Reference(kind=99, id="x")), "reference.kind", "INVALID_REFERENCE_KIND"),  # type: ignore[arg-type]  # not a ReferenceKind, on purpose
        (
            _credit(reference=pb.Reference(kind=pb.REFERENCE_KIND_REFUND)),
            "reference.id",
            "INVALID_REFERENCE_ID",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_bad_credit_is_invalid_argument_with_field_and_stores_nothing(
    stub, engine, request_, field, reason
):
    seller = new_seller()
    if request_.seller_id == "seller_valid":
        request_.seller_id = seller
    key = new_key()
    err = await call_error(stub.Credit(request_, metadata=md(key)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(err)
    assert (info.metadata["field"], info.reason) == (field, reason)
    b = await books(engine, seller)
    assert (b.available, b.movement_count) == (0, 0)
    assert list((await stub.ListWallets(pb.ListWalletsRequest(seller_id=seller))).wallets) == []


@pytest.mark.parametrize(
    ("call", "field", "reason"),
    [
        (lambda s: s.Release(pb.ReleaseRequest(reservation_id="nope", reference=ref()), metadata=md(new_key())),
         "reservation_id", "INVALID_RESERVATION_ID"),
        (lambda s: s.GetWallet(pb.GetWalletRequest(seller_id="ok", currency="dollars")), "currency", "INVALID_CURRENCY"),
        (lambda s: s.ListWallets(pb.ListWalletsRequest(page_size=-1)), "page_size", "INVALID_PAGE_SIZE"),
        (lambda s: s.ListWallets(pb.ListWalletsRequest(page_size=1001)), "page_size", "INVALID_PAGE_SIZE"),
        (lambda s: s.ListWallets(pb.ListWalletsRequest(page_token="garbage")), "page_token", "INVALID_PAGE_TOKEN"),
        (lambda s: s.ListWallets(pb.ListWalletsRequest(page_token=encode_token(["wallets", None], 5))),
         "page_token", "INVALID_PAGE_TOKEN"),
        (lambda s: s.ListMovements(pb.ListMovementsRequest(seller_id="ok", currency="USD", page_token="e30")),
         "page_token", "INVALID_PAGE_TOKEN"),
    ],
    ids=["reservation_id", "currency", "page_size_negative", "page_size_too_big", "wallet_token",
         "wallet_token_forged", "movement_token"],
)  # fmt: skip
async def test_other_bad_input_is_invalid_argument_with_field(stub, call, field, reason):
    err = await call_error(call(stub))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(err)
    assert (info.metadata["field"], info.reason) == (field, reason)
