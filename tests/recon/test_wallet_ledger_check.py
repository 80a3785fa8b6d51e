"""CompareWalletsWithLedger against the real wallet and ledger services."""

from __future__ import annotations

import uuid

from ledger_svc import naming
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.recon.v1 import recon_service_pb2 as rpb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as rpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc

KIND = rpb.WalletLedgerMismatchKind


def _md() -> list[tuple[str, str]]:
    return [("idempotency-key", uuid.uuid4().hex)]


async def _credit(channels, seller: str, amount: int, currency: str = "USD") -> None:
    await wpb_grpc.WalletServiceStub(channels["wallet"]).Credit(
        wpb.CreditRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=amount, currency=currency),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_ADJUSTMENT, id=uuid.uuid4().hex[:12]),
        ),
        metadata=_md(),
    )


async def _post(channels, seller: str, amount: int, currency: str = "USD") -> None:
    await lpb_grpc.LedgerServiceStub(channels["ledger"]).PostTransaction(
        lpb.PostTransactionRequest(
            entries=[
                lpb.Entry(
                    account=naming.psp_receivable("stripe", currency),
                    direction=lpb.DIRECTION_DEBIT,
                    amount_minor=amount,
                    currency=currency,
                ),
                lpb.Entry(
                    account=naming.seller_payable(seller, currency),
                    direction=lpb.DIRECTION_CREDIT,
                    amount_minor=amount,
                    currency=currency,
                ),
            ],
            description="test",
        ),
        metadata=_md(),
    )


async def _compare(channels, seller: str) -> rpb.CompareWalletsWithLedgerResponse:
    """Run the check as the operator would (the `operator` identity)."""
    stub = rpb_grpc.ReconServiceStub(channels["recon"])
    return await stub.CompareWalletsWithLedger(rpb.CompareWalletsWithLedgerRequest(seller_id=seller))


async def test_equal_books_are_ok(channels, operator_channels):
    seller = f"rc-{uuid.uuid4().hex[:8]}"
    await _credit(channels, seller, 1234)
    await _post(channels, seller, 1234)
    report = await _compare(operator_channels, seller)
    assert report.ok
    assert (report.wallets_checked, report.accounts_checked) == (1, 1)


async def test_each_kind_of_difference_is_named(channels, operator_channels):
    run = uuid.uuid4().hex[:6]
    differs, no_account, no_wallet = f"rc-{run}-d", f"rc-{run}-a", f"rc-{run}-w"
    await _credit(channels, differs, 500)
    await _post(channels, differs, 499)
    await _credit(channels, no_account, 700)
    await _post(channels, no_wallet, 900)
    found = {}
    for seller in (differs, no_account, no_wallet):
        report = await _compare(operator_channels, seller)
        assert not report.ok
        (mismatch,) = report.mismatches
        found[seller] = (mismatch.kind, mismatch.wallet_minor, mismatch.ledger_minor)
    assert found == {
        differs: (KIND.WALLET_LEDGER_MISMATCH_KIND_AMOUNT_DIFFERS, 500, 499),
        no_account: (KIND.WALLET_LEDGER_MISMATCH_KIND_ACCOUNT_MISSING, 700, 0),
        no_wallet: (KIND.WALLET_LEDGER_MISMATCH_KIND_WALLET_MISSING, 0, 900),
    }


async def test_a_seller_filter_does_not_match_other_sellers_with_the_same_prefix(channels, operator_channels):
    base = f"rc-{uuid.uuid4().hex[:6]}"
    await _credit(channels, base, 100)
    await _post(channels, base, 100)
    await _post(channels, base + "0", 999)  # seller "…0" must not be compared as "…"
    assert (await _compare(operator_channels, base)).ok


async def test_reserved_money_still_counts_as_owed(channels, operator_channels):
    seller = f"rc-{uuid.uuid4().hex[:8]}"
    await _credit(channels, seller, 1000)
    await _post(channels, seller, 1000)
    await wpb_grpc.WalletServiceStub(channels["wallet"]).Reserve(
        wpb.ReserveRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=600, currency="USD"),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=f"po-{seller}"),
        ),
        metadata=_md(),
    )
    assert (await _compare(operator_channels, seller)).ok


async def test_a_seller_paid_in_two_currencies_is_compared_per_currency(channels, operator_channels):
    seller = f"rc-{uuid.uuid4().hex[:8]}"
    await _credit(channels, seller, 2000, "EUR")
    await _post(channels, seller, 2000, "EUR")
    await _credit(channels, seller, 500, "JPY")
    await _post(channels, seller, 500, "JPY")
    report = await _compare(operator_channels, seller)
    assert report.ok, list(report.mismatches)
    assert (report.wallets_checked, report.accounts_checked) == (2, 2)

    await _credit(channels, seller, 7, "JPY")  # only the yen books now disagree
    (mismatch,) = (await _compare(operator_channels, seller)).mismatches
    assert (mismatch.currency, mismatch.kind, mismatch.wallet_minor, mismatch.ledger_minor) == (
        "JPY",
        KIND.WALLET_LEDGER_MISMATCH_KIND_AMOUNT_DIFFERS,
        507,
        500,
    )
