"""GetBalances: many accounts' current balances in one read, each as GetBalance answers it; accounts
that do not exist are left out (a pay-out run reads a chunk of sellers' debts this way)."""

from __future__ import annotations

import grpc
import pytest

from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from tests.ledger.ledger_helpers import md, transfer, uid


async def test_balances_of_many_accounts_as_get_balance_answers_each(stub):
    seller, bank, other = f"liability:seller_payable:g{uid()}", f"asset:bank:g{uid()}", f"asset:bank:h{uid()}"
    ghost = f"asset:seller_receivable:g{uid()}"
    await stub.PostTransaction(transfer(bank, seller, 1_250), metadata=md())
    await stub.PostTransaction(transfer(seller, bank, 250), metadata=md())
    await stub.PostTransaction(transfer(other, bank, 7), metadata=md())

    reply = await stub.GetBalances(pb.GetBalancesRequest(accounts=[ghost, seller, bank, ghost, other]))
    singles = [await stub.GetBalance(pb.GetBalanceRequest(account=name)) for name in (seller, bank, other)]
    # In request order, the unknown account left out (each time it is named).
    assert list(reply.balances) == singles
    assert [(b.account, b.balance_minor) for b in reply.balances] == [
        (seller, 1_000),
        (bank, 993),
        (other, 7),
    ]
    assert list((await stub.GetBalances(pb.GetBalancesRequest())).balances) == []


async def test_more_than_1000_accounts_are_refused(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetBalances(pb.GetBalancesRequest(accounts=[f"asset:bank:x{i}" for i in range(1001)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000" in (err.value.details() or "")
