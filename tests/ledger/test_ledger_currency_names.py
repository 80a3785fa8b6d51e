"""Accounts named per currency (``type:purpose[:id]/CUR``): the name's currency is the account's."""

from __future__ import annotations

import grpc
import pytest

from ledger_svc import naming
from svckit.errors import InvalidArgument
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.ledger.ledger_helpers import md, transfer, uid


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def _missing(stub, name: str) -> bool:
    err = await _refused(stub.GetAccount(pb.GetAccountRequest(name=name)))
    return err.code() == grpc.StatusCode.NOT_FOUND


def test_the_helpers_name_every_per_currency_account_with_its_currency():
    assert naming.psp_receivable("stripe", "EUR") == "asset:psp_receivable:stripe/EUR"
    assert naming.seller_payable("seller_a", "JPY") == "liability:seller_payable:seller_a/JPY"
    assert naming.revenue_commission("USD") == "revenue:commission/USD"
    assert naming.bank_operating("USD") == "asset:bank:operating/USD"
    assert naming.expense_psp_fees("BHD") == "expense:psp_fees/BHD"
    assert naming.payouts_in_transit("USD") == "liability:payouts_in_transit/USD"
    for bad in ("usd", "XXX", "US", ""):
        with pytest.raises(InvalidArgument):
            naming.seller_payable("seller_a", bad)
    with pytest.raises(InvalidArgument):
        naming.seller_payable("seller/a", "USD")  # a slash in an id would fake a suffix


def test_the_parser_takes_an_optional_known_iso_suffix():
    assert naming.parse_account("liability:seller_payable:s1/KWD") == (naming.AccountType.LIABILITY, "KWD")
    assert naming.parse_account("revenue:commission") == (naming.AccountType.REVENUE, None)
    for bad in ("revenue:commission/XXX", "revenue:commission/eur", "revenue:commission/", "a/b:c/USD"):
        with pytest.raises(InvalidArgument) as err:
            naming.parse_account(bad)
        assert err.value.reason == "INVALID_ACCOUNT_NAME"


async def test_an_entry_in_another_currency_than_the_name_is_refused_and_creates_nothing(stub):
    psp, seller = f"asset:psp_receivable:p{uid()}/EUR", f"liability:seller_payable:s{uid()}/EUR"
    err = await _refused(stub.PostTransaction(transfer(psp, seller, 2000, "USD"), metadata=md()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err).reason == "CURRENCY_MISMATCH"
    assert await _missing(stub, psp) and await _missing(stub, seller)

    tx = (await stub.PostTransaction(transfer(psp, seller, 2000, "EUR"), metadata=md())).transaction
    assert tx.id > 0
    assert (await stub.GetAccount(pb.GetAccountRequest(name=seller))).account.currency == "EUR"
    assert (await stub.GetBalance(pb.GetBalanceRequest(account=psp))).balance_minor == 2000


async def test_a_batch_refuses_only_the_item_whose_currency_differs_from_its_names(stub):
    good = transfer(f"asset:bank:g{uid()}/JPY", f"liability:seller_payable:g{uid()}/JPY", 500, "JPY")
    bad_seller = f"liability:seller_payable:b{uid()}/JPY"
    bad = transfer(f"asset:bank:b{uid()}", bad_seller, 500, "EUR")
    reply = await stub.PostTransactions(
        pb.PostTransactionsRequest(
            items=[
                pb.PostTransactionsItem(idempotency_key=uid(), transaction=good),
                pb.PostTransactionsItem(idempotency_key=uid(), transaction=bad),
            ]
        ),
        metadata=md(),
    )
    ok, refused = reply.results
    assert ok.HasField("transaction")
    assert refused.error.reason == "CURRENCY_MISMATCH"
    assert await _missing(stub, bad_seller)


async def test_create_account_refuses_a_currency_other_than_the_names(admin):
    name = f"revenue:commission_{uid()}/BHD"
    err = await _refused(
        admin.CreateAccount(pb.CreateAccountRequest(name=name, currency="USD"), metadata=md())
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err).reason == "CURRENCY_MISMATCH"
    assert await _missing(admin, name)
    created = await admin.CreateAccount(pb.CreateAccountRequest(name=name, currency="BHD"), metadata=md())
    assert created.account.currency == "BHD"
    # A name without a suffix is a generic account and takes any currency.
    generic = await admin.CreateAccount(
        pb.CreateAccountRequest(name=f"asset:cash:{uid()}", currency="EUR"), metadata=md()
    )
    assert generic.account.currency == "EUR"
