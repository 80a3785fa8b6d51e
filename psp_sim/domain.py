"""Stripe's behaviour: PaymentIntents, charges, Checkout Sessions, refunds, Connect transfers and payouts.

Functions take the :class:`~psp_sim.engine.Simulator` and already-parsed parameters, mutate state, emit
events, and return the Stripe object or raise a :class:`~psp_sim.errors.StripeError`.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from urllib.parse import quote

from psp_sim import params as P
from psp_sim import states
from psp_sim.cards import (
    AUTH_FAILED,
    PAYOUT_FAILURE_MESSAGES,
    PAYOUT_TEST_ACCOUNTS,
    CardSpec,
    Decline,
    luhn_ok,
    number_for_test_pm,
    spec_for,
)
from psp_sim.engine import Simulator
from psp_sim.errors import StripeError, invalid, missing
from psp_sim.money import WHOLE_UNITS_ONLY, fee_for

# ---------------------------------------------------------------- payment methods


def create_payment_method(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    """Client-side tokenization: raw card details in, ``pm_…`` out; the number never leaves the simulator."""
    if P.string(p, "type", required=True) != "card":
        raise invalid("Only type=card is supported by the simulator.", param="type")
    card = P.mapping(p, "card")
    number = (P.string(card, "number") or "").replace(" ", "")
    if not number:
        raise invalid("Missing required param: card[number].", param="card[number]", code="parameter_missing")
    exp_month = P.string(card, "exp_month") or ""
    exp_year = P.string(card, "exp_year") or ""
    cvc = P.string(card, "cvc")
    check_card_data(sim, number, exp_month, exp_year, cvc)
    billing = P.mapping(p, "billing_details")
    return _new_payment_method(sim, number, int(exp_month), _full_year(int(exp_year)), billing, P.metadata(p))


def _full_year(year: int) -> int:
    # Two-digit years pivot like card terminals do: "34" is 2034, "95" (Stripe's example) is 1995.
    if year >= 100:
        return year
    return 2000 + year if year < 70 else 1900 + year


def check_card_data(sim: Simulator, number: str, exp_month: str, exp_year: str, cvc: str | None) -> None:
    """Stripe's invalid-data test cases, raised as 402 card errors like the real tokenizer."""

    def card_error(code: str, message: str, param: str) -> StripeError:
        return StripeError(402, "card_error", message, code=code, param=param, stored=True)

    if not luhn_ok(number):
        raise card_error("incorrect_number", "Your card number is incorrect.", "number")
    if not exp_month.isdigit() or not 1 <= int(exp_month) <= 12:
        raise card_error("invalid_expiry_month", "Your card's expiration month is invalid.", "exp_month")
    today = dt.datetime.fromtimestamp(sim.now(), tz=dt.UTC)
    if not exp_year.isdigit() or (_full_year(int(exp_year)), int(exp_month)) < (today.year, today.month):
        raise card_error("invalid_expiry_year", "Your card's expiration year is invalid.", "exp_year")
    if cvc is not None and cvc != "":
        want = 4 if spec_for(number).brand == "amex" else 3
        if not cvc.isdigit() or len(cvc) != want:
            raise card_error("invalid_cvc", "Your card's security code is invalid.", "cvc")


def _new_payment_method(
    sim: Simulator,
    number: str,
    exp_month: int,
    exp_year: int,
    billing: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec = spec_for(number)
    checks = {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"}
    checks.update(spec.checks)
    billing = billing or {}
    pm: dict[str, Any] = {
        "id": sim.new_id("pm_"),
        "object": "payment_method",
        "billing_details": {
            "address": billing.get("address") or None,
            "email": billing.get("email"),
            "name": billing.get("name"),
            "phone": billing.get("phone"),
        },
        "card": {
            "brand": spec.brand,
            "checks": checks,
            "country": spec.country,
            "exp_month": exp_month,
            "exp_year": exp_year,
            "fingerprint": "fp" + number[-8:],
            "funding": spec.funding,
            "last4": number[-4:],
            "three_d_secure_usage": {"supported": True},
        },
        "created": sim.now(),
        "customer": None,
        "livemode": False,
        "metadata": metadata or {},
        "type": "card",
    }
    sim.add(pm)
    sim.pm_cards[pm["id"]] = (number, spec)
    return pm


def resolve_payment_method(sim: Simulator, pm_id: str, param: str = "payment_method") -> tuple[str, CardSpec]:
    """A ``pm_…`` the simulator tokenized, or a documented test id, which like Stripe yields a fresh ``pm_``."""
    if pm_id in sim.pm_cards:
        return pm_id, sim.pm_cards[pm_id][1]
    number = number_for_test_pm(pm_id)
    if number is None:
        raise missing("PaymentMethod", pm_id, param)
    pm = _new_payment_method(sim, number, 12, 2034)
    return pm["id"], sim.pm_cards[pm["id"]][1]


# ---------------------------------------------------------------- payment intents

PI_CREATE_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "payment_method",
        "confirm",
        "capture_method",
        "confirmation_method",
        "metadata",
        "description",
        "customer",
        "transfer_data",
        "transfer_group",
        "application_fee_amount",
        "on_behalf_of",
        "return_url",
        "off_session",
        "payment_method_types",
        "automatic_payment_methods",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "receipt_email",
        "expand",
        "setup_future_usage",
        "payment_method_options",
        "error_on_requires_action",
        "use_stripe_sdk",
        "mandate_data",
        "shipping",
    }
)
PI_CONFIRM_PARAMS = frozenset(
    {
        "payment_method",
        "return_url",
        "off_session",
        "expand",
        "receipt_email",
        "setup_future_usage",
        "payment_method_options",
        "error_on_requires_action",
        "use_stripe_sdk",
        "mandate_data",
        "shipping",
        "capture_method",
    }
)


def _whole_units(amount: int, currency: str) -> None:
    if currency in WHOLE_UNITS_ONLY and amount % 100:
        raise invalid(
            f"Amount must be a multiple of 100 for {currency.upper()}: fractional units are not supported.",
            param="amount",
            code="invalid_charge_amount_no_decimal_compatible",
        )


