"""PostTransactions (per-item outcomes and keys) and ReverseTransaction (mirror image, at most once)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.ledger.ledger_helpers import C, D, md, transfer, uid


def _item(key: str, request: pb.PostTransactionRequest) -> pb.PostTransactionsItem:
    return pb.PostTransactionsItem(idempotency_key=key, transaction=request)


async def _balance(stub, account: str) -> int:
    return (await stub.GetBalance(pb.GetBalanceRequest(account=account))).balance_minor


@pytest.mark.parametrize("accounts_exist", [False, True], ids=["first-use", "set-based"])
async def test_batch_items_succeed_or_fail_on_their_own(stub, admin, accounts_exist):
    seller, bank, cash = f"liability:seller_payable:b{uid()}", f"asset:bank:b{uid()}", f"asset:cash:b{uid()}"
    ghost = f"expense:ghost:b{uid()}"
    if accounts_exist:  # a batch on existing accounts takes the set-based path of the database
        for name in (seller, bank, cash):
            request = pb.CreateAccountRequest(name=name, currency="USD", non_negative=name == seller)
            await admin.CreateAccount(request, metadata=md())
    k1, k2, k3, k4, k5 = (uid() for _ in range(5))
    request = pb.PostTransactionsRequest(
        items=[
            _item(k1, transfer(bank, seller, 1_000)),
            _item(k2, transfer(seller, bank, 5_000)),  # would overdraw the seller
            _item(k3, transfer(bank, seller, 10, "EUR")),  # accounts are USD
            _item(k4, pb.PostTransactionRequest(entries=transfer(bank, seller, 1).entries[:1])),
            _item(k1, transfer(cash, seller, 1)),  # same key twice in one call
            _item("", transfer(cash, seller, 1)),
            _item(k5, transfer(seller, cash, 400)),  # sees item 1's effect
            _item(uid(), transfer(seller, ghost, 10**9)),  # refused: its new account must not remain
        ]
    )
    results = (await stub.PostTransactions(request, metadata=md())).results
    assert [r.WhichOneof("outcome") for r in results] == [
        "transaction", "error", "error", "error", "error", "error", "transaction", "error",
    ]  # fmt: skip
    assert results[7].error.reason == "INSUFFICIENT_BALANCE"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetAccount(pb.GetAccountRequest(name=ghost))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert [r.error.reason for r in results[1:6]] == [
        "INSUFFICIENT_BALANCE",
        "CURRENCY_MISMATCH",
        "TOO_FEW_ENTRIES",
        "DUPLICATE_ITEM_KEY",
        "IDEMPOTENCY_KEY_MISSING",
    ]
    assert results[1].error.code == "FAILED_PRECONDITION"
    assert results[2].error.code == "INVALID_ARGUMENT"
    assert await _balance(stub, seller) == 600
    assert await _balance(stub, bank) == 1_000
    assert await _balance(stub, cash) == -400  # credited; assets without the rule may go negative
    report = await stub.VerifyLedger(pb.VerifyLedgerRequest())
    assert report.ok, list(report.findings)[:3]


async def test_item_keys_share_the_key_space_of_post_transaction(stub):
    a, b = f"asset:cash:k{uid()}", f"revenue:sales:k{uid()}"
    key = uid()
    single = (await stub.PostTransaction(transfer(a, b, 250), metadata=md(key))).transaction
    batch = await stub.PostTransactions(
        pb.PostTransactionsRequest(items=[_item(key, transfer(a, b, 250)), _item(uid(), transfer(a, b, 1))]),
        metadata=md(),
    )
    assert batch.results[0].replayed
    assert batch.results[0].transaction == single
    assert not batch.results[1].replayed
    assert await _balance(stub, a) == 251
    # And the other way round: an item posted by a batch replays through the single RPC.
    new_key = uid()
    posted = await stub.PostTransactions(
        pb.PostTransactionsRequest(items=[_item(new_key, transfer(a, b, 7))]), metadata=md()
    )
    again = await stub.PostTransaction(transfer(a, b, 7), metadata=md(new_key))
    assert again.transaction == posted.results[0].transaction
    reused = await stub.PostTransactions(
        pb.PostTransactionsRequest(items=[_item(new_key, transfer(a, b, 8))]), metadata=md()
    )
    assert reused.results[0].error.reason == "IDEMPOTENCY_KEY_REUSED"
    assert await _balance(stub, a) == 258


async def test_replaying_a_whole_batch_by_its_call_key_changes_nothing(stub):
    a, b = f"asset:cash:w{uid()}", f"revenue:sales:w{uid()}"
    request = pb.PostTransactionsRequest(items=[_item(uid(), transfer(a, b, n)) for n in (1, 2, 3)])
    call_key = uid()
    first = await stub.PostTransactions(request, metadata=md(call_key))
    second = await stub.PostTransactions(request, metadata=md(call_key))
    assert first == second
    assert await _balance(stub, a) == 6


async def test_a_batch_call_that_died_after_its_commit_is_resumed_by_its_retry(isolated_ledger):
    """The batch commits in its own statement and the call's record is written after it: a call that
    died in between left posted items and no record. Its retry replays every posted item."""
    stub = isolated_ledger.stub
    a, b = f"asset:cash:r{uid()}", f"revenue:sales:r{uid()}"
    request = pb.PostTransactionsRequest(items=[_item(uid(), transfer(a, b, n)) for n in (1, 2, 3)])
    call_key = uid()
    first = await stub.PostTransactions(request, metadata=md(call_key))
    with isolated_ledger.connect() as conn:  # as if the call had died before writing its record
        deleted = conn.execute(
            "DELETE FROM idempotency_keys WHERE scope = 'ledger.PostTransactions' AND key = %s", (call_key,)
        ).rowcount
        assert deleted == 1
        transactions = conn.execute("SELECT count(*) FROM transactions").fetchone()[0]

    retried = await stub.PostTransactions(request, metadata=md(call_key))

    assert [r.transaction for r in retried.results] == [r.transaction for r in first.results]
    assert all(r.replayed for r in retried.results)
    assert await _balance(stub, a) == 6
    with isolated_ledger.connect() as conn:
        assert conn.execute("SELECT count(*) FROM transactions").fetchone()[0] == transactions
    # The retry finished the call: from now on its answer is the stored one.
    again = stub.PostTransactions(request, metadata=md(call_key))
    assert await again == retried
    assert dict(await again.initial_metadata()).get("idempotent-replayed") == "true"


async def test_concurrent_duplicates_of_a_batch_call_post_it_once(stub):
    a, b = f"asset:cash:c{uid()}", f"revenue:sales:c{uid()}"
    request = pb.PostTransactionsRequest(items=[_item(uid(), transfer(a, b, n)) for n in (10, 20)])
    call_key = uid()

    async def call():
        try:
            return await stub.PostTransactions(request, metadata=md(call_key))
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.ABORTED, err
            assert error_info(err).reason == "IDEMPOTENCY_KEY_IN_USE"
            return None

    answers = [r for r in await asyncio.gather(*(call() for _ in range(8))) if r is not None]
    assert answers
    ids = {tuple(r.transaction.id for r in answer.results) for answer in answers}
    assert len(ids) == 1 and 0 not in next(iter(ids))
    assert await _balance(stub, a) == 30


async def test_reversal_posts_the_mirror_image_once(stub):
    psp, seller = f"asset:psp_receivable:v{uid()}", f"liability:seller_payable:v{uid()}"
    original = (await stub.PostTransaction(transfer(psp, seller, 900), metadata=md())).transaction
    reversal = (
        await stub.ReverseTransaction(pb.ReverseTransactionRequest(transaction_id=original.id), metadata=md())
    ).transaction
    assert reversal.reverses_id == original.id
    assert [(e.account, e.direction, e.amount_minor) for e in reversal.entries] == [
        (psp, C, 900),
        (seller, D, 900),
    ]
    assert reversal.description == f"reversal of {original.id}"
    assert await _balance(stub, psp) == 0
    assert await _balance(stub, seller) == 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReverseTransaction(pb.ReverseTransactionRequest(transaction_id=original.id), metadata=md())
    assert (err.value.code(), error_info(err.value).reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ALREADY_REVERSED",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReverseTransaction(pb.ReverseTransactionRequest(transaction_id=reversal.id), metadata=md())
    assert error_info(err.value).reason == "CANNOT_REVERSE_REVERSAL"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReverseTransaction(pb.ReverseTransactionRequest(transaction_id=10**15), metadata=md())
    assert error_info(err.value).reason == "TRANSACTION_NOT_FOUND"


async def test_concurrent_reversals_of_one_transaction_succeed_exactly_once(stub):
    a, b = f"asset:cash:q{uid()}", f"revenue:sales:q{uid()}"
    original = (await stub.PostTransaction(transfer(a, b, 300), metadata=md())).transaction

    async def reverse():
        try:
            return await stub.ReverseTransaction(
                pb.ReverseTransactionRequest(transaction_id=original.id), metadata=md()
            )
        except grpc.aio.AioRpcError as exc:
            return exc

    results = await asyncio.gather(*(reverse() for _ in range(12)))
    winners = [r for r in results if isinstance(r, pb.ReverseTransactionResponse)]
    assert len(winners) == 1
    assert {error_info(r).reason for r in results if r not in winners} == {"ALREADY_REVERSED"}
    assert await _balance(stub, a) == 0


async def test_reversal_that_would_overdraw_a_non_negative_account_is_refused(stub):
    bank, seller = f"asset:bank:n{uid()}", f"liability:seller_payable:n{uid()}"
    await stub.PostTransaction(transfer(bank, seller, 100), metadata=md())
    payout = (await stub.PostTransaction(transfer(seller, bank, 100), metadata=md())).transaction
    deposit = (await stub.PostTransaction(transfer(bank, seller, 50), metadata=md())).transaction
    await stub.PostTransaction(transfer(seller, bank, 50), metadata=md())
    # Undoing the deposit now would take the seller payable to -50.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ReverseTransaction(pb.ReverseTransactionRequest(transaction_id=deposit.id), metadata=md())
    assert error_info(err.value).reason == "INSUFFICIENT_BALANCE"
    # Undoing the payout gives the money back to the seller.
    await stub.ReverseTransaction(pb.ReverseTransactionRequest(transaction_id=payout.id), metadata=md())
    assert await _balance(stub, seller) == 100
