"""Debit with allow_shortfall: a refund after a pay-out takes what the wallet holds, never more."""

from __future__ import annotations

import grpc

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from tests.wallet.wallet_helpers import books, md, money, new_key, new_seller, ref


async def credit(stub, seller: str, amount: int) -> None:
    await stub.Credit(
        pb.CreditRequest(seller_id=seller, amount=money(amount), reference=ref()), metadata=md(new_key())
    )


async def reserve(stub, seller: str, amount: int) -> None:
    await stub.Reserve(
        pb.ReserveRequest(seller_id=seller, amount=money(amount), reference=ref()), metadata=md(new_key())
    )


def _debit(seller: str, amount: int) -> pb.DebitRequest:
    return pb.DebitRequest(seller_id=seller, amount=money(amount), reference=ref(), allow_shortfall=True)


async def test_a_debit_beyond_available_takes_it_all_and_answers_the_shortfall(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 500)
    await reserve(stub, seller, 200)  # a pay-out's reservation is not touched
    reply = await stub.Debit(_debit(seller, 450), metadata=md(new_key()))
    assert reply.movement.amount.amount_minor == 300
    assert reply.shortfall.amount_minor == 150
    assert reply.wallet.available.amount_minor == 0
    assert reply.wallet.reserved.amount_minor == 200
    after = await books(engine, seller)
    assert (
        (after.available, after.reserved) == (after.movements_available, after.movements_reserved) == (0, 200)
    )


async def test_a_debit_within_available_has_no_shortfall(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 500)
    reply = await stub.Debit(_debit(seller, 120), metadata=md(new_key()))
    assert (reply.movement.amount.amount_minor, reply.shortfall.amount_minor) == (120, 0)
    assert reply.wallet.available.amount_minor == 380


async def test_an_empty_or_unknown_wallet_records_nothing_and_the_retry_replays_the_answer(stub, engine):
    seller, key = new_seller(), new_key()
    request = _debit(seller, 70)
    first = await stub.Debit(request, metadata=md(key))
    assert not first.HasField("movement")
    assert first.shortfall.amount_minor == 70
    await credit(stub, seller, 1000)  # money arriving later does not change the answer under the key
    again = await stub.Debit(request, metadata=md(key))
    assert again.shortfall.amount_minor == 70
    assert (await books(engine, seller)).available == 1000


async def test_a_batch_debit_cannot_ask_for_a_shortfall(stub, engine):
    seller = new_seller()
    await credit(stub, seller, 100)
    before = await books(engine, seller)
    reply = await stub.ApplyBatch(
        pb.ApplyBatchRequest(items=[pb.ApplyBatchItem(idempotency_key=new_key(), debit=_debit(seller, 10))])
    )
    assert reply.results[0].error.reason == "SHORTFALL_NOT_IN_BATCH"
    assert reply.results[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.name
    assert await books(engine, seller) == before
