"""Connect: transfers to connected accounts, payouts with Stripe-Account, balance transactions by payout."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from psp_sim.testing import SimServer


def _fund(client: Any, amount: int = 10_000) -> Any:
    # The "bypass pending" card puts funds straight into the available balance.
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "confirm": True,
            "transfer_group": "ORDER100",
        }
    )


def _account(client: Any, bank: str = "000123456789") -> Any:
    return client.v1.accounts.create(
        params={
            "type": "custom",
            "country": "US",
            "email": "seller@example.com",
            "external_account": {
                "object": "bank_account",
                "country": "US",
                "currency": "usd",
                "routing_number": "110000000",
                "account_number": bank,
            },
        }
    )


def test_transfer_needs_available_balance(client: Any) -> None:
    acct = _account(client)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.transfers.create(params={"amount": 100, "currency": "usd", "destination": acct.id})
    assert exc.value.code == "balance_insufficient"


def test_transfer_moves_funds_to_connected_account(client: Any) -> None:
    _fund(client)
    acct = _account(client)
    tr = client.v1.transfers.create(
        params={
            "amount": 7000,
            "currency": "usd",
            "destination": acct.id,
            "transfer_group": "ORDER100",
            "metadata": {"seller": "s1"},
        }
    )
    assert tr.id.startswith("tr_") and tr.destination == acct.id and tr.destination_payment.startswith("py_")
    assert client.v1.transfers.retrieve(tr.id).amount == 7000
    assert [t.id for t in client.v1.transfers.list(params={"destination": acct.id}).data] == [tr.id]
    platform = client.v1.balance.retrieve()
    assert platform.available[0].amount == 10_000 - 320 - 7000
    connected = client.v1.balance.retrieve(options={"stripe_account": acct.id})
    assert connected.available[0].amount == 7000
    bt = client.v1.balance_transactions.retrieve(tr.balance_transaction)
    assert (bt.amount, bt.type, bt.reporting_category) == (-7000, "transfer", "transfer")


def test_transfer_with_source_transaction_skips_balance_check(client: Any) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 5000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    acct = _account(client)
    tr = client.v1.transfers.create(
        params={
            "amount": 4000,
            "currency": "usd",
            "destination": acct.id,
            "source_transaction": pi.latest_charge,
        }
    )
    assert tr.source_transaction == pi.latest_charge and tr.transfer_group == f"group_{pi.id}"


def test_destination_charge_creates_transfer(client: Any) -> None:
    acct = _account(client)
    pi = client.v1.payment_intents.create(
        params={
            "amount": 10_000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "transfer_data": {"destination": acct.id},
            "application_fee_amount": 1000,
        }
    )
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert client.v1.transfers.retrieve(charge.transfer).amount == 9000


def test_payout_with_stripe_account_is_paid_after_arrival(sim: SimServer, client: Any) -> None:
    _fund(client)
    acct = _account(client)
    client.v1.transfers.create(params={"amount": 5000, "currency": "usd", "destination": acct.id})
    opts = {"stripe_account": acct.id}
    po = client.v1.payouts.create(params={"amount": 3000, "currency": "usd"}, options=opts)
    assert po.id.startswith("po_") and po.status == "pending" and po.destination.startswith("ba_")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payouts.retrieve(po.id)  # not the platform's payout
    sim.admin.advance(hours=2)
    assert client.v1.payouts.retrieve(po.id, options=opts).status == "in_transit"
    sim.admin.advance(days=1)
    paid = client.v1.payouts.retrieve(po.id, options=opts)
    assert paid.status == "paid"
    assert client.v1.balance.retrieve(options=opts).available[0].amount == 2000
    events = client.v1.events.list(params={"limit": 20}, options=opts).data
    assert [e.type for e in events][:2] == ["payout.paid", "payout.updated"]
    assert all(e.account == acct.id for e in events)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payouts.create(params={"amount": 5000, "currency": "usd"}, options=opts)
    assert exc.value.code == "balance_insufficient"


@pytest.mark.parametrize(
    ("bank", "code"),
    [
        ("000111111116", "no_account"),
        ("000111111113", "account_closed"),
        ("000222222227", "insufficient_funds"),
        ("000333333335", "debit_not_authorized"),
        ("000444444440", "invalid_currency"),
    ],
)
def test_payout_test_bank_accounts_fail_with_their_codes(
    sim: SimServer, client: Any, bank: str, code: str
) -> None:
    _fund(client)
    acct = _account(client, bank)
    client.v1.transfers.create(params={"amount": 1000, "currency": "usd", "destination": acct.id})
    opts = {"stripe_account": acct.id}
    po = client.v1.payouts.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    sim.admin.advance(days=2)
    failed = client.v1.payouts.retrieve(po.id, options=opts)
    assert failed.status == "failed" and failed.failure_code == code and failed.failure_message
    fbt = client.v1.balance_transactions.retrieve(failed.failure_balance_transaction, options=opts)
    assert fbt.amount == 1000 and fbt.reporting_category == "payout_reversal"
    assert client.v1.balance.retrieve(options=opts).available[0].amount == 1000  # money came back


def test_a_transfer_reversal_brings_a_failed_payouts_money_back_to_the_platform(
    sim: SimServer, client: Any
) -> None:
    _fund(client)
    acct = _account(client, "000111111113")  # its payouts fail: account_closed
    tr = client.v1.transfers.create(params={"amount": 4000, "currency": "usd", "destination": acct.id})
    opts = {"stripe_account": acct.id}
    client.v1.payouts.create(params={"amount": 4000, "currency": "usd"}, options=opts)
    sim.admin.advance(days=2)  # failed: the 4000 are back in the connected account
    platform_before = client.v1.balance.retrieve().available[0].amount
    key = {"idempotency_key": f"reverse-{tr.id}"}

    trr = client.v1.transfers.reversals.create(tr.id, params={"metadata": {"payout_id": "p1"}}, options=key)
    again = client.v1.transfers.reversals.create(tr.id, params={"metadata": {"payout_id": "p1"}}, options=key)

    assert trr.id.startswith("trr_") and again.id == trr.id  # the key replays it
    assert (trr.object, trr.amount, trr.transfer, trr.metadata["payout_id"]) == (
        "transfer_reversal",
        4000,
        tr.id,
        "p1",
    )
    reversed_tr = client.v1.transfers.retrieve(tr.id)
    assert (reversed_tr.reversed, reversed_tr.amount_reversed) == (True, 4000)
    assert [r.id for r in reversed_tr.reversals.data] == [trr.id]
    assert [r.id for r in client.v1.transfers.reversals.list(tr.id).data] == [trr.id]
    assert client.v1.transfers.reversals.retrieve(tr.id, trr.id).amount == 4000
    assert client.v1.balance.retrieve().available[0].amount == platform_before + 4000
    assert client.v1.balance.retrieve(options=opts).available[0].amount == 0
    bt = client.v1.balance_transactions.retrieve(trr.balance_transaction)
    assert (bt.amount, bt.type) == (4000, "transfer_refund")
    assert client.v1.events.list(params={"type": "transfer.reversed"}).data[0].data.object.id == tr.id
    with pytest.raises(stripe.InvalidRequestError) as exc:  # nothing left to reverse
        client.v1.transfers.reversals.create(tr.id)
    assert exc.value.code == "transfer_already_reversed"


def test_a_transfer_reversal_needs_the_connected_accounts_balance(client: Any) -> None:
    _fund(client)
    acct = _account(client)
    tr = client.v1.transfers.create(params={"amount": 3000, "currency": "usd", "destination": acct.id})
    client.v1.payouts.create(params={"amount": 2500, "currency": "usd"}, options={"stripe_account": acct.id})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.transfers.reversals.create(tr.id)
    assert exc.value.code == "balance_insufficient"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.transfers.reversals.create(tr.id, params={"amount": 3001})
    assert exc.value.param == "amount"
    partial = client.v1.transfers.reversals.create(tr.id, params={"amount": 500})
    assert partial.amount == 500
    assert (
        client.v1.transfers.retrieve(tr.id).reversed,
        client.v1.transfers.retrieve(tr.id).amount_reversed,
    ) == (
        False,
        500,
    )


def test_an_account_with_a_payouts_disabled_email_has_payouts_off_and_is_refused_a_payout(
    client: Any,
) -> None:
    _fund(client)
    acct = client.v1.accounts.create(params={"type": "custom", "email": "shop+payouts_disabled@example.com"})
    assert client.v1.accounts.retrieve(acct.id).payouts_enabled is False
    assert _account(client).payouts_enabled is True
    client.v1.transfers.create(params={"amount": 1000, "currency": "usd", "destination": acct.id})
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payouts.create(
            params={"amount": 1000, "currency": "usd"}, options={"stripe_account": acct.id}
        )
    assert exc.value.code == "payouts_not_allowed"


def test_instant_only_failure_account(sim: SimServer, client: Any) -> None:
    _fund(client)
    acct = _account(client, "000888888883")
    client.v1.transfers.create(params={"amount": 2000, "currency": "usd", "destination": acct.id})
    opts = {"stripe_account": acct.id}
    standard = client.v1.payouts.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    instant = client.v1.payouts.create(
        params={"amount": 1000, "currency": "usd", "method": "instant"}, options=opts
    )
    sim.admin.advance(days=2)
    assert client.v1.payouts.retrieve(standard.id, options=opts).status == "paid"
    assert client.v1.payouts.retrieve(instant.id, options=opts).failure_code == "could_not_process"


def test_balance_transactions_filtered_by_automatic_payout(sim: SimServer, client: Any) -> None:
    pis = [
        client.v1.payment_intents.create(
            params={
                "amount": 1000 * (i + 1),
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
            }
        )
        for i in range(3)
    ]
    sim.admin.advance(days=2)
    (po,) = sim.admin.run_payouts()
    assert po["automatic"] and po["amount"] == sum(1000 * (i + 1) for i in range(3)) - (59 + 88 + 117)
    txns = list(
        client.v1.balance_transactions.list(params={"payout": po["id"], "limit": 100}).auto_paging_iter()
    )
    charges = {t.source for t in txns if t.type == "charge"}
    assert charges == {pi.latest_charge for pi in pis}
    assert sum(t.net for t in txns if t.type == "charge") == po["amount"]
    only_charges = client.v1.balance_transactions.list(params={"payout": po["id"], "type": "charge"})
    assert len(only_charges.data) == 3
    sim.admin.advance(days=1)
    assert client.v1.payouts.retrieve(po["id"]).reconciliation_status == "completed"
