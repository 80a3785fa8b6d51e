"""BatchGetWallets: many wallets in one read, each as GetWallet answers it (a pay-out run reads a
chunk of sellers' available balances this way)."""

from __future__ import annotations

import grpc
import pytest

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from tests.wallet.wallet_helpers import md, money, new_key, new_seller, ref


async def test_wallets_in_request_order_as_get_wallet_answers_each(stub):
    a, b, nobody = new_seller(), new_seller(), new_seller()
    await stub.Credit(
        pb.CreditRequest(seller_id=a, amount=money(500), reference=ref()), metadata=md(new_key())
    )
    await stub.Reserve(
        pb.ReserveRequest(seller_id=a, amount=money(200), reference=ref(pb.REFERENCE_KIND_PAYOUT)),
        metadata=md(new_key()),
    )
    await stub.Credit(
        pb.CreditRequest(seller_id=b, amount=money(9, "EUR"), reference=ref()), metadata=md(new_key())
    )
    asked = [(b, "EUR"), (a, "USD"), (nobody, "USD"), (b, "USD"), (a, "usd")]
    reply = await stub.BatchGetWallets(
        pb.BatchGetWalletsRequest(wallets=[pb.GetWalletRequest(seller_id=s, currency=c) for s, c in asked])
    )
    singles = [(await stub.GetWallet(pb.GetWalletRequest(seller_id=s, currency=c))).wallet for s, c in asked]
    assert list(reply.wallets) == singles
    assert [(w.available.amount_minor, w.reserved.amount_minor) for w in reply.wallets] == [
        (9, 0),
        (300, 200),
        (0, 0),
        (0, 0),
        (300, 200),
    ]


async def test_an_invalid_item_or_too_many_refuse_the_call(stub):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.BatchGetWallets(
            pb.BatchGetWalletsRequest(
                wallets=[
                    pb.GetWalletRequest(seller_id=new_seller(), currency="USD"),
                    pb.GetWalletRequest(seller_id="bad seller!", currency="USD"),
                ]
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.BatchGetWallets(
            pb.BatchGetWalletsRequest(
                wallets=[pb.GetWalletRequest(seller_id=new_seller(), currency="USD")] * 1001
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000" in (err.value.details() or "")