def create_payment_intent(
    sim: Simulator, p: dict[str, Any], *, checkout_session: str | None = None
) -> dict[str, Any]:
    # Every parameter is read (and so validated) before anything is created: a 400 leaves no trace.
    amount = P.integer(p, "amount", required=True, minimum=1)
    currency = P.currency(p)
    _whole_units(amount, currency)
    capture_method = P.string(p, "capture_method", default="automatic")
    if capture_method not in ("automatic", "automatic_async", "manual"):
        raise invalid(f"Invalid capture_method: {capture_method}", param="capture_method")
    transfer_data = P.mapping(p, "transfer_data")
    if transfer_data:
        transfer_data = {
            "destination": P.string(transfer_data, "destination", required=True),
            "amount": P.integer(transfer_data, "amount", minimum=0),
        }
        if transfer_data["amount"] is None:
            del transfer_data["amount"]
    confirm = P.boolean(p, "confirm")
    pi_id = sim.new_id("pi_")
    pi = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": 0,
        "application_fee_amount": P.integer(p, "application_fee_amount", minimum=0),
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": capture_method,
        "client_secret": sim.client_secret(pi_id),
        "confirmation_method": P.string(p, "confirmation_method", default="automatic"),
        "created": sim.now(),
        "currency": currency,
        "customer": P.string(p, "customer"),
        "description": P.string(p, "description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": P.metadata(p),
        "next_action": None,
        "on_behalf_of": P.string(p, "on_behalf_of"),
        "payment_method": None,
        "payment_method_types": P.string_list(p, "payment_method_types") or ["card"],
        "receipt_email": P.string(p, "receipt_email"),
        "statement_descriptor": P.string(p, "statement_descriptor"),
        "status": "requires_payment_method",
        "transfer_data": transfer_data or None,
        "transfer_group": P.string(p, "transfer_group"),
    }
    pm_param = P.string(p, "payment_method")
    if pm_param:
        pi["payment_method"], _ = resolve_payment_method(sim, pm_param)
        pi["status"] = "requires_confirmation"
    if transfer_data:
        _account_or_create(sim, transfer_data["destination"], "transfer_data[destination]")
    sim.add(pi)
    if checkout_session:
        sim.pi_checkout[pi_id] = checkout_session
    sim.emit("payment_intent.created", pi)
    if confirm:
        return confirm_payment_intent(sim, pi, p, from_create=True)
    return pi


def confirm_payment_intent(
    sim: Simulator, pi: dict[str, Any], p: dict[str, Any], *, from_create: bool = False
) -> dict[str, Any]:
    if not from_create and pi["id"] in sim.pi_checkout:
        raise invalid(
            "This PaymentIntent was created by a Checkout Session; use the Session instead.",
            code="payment_intent_unexpected_state",
        )
    states.require(pi, "confirm")
    pm_param = None if from_create else P.string(p, "payment_method")
    if pm_param:
        pi["payment_method"], _ = resolve_payment_method(sim, pm_param)
    if not pi["payment_method"]:
        raise invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            param="payment_method",
            code="payment_intent_unexpected_state",
        )
    if P.string(p, "capture_method"):
        pi["capture_method"] = P.string(p, "capture_method")
    return attempt_payment(
        sim, pi, off_session=P.boolean(p, "off_session"), return_url=P.string(p, "return_url")
    )


def attempt_payment(
    sim: Simulator, pi: dict[str, Any], *, off_session: bool = False, return_url: str | None = None
) -> dict[str, Any]:
    """Run one confirmation against the card table; raises a 402 CardError on decline, as Stripe does."""
    _, spec = sim.pm_cards[pi["payment_method"]]
    if spec.decline is not None:
        return _decline(sim, pi, spec, spec.decline, blocked=spec.blocked)
    needs_3ds = spec.three_ds == "required" or (
        spec.three_ds == "required_unless_off_session" and not off_session
    )
    if needs_3ds:
        if off_session:
            return _decline(
                sim,
                pi,
                spec,
                Decline(
                    "authentication_required",
                    "authentication_required",
                    "Your card was declined. This transaction requires authentication.",
                ),
            )
        base = sim.public_base
        url = f"{base}/3ds/{pi['id']}"
        pi["next_action"] = {
            "type": "redirect_to_url",
            "redirect_to_url": {"url": url, "return_url": return_url},
        }
        sim.pi_attempts[pi["id"]] = {"return_url": return_url, "since": sim.now()}
        states.move(pi, "requires_action")
        sim.emit("payment_intent.requires_action", pi)
        sim.at(sim.now() + sim.config.three_ds_timeout_seconds, _three_ds_timeout, pi["id"], sim.now())
        return pi
    return _authorize(sim, pi, spec)


def complete_authentication(sim: Simulator, pi: dict[str, Any], passed: bool) -> dict[str, Any]:
    """The buyer's answer on the 3-D Secure challenge page."""
    states.require(pi, "authenticate")
    sim.pi_attempts.pop(pi["id"], None)
    pi["next_action"] = None
    _, spec = sim.pm_cards[pi["payment_method"]]
    try:
        if not passed:
            return _decline(sim, pi, spec, AUTH_FAILED, charge=False)
        if spec.decline_after_auth is not None:
            return _decline(sim, pi, spec, spec.decline_after_auth)
        return _authorize(sim, pi, spec)
    except StripeError:
        # The challenge page is a browser flow: the outcome is on the PaymentIntent, not an API error.
        return pi


def _three_ds_timeout(sim: Simulator, pi_id: str, since: int) -> None:
    pi = sim.objects[pi_id]
    attempt = sim.pi_attempts.get(pi_id)
    if pi["status"] != "requires_action" or attempt is None or attempt["since"] != since:
        return
    complete_authentication(sim, pi, passed=False)


def _card_details(sim: Simulator, pm_id: str) -> dict[str, Any]:
    pm = sim.objects[pm_id]
    card = dict(pm["card"])
    card.pop("three_d_secure_usage", None)
    return {"type": "card", "card": card}


