"""Stripe's test cards and test PaymentMethod ids as data (docs.stripe.com/testing, reference §6).

A card's behaviour is one :class:`CardSpec`; the engine in ``domain.py`` interprets it. Numbers not in the
table behave like an ordinary Visa/Mastercard/... of their brand and succeed, as in Stripe's test mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str | None
    message: str


@dataclass(frozen=True)
class CardSpec:
    brand: str = "visa"
    funding: str = "credit"
    country: str = "US"
    decline: Decline | None = None
    # Radar: a block is a decline with outcome type "blocked"; risk level goes on the charge outcome.
    risk_level: str = "normal"
    blocked: bool = False
    # 3-D Secure: "required" asks for a challenge; "required_unless_off_session" skips it off-session.
    three_ds: str | None = None
    decline_after_auth: Decline | None = None
    refund_behaviour: str | None = None  # "pending_then_succeeded" | "succeeded_then_failed"
    dispute_reason: str | None = None
    available_immediately: bool = False
    checks: dict[str, str] = field(default_factory=dict)


GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
INSUFFICIENT = Decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")
LOST = Decline("card_declined", "lost_card", "Your card was declined.")
STOLEN = Decline("card_declined", "stolen_card", "Your card was declined.")
EXPIRED = Decline("expired_card", None, "Your card has expired.")
BAD_CVC = Decline("incorrect_cvc", None, "Your card's security code is incorrect.")
PROCESSING = Decline("processing_error", None, "An error occurred while processing your card. Try again.")
BAD_NUMBER = Decline("incorrect_number", None, "Your card number is incorrect.")
VELOCITY = Decline("card_declined", "card_velocity_exceeded", "Your card was declined.")
FRAUD = Decline("card_declined", "fraudulent", "Your card was declined.")
AUTH_FAILED = Decline(
    "payment_intent_authentication_failure",
    None,
    "We are unable to authenticate your payment method. Please choose a different payment method and try again.",
)

_BRANDS = {
    "4242424242424242": CardSpec(),
    "4000056655665556": CardSpec(funding="debit"),
    "5555555555554444": CardSpec(brand="mastercard"),
    "2223003122003222": CardSpec(brand="mastercard"),
    "5200828282828210": CardSpec(brand="mastercard", funding="debit"),
    "5105105105105100": CardSpec(brand="mastercard", funding="prepaid"),
    "378282246310005": CardSpec(brand="amex"),
    "371449635398431": CardSpec(brand="amex"),
    "6011111111111117": CardSpec(brand="discover"),
    "6011000990139424": CardSpec(brand="discover"),
    "6011981111111113": CardSpec(brand="discover", funding="debit"),
    "3056930009020004": CardSpec(brand="diners"),
    "36227206271667": CardSpec(brand="diners"),
    "6555900000604105": CardSpec(brand="discover", country="BR"),
    "3566002020360505": CardSpec(brand="jcb", country="JP"),
    "6200000000000005": CardSpec(brand="unionpay", country="CN"),
    "6200000000000047": CardSpec(brand="unionpay", funding="debit", country="CN"),
    "6205500000000000004": CardSpec(brand="unionpay", country="CN"),
    "4000002760000016": CardSpec(country="DE"),
    "4000002500000003": CardSpec(country="FR"),
    "4000005280000002": CardSpec(country="NL"),
    "4000008260000000": CardSpec(country="GB"),
}

_BEHAVIOURS = {
    "4000000000000002": CardSpec(decline=GENERIC),
    "4000000000009995": CardSpec(decline=INSUFFICIENT),
    "4000000000009987": CardSpec(decline=LOST),
    "4000000000009979": CardSpec(decline=STOLEN),
    "4000000000000069": CardSpec(decline=EXPIRED),
    "4000000000000127": CardSpec(decline=BAD_CVC, checks={"cvc_check": "fail"}),
    "4000000000000119": CardSpec(decline=PROCESSING),
    "4242424242424241": CardSpec(decline=BAD_NUMBER),
    "4000000000006975": CardSpec(decline=VELOCITY),
    "4000000000000341": CardSpec(decline=GENERIC),
    "4100000000000019": CardSpec(decline=FRAUD, blocked=True, risk_level="highest"),
    "4000000000004954": CardSpec(risk_level="highest"),
    "4000000000009235": CardSpec(risk_level="elevated"),
    "4000000000000101": CardSpec(checks={"cvc_check": "fail"}),
    "4000000000000036": CardSpec(checks={"address_postal_code_check": "fail"}),
    "4000000000000028": CardSpec(checks={"address_line1_check": "fail"}),
    "4000000000000010": CardSpec(checks={"address_line1_check": "fail", "address_postal_code_check": "fail"}),
    "4000000000000044": CardSpec(
        checks={"address_line1_check": "unavailable", "address_postal_code_check": "unavailable"}
    ),
    "4000000000000259": CardSpec(dispute_reason="fraudulent"),
    "4000000000002685": CardSpec(dispute_reason="product_not_received"),
    "4000000000001976": CardSpec(dispute_reason="general"),
    "4000000000007726": CardSpec(refund_behaviour="pending_then_succeeded"),
    "4000000000005126": CardSpec(refund_behaviour="succeeded_then_failed"),
    "4000000000000077": CardSpec(available_immediately=True),
    "4000003720000278": CardSpec(available_immediately=True, country="GB"),
    "4000002500003155": CardSpec(country="FR", three_ds="required_unless_off_session"),
    "4000002760003184": CardSpec(country="DE", three_ds="required"),
    "4000003800000446": CardSpec(),
    "4000008260003178": CardSpec(country="GB", three_ds="required", decline_after_auth=INSUFFICIENT),
    "4000000000003220": CardSpec(three_ds="required"),
    "4000008400001629": CardSpec(three_ds="required", decline_after_auth=GENERIC),
    "4000008400001280": CardSpec(decline=GENERIC),
    "4000000000003055": CardSpec(),
    "4000000000003097": CardSpec(),
    "4000000000003238": CardSpec(three_ds="required"),
    "4000000000003246": CardSpec(three_ds="required"),
    "4000000000003253": CardSpec(three_ds="required"),
}

CARDS: dict[str, CardSpec] = {**_BRANDS, **_BEHAVIOURS}

# Test PaymentMethod ids → card number. Names beyond the reference's list follow docs.stripe.com/testing.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_mastercard_debit": "5200828282828210",
    "pm_card_mastercard_prepaid": "5105105105105100",
    "pm_card_amex": "378282246310005",
    "pm_card_discover": "6011111111111117",
    "pm_card_diners": "3056930009020004",
    "pm_card_jcb": "3566002020360505",
    "pm_card_unionpay": "6200000000000005",
    "pm_card_de": "4000002760000016",
    "pm_card_fr": "4000002500000003",
    "pm_card_gb": "4000008260000000",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": "4000000000006975",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_radarBlock": "4100000000000019",
    "pm_card_riskLevelHighest": "4000000000004954",
    "pm_card_riskLevelElevated": "4000000000009235",
    "pm_card_cvcCheckFail": "4000000000000101",
    "pm_card_avsZipFail": "4000000000000036",
    "pm_card_avsLine1Fail": "4000000000000028",
    "pm_card_avsFail": "4000000000000010",
    "pm_card_avsUnchecked": "4000000000000044",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeProductNotReceived": "4000000000002685",
    "pm_card_createDisputeInquiry": "4000000000001976",
    "pm_card_pendingRefund": "4000000000007726",
    "pm_card_refundFail": "4000000000005126",
    "pm_card_bypassPending": "4000000000000077",
    "pm_card_bypassPendingInternational": "4000003720000278",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredSetupForOffSession": "4000003800000446",
    "pm_card_authenticationRequiredChargeDeclinedInsufficientFunds": "4000008260003178",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_threeDSecureOptional": "4000000000003055",
}

_PREFIX_BRANDS = (
    ("34", "amex"),
    ("37", "amex"),
    ("4", "visa"),
    ("51", "mastercard"),
    ("52", "mastercard"),
    ("53", "mastercard"),
    ("54", "mastercard"),
    ("55", "mastercard"),
    ("22", "mastercard"),
    ("6011", "discover"),
    ("65", "discover"),
    ("30", "diners"),
    ("36", "diners"),
    ("35", "jcb"),
    ("62", "unionpay"),
)


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def spec_for(number: str) -> CardSpec:
    spec = CARDS.get(number)
    if spec is not None:
        return spec
    for prefix, brand in _PREFIX_BRANDS:
        if number.startswith(prefix):
            return CardSpec(brand=brand)
    return CardSpec(brand="unknown")


def number_for_test_pm(pm_id: str) -> str | None:
    """Card number behind a documented test PaymentMethod id, also accepting the ``tok_`` spelling."""
    if pm_id.startswith("tok_"):
        pm_id = "pm_card_" + pm_id[4:]
    return TEST_PAYMENT_METHODS.get(pm_id)


# Connect test bank accounts (routing 110000000, docs.stripe.com/connect/testing): account number →
# payout failure code, or None for success. "instant_only" fails only for method=instant.
PAYOUT_TEST_ACCOUNTS: dict[str, str | None] = {
    "000123456789": None,
    "000111111116": "no_account",
    "000111111113": "account_closed",
    "000222222227": "insufficient_funds",
    "000333333335": "debit_not_authorized",
    "000444444440": "invalid_currency",
    "000888888883": "instant_only",
}

PAYOUT_FAILURE_MESSAGES = {
    "no_account": "The bank account details on file are probably incorrect. No bank account could be located with those details.",
    "account_closed": "The bank account has been closed.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "debit_not_authorized": "Debit transactions are not approved on the bank account.",
    "invalid_currency": "The bank was unable to process this payout because of its currency.",
    "could_not_process": "The bank could not process this payout.",
}
