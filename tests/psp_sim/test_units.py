"""Pure pieces: lifecycle tables, retry schedule, money, card helpers, signing."""

from __future__ import annotations

from decimal import Decimal

import pytest
import stripe

from psp_sim import states
from psp_sim.cards import luhn_ok, number_for_test_pm, spec_for
from psp_sim.errors import StripeError
from psp_sim.money import fee_for, to_major
from psp_sim.webhooks import retry_delay, sign


def test_lifecycle_tables_allow_only_listed_moves() -> None:
    pi = {"object": "payment_intent", "id": "pi_1", "status": "succeeded"}
    with pytest.raises(states.IllegalTransition):
        states.move(pi, "requires_payment_method")
    pi["status"] = "requires_action"
    assert states.move(pi, "succeeded") == "requires_action" and pi["status"] == "succeeded"
    payout = {"object": "payout", "id": "po_1", "status": "paid"}
    states.move(payout, "failed")  # Stripe: a paid payout can still fail
    with pytest.raises(states.IllegalTransition):
        states.move(payout, "paid")
    with pytest.raises(StripeError) as exc:
        states.require({"object": "payment_intent", "id": "pi_2", "status": "canceled"}, "confirm")
    assert exc.value.code == "payment_intent_unexpected_state"
    # Terminal states have no way out (a succeeded refund can still fail, so it is not terminal).
    terminal = {
        "PAYMENT_INTENT": ("succeeded", "canceled"),
        "CHECKOUT_SESSION": ("complete", "expired"),
        "REFUND": ("failed", "canceled"),
        "PAYOUT": ("failed", "canceled"),
    }
    for name, ends in terminal.items():
        table = getattr(states, name)
        assert all(not table[s] for s in ends), name
        # Every target is itself a state of the table.
        assert all(t in table for targets in table.values() for t in targets), name


def test_retry_delay_doubles_and_stops() -> None:
    assert [retry_delay(n, 60, 4) for n in range(1, 5)] == [60, 120, 240, None]


def test_money() -> None:
    assert to_major(12345, "usd") == Decimal("123.45")
    assert str(to_major(5, "jpy")) == "5" and str(to_major(5, "bhd")) == "0.005"
    assert str(to_major(-2345, "usd")) == "-23.45" and str(to_major(0, "eur")) == "0.00"
    assert fee_for(500, Decimal("2.9"), 30) == 45  # 14.5 rounds half-up
    assert fee_for(12345, Decimal("2.9"), 30) == 388  # 358.005 -> 358


def test_card_helpers() -> None:
    assert luhn_ok("4242424242424242") and not luhn_ok("4242424242424241")
    decline = spec_for("4000000000009995").decline
    assert decline is not None and decline.decline_code == "insufficient_funds"
    assert spec_for("5123456789012346").brand == "mastercard"  # unlisted numbers succeed by brand
    assert number_for_test_pm("tok_visa") == number_for_test_pm("pm_card_visa") == "4242424242424242"


def test_signature_matches_the_sdk() -> None:
    payload = '{"id": "evt_1", "object": "event"}'
    header = sign(payload, "whsec_x", 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert stripe.WebhookSignature.verify_header(payload, header, "whsec_x", tolerance=None)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload + " ", header, "whsec_x", tolerance=None)
