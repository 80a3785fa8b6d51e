"""ApplyBatch: credits and debits applied or refused one by one, in request order, in one transaction,
with item keys in the key space of the single Credit/Debit RPCs."""

from __future__ import annotations

import sqlalchemy as sa

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from tests.wallet.wallet_helpers import assert_books_balance, call_error, md, money, new_key, new_seller, ref


def credit(key: str, seller: str, amount: int, currency: str = "USD", reference=None) -> pb.ApplyBatchItem:
    request = pb.CreditRequest(seller_id=seller, amount=money(amount, currency), reference=reference or ref())
    return pb.ApplyBatchItem(idempotency_key=key, credit=request)


def debit(key: str, seller: str, amount: int, currency: str = "USD", reference=None) -> pb.ApplyBatchItem:
    request = pb.DebitRequest(
        seller_id=seller, amount=money(amount, currency), reference=reference or ref(pb.REFERENCE_KIND_REFUND)
    )
    return pb.ApplyBatchItem(idempotency_key=key, debit=request)


def outcome(result: pb.ApplyBatchResult) -> tuple:
    """("credit"|"debit", replayed, available after) or ("error", reason, code)."""
    which = result.WhichOneof("outcome")
    if which == "error":
        return ("error", result.error.reason, result.error.code)
    answer = getattr(result, which)
    assert answer.wallet.available == answer.movement.available_after
    return (which, result.replayed, answer.movement.available_after.amount_minor)


async def stored_keys(engine, keys: list[str]) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT key FROM idempotency_keys WHERE key = ANY(:k)"), {"k": keys}
        )
        return {r.key for r in rows}


async def test_mixed_batch_applies_each_item_on_its_own_in_request_order(stub, engine):
    a, b, empty = new_seller(), new_seller(), new_seller()
    # Earlier single calls whose keys the batch shares.
    single_key, reused_key = new_key(), new_key()
    single_request = pb.CreditRequest(seller_id=a, amount=money(40), reference=ref())
    single = await stub.Credit(single_request, metadata=md(single_key))
    await stub.Credit(
        pb.CreditRequest(seller_id=b, amount=money(5), reference=ref()), metadata=md(reused_key)
    )

    k = [new_key() for _ in range(20)]
    items = [
        credit(k[0], a, 100),  # 0: a = 140
        debit(k[1], a, 150),  # 1: refused, running balance 140
        debit(k[2], a, 120),  # 2: a = 20
        debit(k[3], a, 21),  # 3: refused, 20 left
        pb.ApplyBatchItem(idempotency_key=single_key, credit=single_request),  # 4: replays the single Credit
        credit(reused_key, b, 6),  # 5: the key was used with another request
        credit(k[4], b, 7),  # 6: b = 12 (5 from the single call)
        credit(k[4], b, 7),  # 7: same key again in this call
        credit(k[5], "bad seller!", 1),  # 8
        credit(k[6], a, 0),  # 9
        credit(k[7], a, 1, "XXX"),  # 10
        credit(k[8], a, 1, reference=pb.Reference(kind=pb.REFERENCE_KIND_UNSPECIFIED, id="x")),  # 11
        pb.ApplyBatchItem(idempotency_key=k[9]),  # 12: no operation
        credit("", a, 1),  # 13: no key
        credit("k" * 256, a, 1),  # 14: key too long
        debit(k[10], empty, 1),  # 15: a wallet that does not exist
        credit(k[11], a, 1, "eur"),  # 16: another currency is another wallet (created)
        debit(k[12], a, 20),  # 17: a = 0
    ]
    reply = await stub.ApplyBatch(pb.ApplyBatchRequest(items=items))
    got = [outcome(r) for r in reply.results]
    assert got == [
        ("credit", False, 140),
        ("error", "INSUFFICIENT_FUNDS", "FAILED_PRECONDITION"),
        ("debit", False, 20),
        ("error", "INSUFFICIENT_FUNDS", "FAILED_PRECONDITION"),
        ("credit", True, 40),
        ("error", "IDEMPOTENCY_KEY_REUSED", "INVALID_ARGUMENT"),
        ("credit", False, 12),
        ("error", "DUPLICATE_ITEM_KEY", "INVALID_ARGUMENT"),
        ("error", "INVALID_SELLER_ID", "INVALID_ARGUMENT"),
        ("error", "AMOUNT_NOT_POSITIVE", "INVALID_ARGUMENT"),
        ("error", "UNKNOWN_CURRENCY", "INVALID_ARGUMENT"),
        ("error", "INVALID_REFERENCE_KIND", "INVALID_ARGUMENT"),
        ("error", "OPERATION_MISSING", "INVALID_ARGUMENT"),
        ("error", "IDEMPOTENCY_KEY_MISSING", "INVALID_ARGUMENT"),
        ("error", "IDEMPOTENCY_KEY_TOO_LONG", "INVALID_ARGUMENT"),
        ("error", "INSUFFICIENT_FUNDS", "FAILED_PRECONDITION"),
        ("credit", False, 1),
        ("debit", False, 0),
    ]
    assert reply.results[1].error.message == "available is 1.40 USD; 1.50 USD requested"
    assert reply.results[3].error.message == "available is 0.20 USD; 0.21 USD requested"
    # The replayed item answers exactly what the single Credit answered.
    assert reply.results[4].credit == single

    # Movements: the single credit plus the three applied items in a, one in b; nothing for refusals.
    books_a = await assert_books_balance(engine, a)
    assert (books_a.available, books_a.movement_count) == (0, 4)
    books_b = await assert_books_balance(engine, b)
    assert (books_b.available, books_b.movement_count) == (12, 2)
    assert (await assert_books_balance(engine, a, "EUR")).available == 1
    wallet = await stub.GetWallet(pb.GetWalletRequest(seller_id=empty, currency="USD"))
    assert not wallet.wallet.HasField("update_time")  # a refused debit creates no wallet
    assert await stored_keys(engine, k) == {k[0], k[2], k[4], k[11], k[12]}
    movements = (await stub.ListMovements(pb.ListMovementsRequest(seller_id=a, currency="USD"))).movements
    assert [m.kind for m in movements] == [
        pb.MOVEMENT_KIND_DEBIT,
        pb.MOVEMENT_KIND_DEBIT,
        pb.MOVEMENT_KIND_CREDIT,
        pb.MOVEMENT_KIND_CREDIT,
    ]
    assert [m.idempotency_key for m in movements] == [k[12], k[2], k[0], single_key]


