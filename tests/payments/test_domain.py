"""Pure rules of pay-in: the transition table, commission, risk rules, PSP outcome mapping, validation."""

from __future__ import annotations

import pytest

from payment_svc.config import PaymentSettings
from payment_svc.domain import (
    TRANSITIONS,
    OrderState,
    PendingReason,
    can_move,
    commission_minor,
    is_terminal,
    outcome_from_payment_intent,
)
from payment_svc.risk import CheckoutFacts, RiskVerdict, RuleBasedRisk, RuleLimits
from payment_svc.usecases.commands import Buyer, CreatePayment, OrderInput, refund_id_for, validate
from svckit.errors import InvalidArgument

S = OrderState


def test_every_state_has_a_row_and_terminal_states_have_no_exit():
    assert set(TRANSITIONS) == set(OrderState)
    for state in OrderState:
        assert is_terminal(state) == (not TRANSITIONS[state])


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.SUCCESS, S.FAILED),
        (S.SUCCESS, S.PENDING),
        (S.SUCCESS, S.EXECUTING),
        (S.FAILED, S.SUCCESS),
        (S.REFUNDED, S.SUCCESS),
        (S.PARTIALLY_REFUNDED, S.SUCCESS),
        (S.EXECUTING, S.NOT_STARTED),
    ],
)
def test_late_events_cannot_move_an_order_backwards(current, target):
    assert not can_move(current, target)


@pytest.mark.parametrize("target", [S.SUCCESS, S.FAILED, S.PENDING, S.EXECUTING])
def test_unknown_resolves_to_whatever_the_psp_says(target):
    assert can_move(S.UNKNOWN, target)


def test_commission_is_integer_half_up():
    assert commission_minor(1000, 1000) == 100
    assert commission_minor(1005, 1000) == 101  # 100.5 rounds up
    assert commission_minor(1004, 1000) == 100  # 100.4 rounds down
    assert commission_minor(999, 0) == 0
    assert commission_minor(999, 10_000) == 999
    with pytest.raises(ValueError):
        commission_minor(100, 10_001)


def test_outcome_mapping_direct_and_hosted():
    ok = outcome_from_payment_intent({"id": "pi_1", "status": "succeeded"}, direct_mode=True)
    assert (ok.state, ok.psp_reference) == (S.SUCCESS, "pi_1")
    declined = {
        "id": "pi_2",
        "status": "requires_payment_method",
        "last_payment_error": {
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "no money",
        },
    }
    direct = outcome_from_payment_intent(declined, direct_mode=True)
    assert (direct.state, direct.failure_code, direct.failure_message) == (
        S.FAILED,
        "insufficient_funds",
        "no money",
    )
    # On the hosted page the buyer may try another card: a declined attempt is not final.
    assert outcome_from_payment_intent(declined, direct_mode=False).state is S.EXECUTING
    action = outcome_from_payment_intent(
        {
            "id": "pi_3",
            "status": "requires_action",
            "next_action": {"redirect_to_url": {"url": "http://sim/3ds/pi_3"}},
        },
        True,
    )
    assert (action.state, action.next_action_url, action.pending_reason) == (
        S.PENDING,
        "http://sim/3ds/pi_3",
        PendingReason.AUTHENTICATION,
    )
    assert outcome_from_payment_intent({"id": "pi_4", "status": "weird"}, True).state is S.UNKNOWN


async def test_risk_rules():
    risk = RuleBasedRisk(
        RuleLimits(
            review_above_minor=1000,
            decline_above_minor=5000,
            velocity_max_checkouts=3,
            velocity_max_amount_minor=4000,
            blocked_buyers=frozenset({"bad"}),
            blocked_sellers=frozenset({"shady"}),
        )
    )

    def facts(**kw):
        base = {
            "buyer_id": "b",
            "currency": "USD",
            "total_minor": 100,
            "seller_accounts": ("s1",),
            "recent_checkouts": 0,
            "recent_amount_minor": 0,
        }
        return CheckoutFacts(**{**base, **kw})

    assert (await risk.assess(facts())).verdict is RiskVerdict.APPROVE
    assert (await risk.assess(facts(buyer_id="bad"))).verdict is RiskVerdict.DECLINE
    assert (await risk.assess(facts(seller_accounts=("s1", "shady")))).rule == "blocked_seller"
    assert (await risk.assess(facts(total_minor=6000))).verdict is RiskVerdict.DECLINE
    assert (await risk.assess(facts(total_minor=2000))).rule == "amount_review"
    assert (await risk.assess(facts(recent_checkouts=3))).rule == "velocity_count"
    assert (await risk.assess(facts(recent_amount_minor=3950))).rule == "velocity_amount"