def _new_charge(sim: Simulator, pi: dict[str, Any], spec: CardSpec, status: str) -> dict[str, Any]:
    ch = {
        "id": sim.new_id("ch_"),
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "application_fee_amount": pi["application_fee_amount"],
        "balance_transaction": None,
        "billing_details": sim.objects[pi["payment_method"]]["billing_details"],
        "captured": False,
        "created": sim.now(),
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "outcome": None,
        "paid": status == "succeeded",
        "payment_intent": pi["id"],
        "payment_method": pi["payment_method"],
        "payment_method_details": _card_details(sim, pi["payment_method"]),
        "refunded": False,
        "status": status,
        # "transfer" is left out until a destination charge makes one: Stripe's schema has no null for it.
        "transfer_data": pi["transfer_data"],
        "transfer_group": pi["transfer_group"],
    }
    sim.add(ch)
    pi["latest_charge"] = ch["id"]
    return ch


def _decline(
    sim: Simulator,
    pi: dict[str, Any],
    spec: CardSpec,
    decline: Decline,
    *,
    blocked: bool = False,
    charge: bool = True,
) -> dict[str, Any]:
    ch_id = None
    if charge:
        ch = _new_charge(sim, pi, spec, "failed")
        ch_id = ch["id"]
        ch["failure_code"] = decline.code
        ch["failure_message"] = decline.message
        ch["outcome"] = {
            "network_status": "not_sent_to_network" if blocked else "declined_by_network",
            "reason": "highest_risk_level" if blocked else decline.decline_code,
            "risk_level": spec.risk_level,
            "seller_message": (
                "Stripe blocked this payment as too risky."
                if blocked
                else "The bank did not return any further details with this decline."
            ),
            "type": "blocked" if blocked else "issuer_declined",
        }
        sim.emit("charge.failed", ch)
    pm = sim.objects[pi["payment_method"]]
    err: dict[str, Any] = {
        "type": "card_error" if charge else "invalid_request_error",
        "code": decline.code,
        "decline_code": decline.decline_code,
        "message": decline.message,
        "charge": ch_id,
        "payment_method": pm,
        "doc_url": f"https://stripe.com/docs/error-codes/{decline.code.replace('_', '-')}",
    }
    pi["last_payment_error"] = {k: v for k, v in err.items() if v is not None}
    pi["payment_method"] = None
    pi["next_action"] = None
    states.move(pi, "requires_payment_method")
    sim.emit("payment_intent.payment_failed", pi)
    raise StripeError(
        402 if charge else 400,
        err["type"],
        decline.message,
        code=decline.code,
        decline_code=decline.decline_code,
        stored=True,
        charge=ch_id,
        payment_intent=copy.deepcopy(pi),
        payment_method=pm,
    )


def _authorize(sim: Simulator, pi: dict[str, Any], spec: CardSpec) -> dict[str, Any]:
    ch = _new_charge(sim, pi, spec, "succeeded")
    ch["outcome"] = {
        "network_status": "approved_by_network",
        "reason": "elevated_risk_level" if spec.risk_level == "elevated" else None,
        "risk_level": spec.risk_level,
        "risk_score": {"normal": 20, "elevated": 70, "highest": 90}.get(spec.risk_level, 20),
        "seller_message": "Payment complete.",
        "type": "authorized",
    }
    pi["last_payment_error"] = None
    pi["next_action"] = None
    if pi["capture_method"] == "manual":
        pi["amount_capturable"] = pi["amount"]
        states.move(pi, "requires_capture")
        sim.emit("charge.succeeded", ch)
        sim.emit("payment_intent.amount_capturable_updated", pi)
        return pi
    _capture(sim, pi, ch, spec, pi["amount"])
    sim.emit("charge.succeeded", ch)
    sim.emit("payment_intent.succeeded", pi)
    _after_success(sim, pi, ch, spec)
    return pi


def _capture(sim: Simulator, pi: dict[str, Any], ch: dict[str, Any], spec: CardSpec, amount: int) -> None:
    cfg = sim.config
    fee = fee_for(amount, cfg.fee_percent, cfg.fee_fixed_minor)
    now = sim.now()
    bt = sim.add_balance_transaction(
        account=None,
        amount=amount,
        currency=pi["currency"],
        type_="charge",
        category="charge",
        source=ch["id"],
        description=pi["description"] or f"Payment for {pi['id']}",
        fee=fee,
        available_on=now if spec.available_immediately else now + cfg.available_after_seconds,
    )
    ch["balance_transaction"] = bt["id"]
    ch["captured"] = True
    ch["amount_captured"] = amount
    ch["paid"] = True
    pi["amount_received"] = amount
    pi["amount_capturable"] = 0
    states.move(pi, "succeeded")


def _after_success(sim: Simulator, pi: dict[str, Any], ch: dict[str, Any], spec: CardSpec) -> None:
    td = pi["transfer_data"]
    if td:
        amount = td.get("amount")
        if amount is None:
            amount = ch["amount_captured"] - (pi["application_fee_amount"] or 0)
        tr = _make_transfer(
            sim,
            amount=amount,
            currency=pi["currency"],
            destination=td["destination"],
            transfer_group=pi["transfer_group"],
            source_transaction=ch["id"],
            metadata={},
            description=None,
        )
        ch["transfer"] = tr["id"]
    if spec.dispute_reason:
        _open_dispute(sim, ch, spec.dispute_reason)


