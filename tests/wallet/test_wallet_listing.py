"""GetWallet, ListWallets and ListMovements: empty wallets, ordering and keyset pagination."""

from __future__ import annotations

import grpc
import sqlalchemy as sa

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.wallet.wallet_helpers import call_error, md, money, new_key, new_seller, ref


async def test_an_unknown_wallet_is_empty(stub):
    wallet = (await stub.GetWallet(pb.GetWalletRequest(seller_id=new_seller(), currency="EUR"))).wallet
    assert (wallet.available.amount_minor, wallet.reserved.amount_minor) == (0, 0)
    assert wallet.available.currency == "EUR"
    assert not wallet.HasField("update_time")


async def test_movements_are_listed_newest_first_across_pages(stub):
    seller = new_seller()
    made = []
    for amount in range(1, 8):
        resp = await stub.Credit(
            pb.CreditRequest(seller_id=seller, amount=money(amount), reference=ref()), metadata=md(new_key())
        )
        made.append(resp.movement)
    await stub.Credit(  # another currency of the same seller stays out of the USD history
        pb.CreditRequest(seller_id=seller, amount=money(5, "EUR"), reference=ref()), metadata=md(new_key())
    )
    pages, token = [], ""
    while True:
        page = await stub.ListMovements(
            pb.ListMovementsRequest(seller_id=seller, currency="USD", page_size=3, page_token=token)
        )
        pages.append(list(page.movements))
        token = page.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    listed = [m for p in pages for m in p]
    assert listed == list(reversed(made))
    assert [int(m.movement_id) for m in listed] == sorted((int(m.movement_id) for m in listed), reverse=True)


async def test_a_movement_page_token_is_bound_to_its_wallet(stub):
    seller = new_seller()
    for _ in range(2):
        await stub.Credit(
            pb.CreditRequest(seller_id=seller, amount=money(1), reference=ref()), metadata=md(new_key())
        )
    page = await stub.ListMovements(pb.ListMovementsRequest(seller_id=seller, currency="USD", page_size=1))
    assert page.next_page_token
    err = await call_error(
        stub.ListMovements(
            pb.ListMovementsRequest(seller_id=new_seller(), currency="USD", page_token=page.next_page_token)
        )
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err).reason == "INVALID_PAGE_TOKEN"


async def test_list_wallets_of_one_seller_pages_in_currency_order(stub):
    seller = new_seller()
    for currency in ("USD", "EUR", "JPY"):
        await stub.Credit(
            pb.CreditRequest(seller_id=seller, amount=money(10, currency), reference=ref()),
            metadata=md(new_key()),
        )
    first = await stub.ListWallets(pb.ListWalletsRequest(seller_id=seller, page_size=2))
    second = await stub.ListWallets(
        pb.ListWalletsRequest(seller_id=seller, page_size=2, page_token=first.next_page_token)
    )
    assert [w.available.currency for w in first.wallets] == ["EUR", "JPY"]
    assert [w.available.currency for w in second.wallets] == ["USD"]
    assert second.next_page_token == ""
    err = await call_error(stub.ListWallets(pb.ListWalletsRequest(page_token=first.next_page_token)))
    assert error_info(err).reason == "INVALID_PAGE_TOKEN"


async def test_list_all_wallets_visits_every_wallet_once_in_order(stub, engine):
    mine = {}
    for amount in (3, 5, 7):
        seller = new_seller()
        await stub.Credit(
            pb.CreditRequest(seller_id=seller, amount=money(amount), reference=ref()), metadata=md(new_key())
        )
        mine[seller] = amount
    async with engine.connect() as conn:
        existing = {tuple(r) for r in await conn.execute(sa.text("SELECT seller_id, currency FROM wallets"))}
    seen, token = [], ""
    while True:
        page = await stub.ListWallets(pb.ListWalletsRequest(page_size=7, page_token=token))
        seen.extend(page.wallets)
        token = page.next_page_token
        if not token:
            break
    keys = [(w.seller_id, w.available.currency) for w in seen]
    # Strictly ascending: no wallet twice, none skipped between pages. Wallets created while we page
    # (by other services' workers) may or may not appear; every earlier one must.
    assert keys == sorted(set(keys))
    assert existing <= set(keys)
    assert {w.seller_id: w.available.amount_minor for w in seen if w.seller_id in mine} == mine
