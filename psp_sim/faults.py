"""Fault injection: rules set per run (config file or ``POST /_sim/faults``), decided by a seeded RNG,
and every injected fault recorded so a test can check that the system under test noticed it.

A rule matches a scope (path prefix + method for API faults, event-type prefix for webhooks, report type
for settlement files), fires with probability ``rate``, and stops after ``count`` firings if set.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

HTTP_KINDS = frozenset(
    {"latency", "http_500", "http_429", "connection_drop", "drop_after_commit", "error_after_commit"}
)
WEBHOOK_KINDS = frozenset({"webhook_duplicate", "webhook_out_of_order", "webhook_delay", "webhook_drop"})
SETTLEMENT_KINDS = frozenset(
    {
        "settlement_missing_row",
        "settlement_extra_row",
        "settlement_amount_changed",
        "settlement_fee_changed",
        "settlement_currency_changed",
        "settlement_duplicate_row",
    }
)
ALL_KINDS = HTTP_KINDS | WEBHOOK_KINDS | SETTLEMENT_KINDS


@dataclass
class FaultRule:
    kind: str
    rate: float = 1.0
    count: int | None = None
    """Fire at most this many more times (``None``: unlimited). "The next N requests" is rate=1, count=N."""
    path_prefix: str = "/v1/"
    method: str | None = None
    event_type: str | None = None
    """Webhook faults: only events whose type starts with this."""
    report_type: str | None = None
    latency_ms: int = 0
    delay_seconds: int = 300
    """webhook_delay: simulated seconds before the first attempt."""
    should_retry: bool | None = None
    """http_500/http_429: send ``Stripe-Should-Retry: true|false``; None sends no header."""
    amount_delta_minor: int = 100
    """settlement_amount_changed / settlement_fee_changed: minor units added to the row; settlement_extra_row:
    the unknown row's gross."""
    advance_seconds: int = 0
    """drop_after_commit / error_after_commit: the simulated clock moves on this much once the answer is
    lost, as if the client's retry came that much later (past the idempotency key's 24 h, say)."""
    target: str | None = None
    """Settlement faults: touch only a row whose balance transaction, source, charge or PaymentIntent id, or
    one of whose metadata values, equals this (our checkout id, say); the rule does not fire (nor count) for a
    report with no such row. None: a row drawn by the seeded RNG."""
    id: str = ""
    fired: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any], index: int) -> FaultRule:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"fault {index}: unknown keys {sorted(unknown)}")
        rule = cls(**data)
        if rule.kind not in ALL_KINDS:
            raise ValueError(f"fault {index}: unknown kind {rule.kind!r}; one of {sorted(ALL_KINDS)}")
        if not 0.0 <= float(rule.rate) <= 1.0:
            raise ValueError(f"fault {index}: rate must be within [0, 1]")
        if int(rule.advance_seconds) < 0:
            raise ValueError(
                f"fault {index}: advance_seconds must not be negative (the clock only moves forward)"
            )
        if rule.kind == "latency" and rule.latency_ms <= 0:
            raise ValueError(f"fault {index}: latency needs latency_ms > 0")
        rule.id = rule.id or f"fault_{index}"
        return rule


@dataclass
class InjectedFault:
    id: str
    rule_id: str
    kind: str
    sim_time: int
    wall_time: float
    detail: dict[str, Any] = field(default_factory=dict)


class FaultEngine:
    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self.injected: list[InjectedFault] = []
        self.seed = seed
        self.rng = random.Random(seed)

    def configure(self, rules: list[dict[str, Any]], seed: int | None = None, replace: bool = True) -> None:
        parsed = [
            FaultRule.from_dict(r, i + (0 if replace else len(self.rules))) for i, r in enumerate(rules)
        ]
        if seed is not None:
            self.seed = seed
        if replace:
            self.rules = parsed
            self.rng = random.Random(self.seed)
        else:
            self.rules.extend(parsed)

    def clear(self) -> None:
        self.rules = []
        self.injected = []
        self.rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def _fire(self, rule: FaultRule) -> bool:
        if rule.count is not None and rule.fired >= rule.count:
            return False
        if rule.rate < 1.0 and self.rng.random() >= rule.rate:
            return False
        rule.fired += 1
        return True

    def http(self, method: str, path: str) -> list[FaultRule]:
        hits = []
        for rule in self.rules:
            if rule.kind not in HTTP_KINDS or not path.startswith(rule.path_prefix):
                continue
            if rule.method and rule.method.upper() != method:
                continue
            if self._fire(rule):
                hits.append(rule)
        return hits

    def webhook(self, event_type: str) -> list[FaultRule]:
        return [
            r
            for r in self.rules
            if r.kind in WEBHOOK_KINDS
            and (not r.event_type or event_type.startswith(r.event_type))
            and self._fire(r)
        ]

    def settlement(self, report_type: str) -> list[FaultRule]:
        """The settlement rules in scope for this report type, not fired yet: the report decides with
        :meth:`fire` once it knows the rule has a row to touch."""
        return [
            r
            for r in self.rules
            if r.kind in SETTLEMENT_KINDS and (not r.report_type or r.report_type == report_type)
        ]

    def fire(self, rule: FaultRule) -> bool:
        """Whether ``rule`` fires now (its rate and count), counting it when it does."""
        return self._fire(rule)

    def record(self, rule: FaultRule, sim_time: int, **detail: Any) -> InjectedFault:
        item = InjectedFault(
            id=f"inj_{len(self.injected) + 1}",
            rule_id=rule.id,
            kind=rule.kind,
            sim_time=sim_time,
            wall_time=time.time(),
            detail=detail,
        )
        self.injected.append(item)
        return item

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed, "rules": [asdict(r) for r in self.rules]}

    def injected_list(self) -> list[dict[str, Any]]:
        return [asdict(i) for i in self.injected]
