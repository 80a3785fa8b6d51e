"""Simulator settings: defaults, a TOML or JSON file, then environment variables, then CLI flags."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

DAY = 86_400


@dataclass
class SimConfig:
    """Every time below is in simulated seconds, so ``POST /_sim/clock/advance`` makes it happen."""

    seed: int = 0
    fee_percent: Decimal = Decimal("2.9")
    """Variable part of the processing fee on each charge's balance transaction."""
    fee_fixed_minor: int = 30
    """Fixed part, in minor units of the charge currency."""
    dispute_fee_minor: int = 1500
    available_after_seconds: int = 2 * DAY
    """Charge funds move from pending to available after this long (cards 0077/0278: at once)."""
    payout_in_transit_after_seconds: int = 3600
    payout_arrival_seconds: int = DAY
    refund_settle_seconds: int = DAY
    """When the refund test cards' pending refund succeeds, or their succeeded refund fails."""
    three_ds_timeout_seconds: int = 3600
    """A PaymentIntent left in requires_action this long fails authentication."""
    checkout_expires_seconds: int = DAY
    webhook_secret: str | None = None
    """``whsec_…`` used for endpoints configured without their own; random from the seed if unset."""
    webhook_endpoints: list[dict[str, Any]] = field(default_factory=list)
    """``{"url": …, "secret": optional, "enabled_events": ["*"]}``."""
    webhook_retry_base_seconds: int = 60
    webhook_max_attempts: int = 4
    webhook_timeout_seconds: float = 5.0
    webhook_concurrency: int = 1
    """Deliveries to one endpoint in flight at once. 1 (the default) sends them one after the other, in
    order; above 1 (as Stripe does, which promises no order) they overlap, unless a fault rule is set."""
    public_url: str | None = None
    """Base URL put in hosted-page and file URLs; default: taken from each request's Host header."""
    auto_create_accounts: bool = True
    """Transfers to an unknown ``acct_…`` create it instead of failing, to ease integration tests."""
    platform_bank_account: str = "000123456789"
    faults: list[dict[str, Any]] = field(default_factory=list)
    fault_seed: int | None = None
    state_file: str | None = None
    """``--state``/``PSP_SIM_STATE``: SQLite file the state is kept in across restarts; unset: memory only."""
    admin_key: str | None = None
    """``PSP_SIM_ADMIN_KEY``: when set, every ``/_sim/*`` admin call needs ``Authorization: Bearer
    <key>``; when unset, only loopback clients may make them."""

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> SimConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        cfg = cls(**data)
        cfg.fee_percent = Decimal(str(cfg.fee_percent))
        return cfg


def load_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        return json.loads(text)
    return tomllib.loads(text)


def load_config(
    path: str | None = None,
    seed: int | None = None,
    env: dict[str, str] | None = None,
    state: str | None = None,
) -> SimConfig:
    """Build the effective config; ``PSP_SIM_FAULTS_FILE`` may hold only ``faults``/``fault_seed``."""
    env = dict(os.environ if env is None else env)
    data: dict[str, Any] = {}
    if path:
        data.update(load_file(path))
    faults_file = env.get("PSP_SIM_FAULTS_FILE")
    if faults_file:
        fdata = load_file(faults_file)
        data["faults"] = list(data.get("faults", [])) + list(fdata.get("faults", []))
        if "seed" in fdata:
            data["fault_seed"] = fdata["seed"]
    if env.get("PSP_SIM_STATE"):
        data["state_file"] = env["PSP_SIM_STATE"]
    if env.get("PSP_SIM_ADMIN_KEY"):
        data["admin_key"] = env["PSP_SIM_ADMIN_KEY"]
    if env.get("PSP_SIM_WEBHOOK_SECRET"):
        data["webhook_secret"] = env["PSP_SIM_WEBHOOK_SECRET"]
    if env.get("PSP_SIM_WEBHOOK_URL"):
        eps = list(data.get("webhook_endpoints", []))
        events = [e.strip() for e in env.get("PSP_SIM_WEBHOOK_EVENTS", "*").split(",") if e.strip()]
        eps.extend(
            {"url": u.strip(), "enabled_events": events or ["*"]}
            for u in env["PSP_SIM_WEBHOOK_URL"].split(",")
            if u.strip()
        )
        data["webhook_endpoints"] = eps
    if seed is not None:
        data["seed"] = seed
    if state is not None:
        data["state_file"] = state
    return SimConfig.from_mapping(data)
