"""PaymentIntents through the real SDK: lifecycle, pagination, the test-card table, 3-D Secure, fees."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from psp_sim.cards import TEST_PAYMENT_METHODS
from psp_sim.testing import SimServer
from tests.psp_sim.stripe_answers import error_of, intent_id_of


def _pay(client: Any, pm: str, amount: int = 1000, **extra: Any) -> Any:
    return client.v1.payment_intents.create(
        params={"amount": amount, "currency": "usd", "payment_method": pm, "confirm": True, **extra}
    )


def _tokenize(client: Any, number: str, exp_month: int = 12, exp_year: int = 2034, cvc: str = "123") -> str:
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc},
        }
    )
    return pm.id


def test_create_retrieve_confirm_cancel(client: Any) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 2500, "currency": "eur", "metadata": {"order": "o1"}}
    )
    assert pi.id.startswith("pi_") and pi.status == "requires_payment_method"
    assert pi.client_secret.startswith(pi.id + "_secret_")
    assert client.v1.payment_intents.retrieve(pi.id).metadata["order"] == "o1"
    confirmed = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert confirmed.status == "succeeded" and confirmed.amount_received == 2500
    assert confirmed.latest_charge.startswith("ch_")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_intents.cancel(pi.id)
    assert exc.value.code == "payment_intent_unexpected_state"

    other = client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    canceled = client.v1.payment_intents.cancel(other.id, params={"cancellation_reason": "abandoned"})
    assert canceled.status == "canceled" and canceled.cancellation_reason == "abandoned"


def test_retrieve_missing_is_404_resource_missing(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_intents.retrieve("pi_doesnotexist")
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"


def test_list_pagination(client: Any) -> None:
    ids = [
        client.v1.payment_intents.create(params={"amount": 100 + i, "currency": "usd"}).id for i in range(7)
    ]
    page = client.v1.payment_intents.list(params={"limit": 3})
    assert [p.id for p in page.data] == ids[::-1][:3] and page.has_more
    assert [p.id for p in page.auto_paging_iter()] == ids[::-1]
    older = client.v1.payment_intents.list(params={"limit": 3, "starting_after": page.data[-1].id})
    assert [p.id for p in older.data] == ids[::-1][3:6]
    newer = client.v1.payment_intents.list(params={"limit": 2, "ending_before": older.data[0].id})
    assert [p.id for p in newer.data] == ids[::-1][1:3]


def test_manual_capture(client: Any) -> None:
    pi = _pay(client, "pm_card_visa", 5000, capture_method="manual")
    assert pi.status == "requires_capture" and pi.amount_capturable == 5000
    captured = client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 4000})
    assert captured.status == "succeeded" and captured.amount_received == 4000


SUCCESS_BRANDS = {
    "4242424242424242": "visa",
    "4000056655665556": "visa",
    "5555555555554444": "mastercard",
    "2223003122003222": "mastercard",
    "5200828282828210": "mastercard",
    "5105105105105100": "mastercard",
    "378282246310005": "amex",
    "371449635398431": "amex",
    "6011111111111117": "discover",
    "6011000990139424": "discover",
    "6011981111111113": "discover",
    "3056930009020004": "diners",
    "36227206271667": "diners",
    "3566002020360505": "jcb",
    "6200000000000005": "unionpay",
    "6200000000000047": "unionpay",
    "6205500000000000004": "unionpay",
}


@pytest.mark.parametrize(("number", "brand"), SUCCESS_BRANDS.items())
def test_success_cards_by_brand(client: Any, number: str, brand: str) -> None:
    cvc = "1234" if brand == "amex" else "123"
    pi = _pay(client, _tokenize(client, number, cvc=cvc))
    assert pi.status == "succeeded"
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.payment_method_details.card.brand == brand
    assert charge.payment_method_details.card.last4 == number[-4:]


DECLINES = [
    ("4000000000000002", "card_declined", "generic_decline"),
    ("4000000000009995", "card_declined", "insufficient_funds"),
    ("4000000000009987", "card_declined", "lost_card"),
    ("4000000000009979", "card_declined", "stolen_card"),
    ("4000000000000069", "expired_card", None),
    ("4000000000000127", "incorrect_cvc", None),
    ("4000000000000119", "processing_error", None),
    ("4000000000006975", "card_declined", "card_velocity_exceeded"),
    ("4000000000000341", "card_declined", "generic_decline"),
]


@pytest.mark.parametrize(("number", "code", "decline_code"), DECLINES)
def test_decline_cards(client: Any, number: str, code: str, decline_code: str | None) -> None:
    with pytest.raises(stripe.CardError) as exc:
        _pay(client, _tokenize(client, number))
    err = exc.value
    assert err.http_status == 402 and err.code == code
    assert error_of(err).decline_code == decline_code
    pi = client.v1.payment_intents.retrieve(intent_id_of(err))
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == code
    assert client.v1.charges.retrieve(error_of(err).charge).status == "failed"


@pytest.mark.parametrize(
    ("pm", "code", "decline_code"),
    [
        ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "card_declined", "insufficient_funds"),
        ("pm_card_visa_chargeDeclinedLostCard", "card_declined", "lost_card"),
        ("pm_card_visa_chargeDeclinedStolenCard", "card_declined", "stolen_card"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", None),
        ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", None),
        ("pm_card_chargeDeclinedProcessingError", "processing_error", None),
        ("pm_card_visa_chargeDeclinedVelocityLimitExceeded", "card_declined", "card_velocity_exceeded"),
    ],
)
def test_decline_test_payment_methods(client: Any, pm: str, code: str, decline_code: str | None) -> None:
    with pytest.raises(stripe.CardError) as exc:
        _pay(client, pm)
    assert exc.value.code == code and error_of(exc.value).decline_code == decline_code


def test_test_payment_method_ids_become_fresh_payment_methods(client: Any) -> None:
    pi = _pay(client, "pm_card_mastercard")
    assert pi.payment_method.startswith("pm_") and pi.payment_method != "pm_card_mastercard"
    assert client.v1.payment_methods.retrieve(pi.payment_method).card.brand == "mastercard"
    assert set(TEST_PAYMENT_METHODS) >= {
        "pm_card_visa",
        "pm_card_authenticationRequired",
        "pm_card_radarBlock",
    }


def test_radar_block_and_risk_levels(client: Any) -> None:
    with pytest.raises(stripe.CardError) as exc:
        _pay(client, "pm_card_radarBlock")
    charge = client.v1.charges.retrieve(error_of(exc.value).charge)
    assert charge.outcome.type == "blocked" and charge.outcome.risk_level == "highest"
    assert error_of(exc.value).decline_code == "fraudulent"
    elevated = client.v1.charges.retrieve(_pay(client, "pm_card_riskLevelElevated").latest_charge)
    assert elevated.outcome.risk_level == "elevated" and elevated.status == "succeeded"


@pytest.mark.parametrize(
    ("card", "param", "code"),
    [
        (("4242424242424243", 12, 2034, "123"), "number", "incorrect_number"),
        (("4242424242424242", 13, 2034, "123"), "exp_month", "invalid_expiry_month"),
        (("4242424242424242", 12, 1995, "123"), "exp_year", "invalid_expiry_year"),
        (("4242424242424242", 12, 2034, "99"), "cvc", "invalid_cvc"),
    ],
)
def test_invalid_card_data_on_tokenization(client: Any, card: tuple, param: str, code: str) -> None:
    with pytest.raises(stripe.CardError) as exc:
        _tokenize(client, *card)
    assert exc.value.code == code and exc.value.param == param


def _challenge(sim: SimServer, pi: Any, action: str) -> httpx.Response:
    url = pi.next_action.redirect_to_url.url
    assert httpx.get(url).status_code == 200
    return httpx.post(url, data={"action": action})


def test_3ds_pass_then_succeeds(sim: SimServer, client: Any) -> None:
    pi = _pay(client, "pm_card_authenticationRequired", return_url="http://shop.test/done")
    assert pi.status == "requires_action" and pi.next_action.type == "redirect_to_url"
    resp = _challenge(sim, pi, "complete")
    assert resp.status_code == 303
    assert resp.headers["location"].startswith(f"http://shop.test/done?payment_intent={pi.id}")
    assert "redirect_status=succeeded" in resp.headers["location"]
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


def test_3ds_fail_returns_to_requires_payment_method(sim: SimServer, client: Any) -> None:
    pi = _pay(client, "pm_card_threeDSecure2Required")
    resp = _challenge(sim, pi, "fail")
    assert resp.status_code == 200
    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error.code == "payment_intent_authentication_failure"


def test_3ds_then_decline_after_authentication(sim: SimServer, client: Any) -> None:
    pi = _pay(client, "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds")
    _challenge(sim, pi, "complete")
    after = client.v1.payment_intents.retrieve(pi.id)
    assert after.status == "requires_payment_method"
    assert after.last_payment_error.decline_code == "insufficient_funds"


def test_3ds_off_session_is_declined_authentication_required(client: Any) -> None:
    with pytest.raises(stripe.CardError) as exc:
        _pay(client, "pm_card_authenticationRequired", off_session=True)
    assert exc.value.code == "authentication_required"
    # The "unless set up for off-session" card skips the challenge off-session.
    assert _pay(client, "pm_card_authenticationRequiredOnSetup", off_session=True).status == "succeeded"


def test_3ds_times_out_with_clock_advance(sim: SimServer, client: Any) -> None:
    pi = _pay(client, "pm_card_authenticationRequired")
    sim.admin.advance(seconds=3000)  # real time also flows: stay clear of the edge
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_action"
    sim.admin.advance(seconds=600)
    assert client.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"


@pytest.mark.parametrize(
    ("amount", "fee"),
    [(1000, 59), (500, 45), (1550, 75), (50, 31), (1, 30), (12345, 388)],
)
def test_fee_is_2_9_percent_plus_30_half_up(client: Any, amount: int, fee: int) -> None:
    # 500 * 2.9% = 14.5 -> 15 (half-up, not banker's 14); 1550 -> 44.95 -> 45; 12345 -> 358.005 -> 358.
    pi = _pay(client, "pm_card_visa", amount)
    charge = client.v1.charges.retrieve(pi.latest_charge)
    bt = client.v1.balance_transactions.retrieve(charge.balance_transaction)
    assert (bt.amount, bt.fee, bt.net) == (amount, fee, amount - fee)
    assert bt.fee_details[0].type == "stripe_fee" and bt.reporting_category == "charge"


def test_fee_is_configurable() -> None:
    from decimal import Decimal

    from psp_sim.testing import run_simulator

    with run_simulator({"fee_percent": Decimal("1.4"), "fee_fixed_minor": 25}) as other:
        c = other.client()
        pi = _pay(c, "pm_card_visa", 1000)
        bt = c.v1.balance_transactions.retrieve(c.v1.charges.retrieve(pi.latest_charge).balance_transaction)
        assert bt.fee == 14 + 25


def test_funds_become_available_after_two_days(sim: SimServer, client: Any) -> None:
    _pay(client, "pm_card_visa", 1000)
    _pay(client, "pm_card_bypassPending", 2000)
    bal = client.v1.balance.retrieve()
    assert bal.available[0].amount == 2000 - 88 and bal.pending[0].amount == 1000 - 59
    sim.admin.advance(days=2)
    bal = client.v1.balance.retrieve()
    assert bal.available[0].amount == 2000 - 88 + 1000 - 59 and bal.pending[0].amount == 0


def test_invalid_parameters_leave_nothing_behind(sim: SimServer, client: Any) -> None:
    for params in (
        {"amount": 100, "currency": "usd", "payment_method": "pm_nope", "confirm": True},
        {"amount": 100, "currency": "usd", "capture_method": "later"},
        {"amount": 100, "currency": "usd", "metadata": {"k": {"nested": "x"}}},
        {"amount": 0, "currency": "usd"},
        {"amount": 100, "currency": "xyz"},
    ):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.payment_intents.create(params=params)
    state = sim.admin.state()
    assert "payment_intent" not in state["objects"] and state["events"] == []


def test_krona_is_charged_and_refunded_in_whole_units_only(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_intents.create(
            params={"amount": 150, "currency": "isk", "payment_method": "pm_card_visa", "confirm": True}
        )
    assert (err.value.code, err.value.param) == ("invalid_charge_amount_no_decimal_compatible", "amount")
    pi = client.v1.payment_intents.create(
        params={"amount": 15000, "currency": "isk", "payment_method": "pm_card_visa", "confirm": True}
    )
    assert pi.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 150})
    assert err.value.code == "invalid_charge_amount_no_decimal_compatible"
    assert client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 5000}).amount == 5000