def _cmd(**kw) -> CreatePayment:
    base = {
        "checkout_id": "co_1",
        "buyer": Buyer("buyer_1"),
        "orders": (OrderInput("po_1", "seller_1", 315, "USD"),),
        "success_url": "https://shop/ok",
        "cancel_url": "https://shop/cancel",
    }
    return CreatePayment(**{**base, **kw})


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"checkout_id": ""}, "INVALID_ID", "checkout_id"),
        ({"orders": ()}, "NO_PAYMENT_ORDERS", "payment_orders"),
        ({"orders": (OrderInput("po_1", "s", 0, "USD"),)}, "AMOUNT_NOT_POSITIVE", "payment_orders[0].amount"),
        (
            {"orders": (OrderInput("po_1", "s", 10**12, "USD"),)},
            "AMOUNT_TOO_LARGE",
            "payment_orders[0].amount",
        ),
        ({"orders": (OrderInput("po_1", "s", 1, "XYZ"),)}, "UNKNOWN_CURRENCY", "payment_orders[0].currency"),
        (
            {"orders": (OrderInput("po_1", "bad seller!", 1, "USD"),)},
            "INVALID_SELLER_ACCOUNT",
            "payment_orders[0].seller_account",
        ),
        (
            {"orders": (OrderInput("po_1", "s", 1, "USD"), OrderInput("po_1", "s", 1, "USD"))},
            "DUPLICATE_PAYMENT_ORDER_ID",
            "payment_orders[1].payment_order_id",
        ),
        (
            {"orders": (OrderInput("po_1", "s", 1, "USD"), OrderInput("po_2", "s", 1, "EUR"))},
            "MIXED_CURRENCIES",
            "payment_orders",
        ),
        (
            {"orders": tuple(OrderInput(f"po_{i}", "s", 1, "USD") for i in range(51))},
            "TOO_MANY_ORDERS",
            "payment_orders",
        ),
        ({"success_url": "ftp://x"}, "INVALID_URL", "success_url"),
        ({"payment_method": "card_4242"}, "INVALID_PAYMENT_METHOD", "payment_method"),
    ],
)
def test_validation_names_the_field(changes, reason, field):
    with pytest.raises(InvalidArgument) as exc:
        validate(_cmd(**changes), PaymentSettings(environment="development"))
    assert exc.value.reason == reason
    assert exc.value.metadata["field"] == field


def test_validation_accepts_a_good_command_and_normalizes_currency():
    assert (
        validate(
            _cmd(orders=(OrderInput("po_1", "seller_1", 315, "usd"),)),
            PaymentSettings(environment="development"),
        )
        == "USD"
    )
    assert (
        validate(
            _cmd(payment_method="pm_card_visa", success_url="", cancel_url=""),
            PaymentSettings(environment="development"),
        )
        == "USD"
    )


def test_refund_ids_are_deterministic_per_order_and_key():
    assert refund_id_for("po_1", "k1") == refund_id_for("po_1", "k1")
    assert refund_id_for("po_1", "k1") != refund_id_for("po_1", "k2")
    assert refund_id_for("po_1", "k1") != refund_id_for("po_2", "k1")


def test_canceled_intent_fails_direct_orders_with_the_reason_but_not_hosted_ones():
    pi = {
        "id": "pi_9",
        "status": "canceled",
        "cancellation_reason": "abandoned",
        "last_payment_error": {"decline_code": "insufficient_funds", "message": "no money"},
    }
    direct = outcome_from_payment_intent(pi, direct_mode=True)
    assert (direct.state, direct.failure_code) == (S.FAILED, "abandoned")
    assert "no money" in direct.failure_message
    assert outcome_from_payment_intent(pi, direct_mode=False).state is S.EXECUTING
