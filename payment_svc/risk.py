"""Risk check before any PSP call: a pluggable provider with a rule-based default.

A provider answers APPROVE, REVIEW (hold the orders until an operator decides) or DECLINE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from svckit.money import format_amount


class RiskVerdict(enum.StrEnum):
    APPROVE = "approve"
    REVIEW = "review"
    DECLINE = "decline"


@dataclass(frozen=True)
class RiskDecision:
    verdict: RiskVerdict
    rule: str = ""
    detail: str = ""


@dataclass(frozen=True)
class CheckoutFacts:
    """What the risk check sees: the checkout and the buyer's recent history (from our own database)."""

    buyer_id: str
    currency: str
    total_minor: int
    seller_accounts: tuple[str, ...]
    recent_checkouts: int
    recent_amount_minor: int


class RiskProvider(Protocol):
    async def assess(self, facts: CheckoutFacts) -> RiskDecision: ...


@dataclass
class RuleLimits:
    """Limits of the rule-based provider; amounts in minor units of the checkout's currency."""

    review_above_minor: int = 500_000
    decline_above_minor: int = 5_000_000
    velocity_window_seconds: int = 3600
    velocity_max_checkouts: int = 20
    velocity_max_amount_minor: int = 2_000_000
    blocked_buyers: frozenset[str] = field(default_factory=frozenset)
    blocked_sellers: frozenset[str] = field(default_factory=frozenset)


class RuleBasedRisk:
    """Blocked parties and amount limits decline; large or fast-repeating spend goes to review."""

    def __init__(self, limits: RuleLimits) -> None:
        self.limits = limits

    async def assess(self, facts: CheckoutFacts) -> RiskDecision:
        lim = self.limits
        if facts.buyer_id in lim.blocked_buyers:
            return RiskDecision(RiskVerdict.DECLINE, "blocked_buyer", f"buyer {facts.buyer_id} is blocked")
        blocked = sorted(set(facts.seller_accounts) & lim.blocked_sellers)
        if blocked:
            return RiskDecision(RiskVerdict.DECLINE, "blocked_seller", f"seller {blocked[0]} is blocked")
        if facts.total_minor > lim.decline_above_minor:
            return RiskDecision(
                RiskVerdict.DECLINE,
                "amount_limit",
                f"checkout total {format_amount(facts.total_minor, facts.currency)} {facts.currency} exceeds the limit",
            )
        if facts.recent_checkouts + 1 > lim.velocity_max_checkouts:
            return RiskDecision(
                RiskVerdict.REVIEW,
                "velocity_count",
                f"{facts.recent_checkouts + 1} checkouts within {lim.velocity_window_seconds}s",
            )
        if facts.recent_amount_minor + facts.total_minor > lim.velocity_max_amount_minor:
            return RiskDecision(
                RiskVerdict.REVIEW, "velocity_amount", "spend within the window exceeds the limit"
            )
        if facts.total_minor > lim.review_above_minor:
            return RiskDecision(
                RiskVerdict.REVIEW,
                "amount_review",
                f"checkout total {format_amount(facts.total_minor, facts.currency)} {facts.currency} needs review",
            )
        return RiskDecision(RiskVerdict.APPROVE)