async def test_item_keys_are_shared_with_single_credit_and_debit(stub):
    seller = new_seller()
    ck, dk = new_key(), new_key()
    reply = await stub.ApplyBatch(pb.ApplyBatchRequest(items=[credit(ck, seller, 50), debit(dk, seller, 20)]))
    applied_credit, applied_debit = reply.results[0].credit, reply.results[1].debit

    # A single call with an item's key and the same request replays the item's answer...
    credit_request = pb.CreditRequest(
        seller_id=seller, amount=money(50), reference=applied_credit.movement.reference
    )
    rpc = stub.Credit(credit_request, metadata=md(ck))
    assert await rpc == applied_credit
    assert dict(await rpc.initial_metadata()).get("idempotent-replayed") == "true"
    debit_request = pb.DebitRequest(
        seller_id=seller, amount=money(20), reference=applied_debit.movement.reference
    )
    assert await stub.Debit(debit_request, metadata=md(dk)) == applied_debit
    # ...and with another request is refused as a reused key.
    err = await call_error(
        stub.Credit(pb.CreditRequest(seller_id=seller, amount=money(51), reference=ref()), metadata=md(ck))
    )
    assert err.code().name == "INVALID_ARGUMENT" and "already used" in err.details()
    wallet = (await stub.GetWallet(pb.GetWalletRequest(seller_id=seller, currency="USD"))).wallet
    assert wallet.available.amount_minor == 30


async def test_a_replayed_batch_changes_nothing(stub, engine):
    seller, other = new_seller(), new_seller()
    keys = [new_key() for _ in range(6)]
    request = pb.ApplyBatchRequest(
        items=[
            credit(keys[0], seller, 300),
            debit(keys[1], seller, 1000),  # refused now and again: never enough money arrives
            debit(keys[2], seller, 100),
            credit(keys[3], other, 9),
            credit(keys[4], "bad seller!", 1),
            debit(keys[5], other, 10),  # refused: other has 9
        ]
    )
    first = await stub.ApplyBatch(request)
    before = (await assert_books_balance(engine, seller), await assert_books_balance(engine, other))
    again = await stub.ApplyBatch(request)
    after = (await assert_books_balance(engine, seller), await assert_books_balance(engine, other))
    assert before == after
    assert [r.replayed for r in again.results] == [True, False, True, True, False, False]
    for one, two in zip(first.results, again.results, strict=True):
        assert one.WhichOneof("outcome") == two.WhichOneof("outcome")
        if one.HasField("error"):
            # Refused items are fresh attempts; the message names the balance at the time.
            assert (one.error.reason, one.error.code) == (two.error.reason, two.error.code)
        else:
            assert getattr(one, one.WhichOneof("outcome")) == getattr(two, two.WhichOneof("outcome"))
    assert (before[0].available, before[1].available) == (200, 9)


async def test_empty_and_oversized_batches(stub):
    assert list((await stub.ApplyBatch(pb.ApplyBatchRequest())).results) == []
    seller = new_seller()
    err = await call_error(
        stub.ApplyBatch(pb.ApplyBatchRequest(items=[credit(new_key(), seller, 1) for _ in range(1001)]))
    )
    assert err.code().name == "INVALID_ARGUMENT" and "at most 1000" in err.details()
    wallet = (await stub.GetWallet(pb.GetWalletRequest(seller_id=seller, currency="USD"))).wallet
    assert wallet.available.amount_minor == 0 and not wallet.HasField("update_time")
    reply = await stub.ApplyBatch(
        pb.ApplyBatchRequest(items=[credit(new_key(), seller, 1) for _ in range(1000)])
    )
    assert [outcome(r)[2] for r in reply.results] == list(range(1, 1001))


async def test_a_credit_beyond_int64_is_refused_for_that_item_only(stub, engine):
    seller = new_seller()
    top = 2**63 - 1
    reply = await stub.ApplyBatch(
        pb.ApplyBatchRequest(
            items=[
                credit(new_key(), seller, top - 10),
                credit(new_key(), seller, 11),
                credit(new_key(), seller, 10),
            ]
        )
    )
    assert [outcome(r) for r in reply.results] == [
        ("credit", False, top - 10),
        ("error", "BALANCE_LIMIT_EXCEEDED", "FAILED_PRECONDITION"),
        ("credit", False, top),
    ]
    assert (await assert_books_balance(engine, seller)).movement_count == 2