def capture_payment_intent(sim: Simulator, pi: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    states.require(pi, "capture")
    amount = P.integer(p, "amount_to_capture", minimum=1)
    amount = pi["amount_capturable"] if amount is None else amount
    if amount > pi["amount_capturable"]:
        raise invalid(
            "The amount to capture is greater than the amount capturable.", param="amount_to_capture"
        )
    ch = sim.objects[pi["latest_charge"]]
    _, spec = sim.pm_cards[pi["payment_method"]]
    _capture(sim, pi, ch, spec, amount)
    sim.emit("charge.captured", ch)
    sim.emit("payment_intent.succeeded", pi)
    _after_success(sim, pi, ch, spec)
    return pi


def cancel_payment_intent(
    sim: Simulator, pi: dict[str, Any], p: dict[str, Any], *, via_checkout: bool = False
) -> dict[str, Any]:
    if not via_checkout and pi["id"] in sim.pi_checkout:
        raise invalid(
            "This PaymentIntent was created by a Checkout Session; expire the Session instead.",
            code="payment_intent_unexpected_state",
        )
    states.require(pi, "cancel")
    reason = P.string(
        p, "cancellation_reason", default="requested_by_customer" if not via_checkout else "abandoned"
    )
    allowed = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
    if reason not in allowed:
        raise invalid(f"Invalid cancellation_reason: {reason}", param="cancellation_reason")
    states.move(pi, "canceled")
    pi["canceled_at"] = sim.now()
    pi["cancellation_reason"] = reason
    pi["amount_capturable"] = 0
    pi["next_action"] = None
    sim.pi_attempts.pop(pi["id"], None)
    sim.emit("payment_intent.canceled", pi)
    return pi


# ---------------------------------------------------------------- disputes


def _open_dispute(sim: Simulator, ch: dict[str, Any], reason: str) -> None:
    inquiry = reason == "general"
    dp = {
        "id": sim.new_id("dp_"),
        "object": "dispute",
        "amount": ch["amount"],
        "balance_transactions": [],
        "charge": ch["id"],
        "created": sim.now(),
        "currency": ch["currency"],
        "evidence": {},
        "evidence_details": {
            "due_by": sim.now() + 7 * 86_400,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        "is_charge_refundable": inquiry,
        "livemode": False,
        "metadata": {},
        "payment_intent": ch["payment_intent"],
        "reason": reason,
        "status": "warning_needs_response" if inquiry else "needs_response",
    }
    sim.add(dp)
    ch["disputed"] = True
    sim.emit("charge.dispute.created", dp)
    if inquiry:
        return
    bt = sim.add_balance_transaction(
        account=None,
        amount=-ch["amount"],
        currency=ch["currency"],
        type_="adjustment",
        category="dispute",
        source=dp["id"],
        description=f"Chargeback withdrawal for {ch['id']}",
        fee=sim.config.dispute_fee_minor,
        fee_description="Dispute fee",
    )
    dp["balance_transactions"] = [bt]
    sim.emit("charge.dispute.funds_withdrawn", dp)


DISPUTE_UPDATE_PARAMS = frozenset({"evidence", "metadata", "submit", "expand"})
DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed"})
WINNING_EVIDENCE = "winning_evidence"
"""Stripe's test-mode magic: evidence whose ``uncategorized_text`` says so wins the dispute (anything else is
reviewed until someone closes it)."""


def _open_or_refuse(dp: dict[str, Any]) -> None:
    if dp["status"] in DISPUTE_CLOSED:
        raise invalid(f"This dispute is already closed ({dp['status']}).", code="dispute_already_closed")


def update_dispute(sim: Simulator, dp: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Evidence for a dispute (``charge.dispute.updated``); submitted (the default), it goes under review, and
    winning evidence wins it at once (``charge.dispute.closed``, the funds reinstated)."""
    _open_or_refuse(dp)
    evidence = body.get("evidence") or {}
    if not isinstance(evidence, dict):
        raise invalid("Invalid evidence: must be an object", param="evidence")
    # New dicts, never changed in place: earlier events' snapshots share the old ones (Simulator.emit).
    dp["evidence"] = {**dp["evidence"], **{k: v for k, v in evidence.items() if isinstance(v, str)}}
    dp["metadata"] = {**dp["metadata"], **P.metadata(body)}
    inquiry = dp["status"].startswith("warning_")
    if P.string(body, "submit", default="true") != "false":
        details = dp["evidence_details"]
        dp["evidence_details"] = {
            **details,
            "has_evidence": True,
            "submission_count": details["submission_count"] + 1,
        }
        dp["status"] = "warning_under_review" if inquiry else "under_review"
    sim.emit("charge.dispute.updated", dp)
    if dp["status"] == "under_review" and dp["evidence"].get("uncategorized_text") == WINNING_EVIDENCE:
        dp["status"] = "won"
        sim.emit("charge.dispute.closed", dp)
        bt = sim.add_balance_transaction(
            account=None,
            amount=dp["amount"],
            currency=dp["currency"],
            type_="adjustment",
            category="dispute_reversal",
            source=dp["id"],
            description=f"Chargeback reversal for {dp['charge']}",
            fee=0,
        )
        dp["balance_transactions"] = [*dp["balance_transactions"], bt]
        sim.emit("charge.dispute.funds_reinstated", dp)
    return dp


def close_dispute(sim: Simulator, dp: dict[str, Any]) -> dict[str, Any]:
    """The platform accepts the dispute (``charge.dispute.closed``): lost, or an inquiry closed."""
    _open_or_refuse(dp)
    dp["status"] = "warning_closed" if dp["status"].startswith("warning_") else "lost"
    sim.emit("charge.dispute.closed", dp)
    return dp


# ---------------------------------------------------------------- checkout sessions

CS_CREATE_PARAMS = frozenset(
    {
        "mode",
        "line_items",
        "success_url",
        "cancel_url",
        "client_reference_id",
        "customer",
        "customer_email",
        "metadata",
        "payment_intent_data",
        "expires_at",
        "payment_method_types",
        "currency",
        "expand",
        "locale",
        "ui_mode",
        "submit_type",
        "billing_address_collection",
        "return_url",
    }
)


def create_checkout_session(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    mode = P.string(p, "mode", required=True)
    if mode != "payment":
        raise invalid("The simulator supports mode=payment only.", param="mode")
    success_url = P.string(p, "success_url", required=True)
    cancel_url = P.string(p, "cancel_url")
    items = p.get("line_items")
    if not isinstance(items, list) or not items:
        raise invalid("line_items is required in payment mode.", param="line_items", code="parameter_missing")
    total, currency, rendered = 0, None, []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid("Invalid line item.", param=f"line_items[{i}]")
        pd = P.mapping(item, "price_data")
        if not pd:
            raise invalid("Only price_data line items are supported.", param=f"line_items[{i}][price_data]")
        cur = P.currency(pd, "currency")
        unit = P.integer(pd, "unit_amount", required=True, minimum=0)
        qty = P.integer(item, "quantity", required=True, minimum=1)
        if currency not in (None, cur):
            raise invalid(
                "All line items must share one currency.", param=f"line_items[{i}][price_data][currency]"
            )
        currency = cur
        total += unit * qty
        name = P.string(P.mapping(pd, "product_data"), "name") or "Item"
        rendered.append(
            {"description": name, "quantity": qty, "unit_amount": unit, "amount_total": unit * qty}
        )
    now = sim.now()
    expires_at = P.integer(p, "expires_at") or now + sim.config.checkout_expires_seconds
    if not now + 1800 <= expires_at <= now + 86400:
        raise invalid("expires_at must be between 30 minutes and 24 hours from now.", param="expires_at")
    cs_id = sim.new_id("cs_test_", 58)
    cs = {
        "id": cs_id,
        "object": "checkout.session",
        "amount_subtotal": total,
        "amount_total": total,
        "automatic_tax": {"enabled": False, "status": None},
        "cancel_url": cancel_url,
        "client_reference_id": P.string(p, "client_reference_id"),
        "created": now,
        "currency": currency,
        "customer": P.string(p, "customer"),
        "customer_details": None,
        "custom_fields": [],
        "custom_text": {"shipping_address": None, "submit": None},
        "customer_email": P.string(p, "customer_email"),
        "expires_at": expires_at,
        "livemode": False,
        "metadata": P.metadata(p),
        "mode": mode,
        "payment_intent": None,
        "payment_method_types": P.string_list(p, "payment_method_types") or ["card"],
        "payment_status": "unpaid",
        "shipping_options": [],
        "status": "open",
        "success_url": success_url,
        "ui_mode": "hosted_page",
        "url": f"{sim.public_base}/c/pay/{cs_id}",
    }
    pid = P.mapping(p, "payment_intent_data")
    sim.add(cs)
    sim.cs_private[cs_id] = {"line_items": rendered, "payment_intent_data": pid}
    sim.at(expires_at, _expire_due, cs_id)
    return cs


def _expire_due(sim: Simulator, cs_id: str) -> None:
    cs = sim.objects[cs_id]
    if cs["status"] == "open":
        expire_checkout_session(sim, cs)


def expire_checkout_session(sim: Simulator, cs: dict[str, Any]) -> dict[str, Any]:
    states.require(cs, "expire")
    pi_id = cs["payment_intent"]
    if pi_id:
        pi = sim.objects[pi_id]
        if pi["status"] in states.PAYMENT_INTENT_ACTIONS["cancel"]:
            cancel_payment_intent(sim, pi, {}, via_checkout=True)
    states.move(cs, "expired")
    cs["url"] = None
    sim.emit("checkout.session.expired", cs)
    return cs


def checkout_pay(sim: Simulator, cs: dict[str, Any], form: dict[str, Any]) -> tuple[str, str | None]:
    """Process a hosted-page submission. Returns ("redirect", url) or ("error", message)."""
    states.require(cs, "pay")
    number = (form.get("cardnumber") or "").replace(" ", "")
    expiry = (form.get("exp") or "").replace(" ", "")
    month, _, year = expiry.partition("/")
    cvc = form.get("cvc") or ""
    try:
        check_card_data(sim, number, month, year, cvc)
    except StripeError as e:
        return "error", e.message
    pm = _new_payment_method(
        sim,
        number,
        int(month),
        _full_year(int(year)),
        {"name": form.get("name") or None, "email": form.get("email") or cs["customer_email"]},
    )
    pi = _checkout_intent(sim, cs)
    pi["payment_method"] = pm["id"]
    if pi["status"] == "requires_payment_method":
        states.move(pi, "requires_confirmation")
    cs["customer_details"] = {"email": pm["billing_details"]["email"], "name": pm["billing_details"]["name"]}
    try:
        attempt_payment(sim, pi, return_url=f"{sim.public_base}/c/return/{cs['id']}")
    except StripeError as e:
        return "error", e.message
    if pi["status"] == "requires_action":
        return "redirect", pi["next_action"]["redirect_to_url"]["url"]
    return "redirect", checkout_result_url(sim, cs)


def _checkout_intent(sim: Simulator, cs: dict[str, Any]) -> dict[str, Any]:
    if cs["payment_intent"]:
        return sim.objects[cs["payment_intent"]]
    pid = sim.cs_private[cs["id"]]["payment_intent_data"]
    p: dict[str, Any] = {"amount": str(cs["amount_total"]), "currency": cs["currency"]}
    for key in (
        "metadata",
        "transfer_data",
        "transfer_group",
        "capture_method",
        "description",
        "application_fee_amount",
        "on_behalf_of",
        "statement_descriptor",
    ):
        if key in pid:
            p[key] = pid[key]
    if cs["customer"]:
        p["customer"] = cs["customer"]
    pi = create_payment_intent(sim, p, checkout_session=cs["id"])
    cs["payment_intent"] = pi["id"]
    return pi


def checkout_result_url(sim: Simulator, cs: dict[str, Any]) -> str | None:
    """After a payment attempt settles: complete the Session if paid and give the page to send the buyer to."""
    pi = sim.objects[cs["payment_intent"]]
    if cs["status"] == "open" and pi["status"] in ("succeeded", "requires_capture"):
        states.move(cs, "complete")
        cs["payment_status"] = "paid"
        cs["url"] = None
        sim.emit("checkout.session.completed", cs)
    if cs["status"] == "complete":
        return cs["success_url"].replace("{CHECKOUT_SESSION_ID}", quote(cs["id"]))
    return None


# ---------------------------------------------------------------- refunds

REFUND_PARAMS = frozenset(
    {
        "payment_intent",
        "charge",
        "amount",
        "reason",
        "metadata",
        "expand",
        "instructions_email",
        "origin",
        "refund_application_fee",
        "reverse_transfer",
    }
)


def create_refund(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    pi_id = P.string(p, "payment_intent")
    ch_id = P.string(p, "charge")
    if not pi_id and not ch_id:
        raise invalid(
            "One of payment_intent or charge is required.", param="payment_intent", code="parameter_missing"
        )
    if pi_id:
        pi = sim.get("payment_intent", pi_id, "payment_intent", None)
        if pi["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                param="payment_intent",
                code="charge_not_refundable" if pi["status"] != "requires_capture" else "charge_not_captured",
            )
        ch = sim.objects[pi["latest_charge"]]
    else:
        assert ch_id is not None  # one of the two was required above
        ch = sim.get("charge", ch_id, "charge", None)
        if not ch["captured"]:
            raise invalid("This charge has not been captured.", param="charge", code="charge_not_captured")
    remaining = ch["amount_captured"] - ch["amount_refunded"]
    amount = P.integer(p, "amount", minimum=1)
    if remaining <= 0:
        raise invalid(f"Charge {ch['id']} has already been refunded.", code="charge_already_refunded")
    if amount is None:
        amount = remaining
    _whole_units(amount, ch["currency"])
    if amount > remaining:
        raise invalid(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            param="amount",
            code="amount_too_large",
        )
    reason = P.string(p, "reason")
    if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
        raise invalid(f"Invalid reason: {reason}", param="reason")
    metadata = P.metadata(p)  # read before the balance moves, so a bad value leaves nothing behind
    _, spec = sim.pm_cards[ch["payment_method"]]
    bt = sim.add_balance_transaction(
        account=None,
        amount=-amount,
        currency=ch["currency"],
        type_="refund",
        category="refund",
        source="",
        description="REFUND FOR CHARGE" + (f" ({ch['description']})" if ch["description"] else ""),
    )
    re_ = {
        "id": sim.new_id("re_"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": bt["id"],
        "charge": ch["id"],
        "created": sim.now(),
        "currency": ch["currency"],
        "destination_details": {"type": "card", "card": {"type": "refund", "reference_status": "pending"}},
        # failure_balance_transaction / failure_reason appear only on a failed refund (not nullable).
        "metadata": metadata,
        "payment_intent": ch["payment_intent"],
        "pending_reason": None,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    bt["source"] = re_["id"]
    if spec.refund_behaviour == "pending_then_succeeded":
        re_["status"] = "pending"
        re_["pending_reason"] = "processing"
    sim.add(re_)
    ch["amount_refunded"] += amount
    ch["refunded"] = ch["amount_refunded"] == ch["amount_captured"]
    sim.emit("refund.created", re_)
    sim.emit("charge.refunded", ch)
    if spec.refund_behaviour:
        sim.at(sim.now() + sim.config.refund_settle_seconds, _refund_later, re_["id"], spec.refund_behaviour)
    return re_


def _refund_later(sim: Simulator, re_id: str, behaviour: str) -> None:
    re_ = sim.objects[re_id]
    previous = {"status": re_["status"]}
    if behaviour == "pending_then_succeeded":
        states.move(re_, "succeeded")
        re_["pending_reason"] = None
        sim.emit("refund.updated", re_, previous=previous)
        sim.emit("charge.refund.updated", re_, previous=previous)
        return
    states.move(re_, "failed")
    re_["failure_reason"] = "expired_or_canceled_card"
    ch = sim.objects[re_["charge"]]
    fbt = sim.add_balance_transaction(
        account=None,
        amount=re_["amount"],
        currency=re_["currency"],
        type_="refund_failure",
        category="refund_failure",
        source=re_id,
        description="REFUND FAILURE",
    )
    re_["failure_balance_transaction"] = fbt["id"]
    ch["amount_refunded"] -= re_["amount"]
    ch["refunded"] = False
    sim.emit("refund.updated", re_, previous=previous)
    sim.emit("refund.failed", re_)
    sim.emit("charge.refund.updated", re_, previous=previous)


# ---------------------------------------------------------------- connect: accounts, transfers, payouts

ACCOUNT_PARAMS = frozenset(
    {
        "type",
        "country",
        "email",
        "external_account",
        "metadata",
        "capabilities",
        "business_type",
        "business_profile",
        "settings",
        "tos_acceptance",
        "individual",
        "company",
        "controller",
        "expand",
        "default_currency",
    }
)


PAYOUTS_DISABLED_TAG = "+payouts_disabled@"


def create_account(sim: Simulator, p: dict[str, Any], acct_id: str | None = None) -> dict[str, Any]:
    acct_id = acct_id or sim.new_id("acct_", 16)
    ext = p.get("external_account") or {}
    number = P.string(ext, "account_number") if isinstance(ext, dict) else None
    number = number or sim.config.platform_bank_account
    if number not in PAYOUT_TEST_ACCOUNTS and not number.isdigit():
        raise invalid("Invalid account number.", param="external_account[account_number]")
    currency = (P.string(ext, "currency") if isinstance(ext, dict) else None) or "usd"
    metadata = P.metadata(p)
    ba: dict[str, Any] = {
        "id": sim.new_id("ba_"),
        "object": "bank_account",
        "account": acct_id,
        "bank_name": "STRIPE TEST BANK",
        "country": (P.string(ext, "country") if isinstance(ext, dict) else None) or "US",
        "currency": currency,
        "default_for_currency": True,
        "last4": number[-4:],
        "routing_number": (P.string(ext, "routing_number") if isinstance(ext, dict) else None) or "110000000",
        "status": "new",
    }
    acct: dict[str, Any] = {
        "id": acct_id,
        "object": "account",
        "business_type": P.string(p, "business_type"),
        "charges_enabled": True,
        "country": P.string(p, "country", default="US"),
        "created": sim.now(),
        "default_currency": P.string(p, "default_currency", default="usd"),
        "details_submitted": True,
        "email": P.string(p, "email"),
        "external_accounts": {
            "object": "list",
            "data": [ba],
            "has_more": False,
            "url": f"/v1/accounts/{acct_id}/external_accounts",
        },
        "metadata": metadata,
        # A test convention (docs/psp_sim.md): an email tagged "+payouts_disabled" makes an account
        # whose payouts are off, as Stripe's are until its requirements are met.
        "payouts_enabled": PAYOUTS_DISABLED_TAG not in (P.string(p, "email") or ""),
        "settings": {
            "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
            "card_payments": {
                "decline_on": {"avs_failure": False, "cvc_failure": False},
                "statement_descriptor_prefix": None,
            },
            "dashboard": {"display_name": None, "timezone": "Etc/UTC"},
            "payments": {"statement_descriptor": None},
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "manual"},
                "statement_descriptor": None,
            },
        },
        "type": P.string(p, "type", default="custom"),
    }
    sim.add(ba, acct_id)
    sim.bank_numbers[ba["id"]] = number
    sim.add(acct)
    return acct


def _account_or_create(sim: Simulator, acct_id: str, param: str) -> dict[str, Any]:
    acct = sim.objects.get(acct_id)
    if acct is not None and acct["object"] == "account":
        return acct
    if not acct_id.startswith("acct_") or not sim.config.auto_create_accounts:
        raise invalid(f"No such destination: '{acct_id}'", param=param, code="resource_missing")
    return create_account(sim, {}, acct_id)


TRANSFER_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "destination",
        "transfer_group",
        "source_transaction",
        "metadata",
        "description",
        "expand",
        "source_type",
    }
)


def create_transfer(sim: Simulator, p: dict[str, Any]) -> dict[str, Any]:
    amount = P.integer(p, "amount", required=True, minimum=1)
    currency = P.currency(p)
    dest = P.string(p, "destination", required=True)
    source_tx = P.string(p, "source_transaction")
    group = P.string(p, "transfer_group")
    metadata, description = P.metadata(p), P.string(p, "description")
    if source_tx:
        ch = sim.get("charge", source_tx, "charge", None)
        pi = sim.objects[ch["payment_intent"]]
        group = group or pi["transfer_group"] or f"group_{pi['id']}"
        if ch["currency"] != currency or amount > ch["amount_captured"] - ch["amount_refunded"]:
            raise invalid("Transfer amount exceeds the source transaction.", param="amount")
    elif sim.available(None, currency) < amount:
        raise invalid(
            "You have insufficient available funds in your Stripe account. Try adding funds directly to your "
            "available balance by creating Charges using the 4000000000000077 test card.",
            code="balance_insufficient",
        )
    _account_or_create(sim, dest, "destination")
    return _make_transfer(
        sim,
        amount=amount,
        currency=currency,
        destination=dest,
        transfer_group=group,
        source_transaction=source_tx,
        metadata=metadata,
        description=description,
    )


def _make_transfer(
    sim: Simulator,
    *,
    amount: int,
    currency: str,
    destination: str,
    transfer_group: str | None,
    source_transaction: str | None,
    metadata: dict[str, str],
    description: str | None,
) -> dict[str, Any]:
    tr_id = sim.new_id("tr_")
    py_id = sim.new_id("py_")
    bt = sim.add_balance_transaction(
        account=None,
        amount=-amount,
        currency=currency,
        type_="transfer",
        category="transfer",
        source=tr_id,
        description=description,
    )
    sim.add_balance_transaction(
        account=destination,
        amount=amount,
        currency=currency,
        type_="payment",
        category="charge",
        source=py_id,
        description=description,
    )
    tr = {
        "id": tr_id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": bt["id"],
        "created": sim.now(),
        "currency": currency,
        "description": description,
        "destination": destination,
        "destination_payment": py_id,
        "livemode": False,
        "metadata": metadata,
        "reversals": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/transfers/{tr_id}/reversals",
        },
        "reversed": False,
        "source_transaction": source_transaction,
        "source_type": "card",
        "transfer_group": transfer_group,
    }
    sim.add(tr)
    sim.emit("transfer.created", tr)
    return tr


TRANSFER_REVERSAL_PARAMS = frozenset(
    {"amount", "description", "metadata", "refund_application_fee", "expand"}
)


def create_transfer_reversal(sim: Simulator, tr_id: str, p: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/transfers/{id}/reversals``: money back from the connected account to the platform, all
    that is not reversed yet unless ``amount`` says less. Refused when the transfer has less left than
    asked, or the connected account's available balance cannot cover it (``balance_insufficient``)."""
    tr = sim.get("transfer", tr_id, "transfer")
    left = tr["amount"] - tr["amount_reversed"]
    amount = P.integer(p, "amount", minimum=1)
    amount = left if amount is None else amount
    metadata, description = P.metadata(p), P.string(p, "description")
    P.boolean(p, "refund_application_fee")
    if left <= 0:
        raise invalid(f"Transfer {tr_id} has already been fully reversed.", code="transfer_already_reversed")
    if amount > left:
        raise invalid(
            f"Amount ({amount}) is greater than the amount that can be reversed ({left}).", param="amount"
        )
    dest = tr["destination"]
    if sim.available(dest, tr["currency"]) < amount:
        raise invalid(
            "Insufficient funds in the connected account to reverse this transfer.",
            code="balance_insufficient",
        )
    trr_id = sim.new_id("trr_")
    pyr_id = sim.new_id("pyr_")
    bt = sim.add_balance_transaction(
        account=None,
        amount=amount,
        currency=tr["currency"],
        type_="transfer_refund",
        category="transfer_reversal",
        source=trr_id,
        description=description,
    )
    sim.add_balance_transaction(
        account=dest,
        amount=-amount,
        currency=tr["currency"],
        type_="payment_refund",
        category="refund",
        source=pyr_id,
        description=description,
    )
    trr = {
        "id": trr_id,
        "object": "transfer_reversal",
        "amount": amount,
        "balance_transaction": bt["id"],
        "created": sim.now(),
        "currency": tr["currency"],
        "destination_payment_refund": pyr_id,
        "metadata": metadata,
        "source_refund": None,
        "transfer": tr_id,
    }
    sim.add(trr)
    tr["amount_reversed"] += amount
    tr["reversed"] = tr["amount_reversed"] == tr["amount"]
    tr["reversals"]["data"].insert(0, trr)  # newest first, as Stripe lists them
    sim.emit("transfer.reversed", tr)
    return trr


PAYOUT_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "destination",
        "method",
        "description",
        "statement_descriptor",
        "metadata",
        "source_type",
        "expand",
    }
)


def create_payout(
    sim: Simulator, p: dict[str, Any], account: str | None, *, automatic: bool = False
) -> dict[str, Any]:
    amount = P.integer(p, "amount", required=True, minimum=1)
    currency = P.currency(p)
    method = P.string(p, "method", default="standard")
    if method not in ("standard", "instant"):
        raise invalid(f"Invalid method: {method}", param="method")
    description, descriptor = P.string(p, "description"), P.string(p, "statement_descriptor")
    metadata = P.metadata(p)
    if account is not None and not _account_or_create(sim, account, "Stripe-Account")["payouts_enabled"]:
        raise invalid("Payouts have been disabled on this account.", code="payouts_not_allowed")
    if sim.available(account, currency) < amount:
        raise invalid(
            "You have insufficient funds in your Stripe account for this transfer.",
            code="balance_insufficient",
        )
    bank = _bank_account(sim, account, P.string(p, "destination"))
    failure = PAYOUT_TEST_ACCOUNTS.get(sim.bank_numbers.get(bank, ""))
    if failure == "instant_only":
        failure = "could_not_process" if method == "instant" else None
    po_id = sim.new_id("po_")
    bt = sim.add_balance_transaction(
        account=account,
        amount=-amount,
        currency=currency,
        type_="payout",
        category="payout",
        source=po_id,
        description=description or "STRIPE PAYOUT",
    )
    now = sim.now()
    po = {
        "id": po_id,
        "object": "payout",
        "amount": amount,
        "arrival_date": now + sim.config.payout_arrival_seconds,
        "automatic": automatic,
        "balance_transaction": bt["id"],
        "created": now,
        "currency": currency,
        "description": description,
        "destination": bank,
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": metadata,
        "method": method,
        "original_payout": None,
        "reconciliation_status": "in_progress" if automatic else "not_applicable",
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": descriptor,
        "status": "pending",
        "trace_id": {"status": "pending", "value": None},
        "type": "bank_account",
    }
    sim.add(po, account)
    sim.bt_payout[bt["id"]] = po_id
    sim.emit("payout.created", po, account=account)
    sim.at(now + sim.config.payout_in_transit_after_seconds, _payout_step, po_id, "in_transit", None)
    sim.at(po["arrival_date"], _payout_step, po_id, "arrive", failure)
    return po


def _bank_account(sim: Simulator, account: str | None, destination: str | None) -> str:
    holder = account or "__platform__"
    if destination:
        obj = sim.objects.get(destination)
        if obj is None or obj["object"] != "bank_account" or obj["account"] != holder:
            raise missing("external account", destination, "destination")
        return destination
    if account is not None:
        acct = _account_or_create(sim, account, "Stripe-Account")
        return acct["external_accounts"]["data"][0]["id"]
    existing = sim.platform_bank
    if existing and existing in sim.objects:
        return existing
    ba_id = sim.new_id("ba_")
    sim.add(
        {
            "id": ba_id,
            "object": "bank_account",
            "account": holder,
            "last4": sim.config.platform_bank_account[-4:],
            "routing_number": "110000000",
            "status": "new",
            "currency": "usd",
        },
        "__platform__",
    )
    sim.bank_numbers[ba_id] = sim.config.platform_bank_account
    sim.platform_bank = ba_id
    return ba_id


def _payout_step(sim: Simulator, po_id: str, stage: str, failure: str | None) -> None:
    po = sim.objects[po_id]
    account = sim.owner[po_id]
    previous = {"status": po["status"]}
    if stage == "in_transit":
        if po["status"] == "pending":
            states.move(po, "in_transit")
            sim.emit("payout.updated", po, account=account, previous=previous)
        return
    if po["status"] not in ("pending", "in_transit"):
        return
    if failure:
        states.move(po, "failed")
        po["failure_code"] = failure
        po["failure_message"] = PAYOUT_FAILURE_MESSAGES.get(failure, failure)
        fbt = sim.add_balance_transaction(
            account=account,
            amount=po["amount"],
            currency=po["currency"],
            type_="payout_failure",
            category="payout_reversal",
            source=po_id,
            description="PAYOUT FAILURE",
        )
        po["failure_balance_transaction"] = fbt["id"]
        sim.emit("payout.updated", po, account=account, previous=previous)
        sim.emit("payout.failed", po, account=account)
        return
    states.move(po, "paid")
    po["trace_id"] = {"status": "supported", "value": "TRACE" + po_id[-10:].upper()}
    sim.emit("payout.updated", po, account=account, previous=previous)
    sim.emit("payout.paid", po, account=account)
    if po["automatic"]:
        po["reconciliation_status"] = "completed"
        sim.emit("payout.reconciliation_completed", po, account=account)


def run_automatic_payouts(sim: Simulator, account: str | None) -> list[dict[str, Any]]:
    """Pay out the whole available balance per currency and tie the swept transactions to the payout."""
    made = []
    for (acct, currency), (avail, _) in list(sim.balances.items()):
        if acct != account or avail <= 0:
            continue
        swept = [
            bt_id
            for bt_id in sim.lists.get("balance_transaction", [])
            if sim.owner[bt_id] == account
            and bt_id not in sim.bt_payout
            and sim.objects[bt_id]["currency"] == currency
            and sim.objects[bt_id]["status"] == "available"
        ]
        po = create_payout(sim, {"amount": str(avail), "currency": currency}, account, automatic=True)
        for bt_id in swept:
            sim.bt_payout[bt_id] = po["id"]
        made.append(po)
    return made
