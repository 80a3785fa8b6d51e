from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from svckit.config import Port, ServiceSettings


class PaymentSettings(ServiceSettings):
    """Configuration of payment_svc; every field can be set as ``PAYMENT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_", extra="ignore", validate_default=True)

    service_name: str = "payment"
    database_name: str = "payments"
    environment: Literal["development", "production"] = "production"
    """``production`` (the default, so a forgotten setting fails safe) refuses to start without a PSP
    webhook secret."""
    grpc_port: Port = 50051
    db_pool_size: int = Field(default=20, ge=2, le=200)
    """Each in-flight CreatePayment holds one connection for its key's lock while it calls the PSP."""

    psp_base_url: str = "http://127.0.0.1:12111"
    psp_api_key: SecretStr = SecretStr("sk_test_local")
    psp_timeout_seconds: float = Field(default=10.0, gt=0, le=80)
    psp_max_network_retries: int = Field(default=2, ge=0, le=5)
    """SDK retries of one PSP call; each reuses the same idempotency key."""
    psp_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """The PSP webhook endpoint's signing secrets (``whsec_...``), comma-separated in the environment:
    HandlePspEvent verifies every event's signature with them itself, whatever its caller checked. Two
    during a rotation (the new one and the old one), one otherwise. Required in production."""
    psp_webhook_tolerance_seconds: int = Field(default=3 * 86_400, ge=1, le=7 * 86_400)
    """How old (or how far ahead) a signature may be. Wider than the gateway's 5 minutes on purpose: the
    gateway guards freshness, the PSP retries for up to three days, and the event id makes a replay a
    no-op, so the service only has to know the event came from the PSP."""

    @field_validator("psp_webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _secrets_fit_the_environment(self) -> PaymentSettings:
        for secret in self.psp_webhook_secrets:
            if not secret.get_secret_value().startswith("whsec_"):
                raise ValueError("psp_webhook_secrets must be Stripe signing secrets starting with 'whsec_'")
        if self.environment == "production" and not self.psp_webhook_secrets:
            raise ValueError(
                "psp_webhook_secrets is required in production (set PAYMENT_PSP_WEBHOOK_SECRETS, or "
                "PAYMENT_ENVIRONMENT=development to run without webhooks)"
            )
        return self

    return_url: str = "http://127.0.0.1:8000/v1/payments/return"
    """Where the PSP sends a buyer back after 3-D Secure in direct mode."""

    ledger_addr: str = "127.0.0.1:50052"
    wallet_addr: str = "127.0.0.1:50053"
    settlement_deadline_seconds: float = Field(default=10.0, gt=0, le=120)
    """Deadline of each wallet or ledger call made while settling an order."""
    events_namespace: str = "payments"
    """Hash tag of this deployment's streams (``{payments}:events`` …); one per payment database."""
    run_settlement: bool = True
    """Run the outbox relay and the settlement consumer in this process (one per replica is fine)."""

    commission_rate_bps: int = Field(default=1000, ge=0, le=10_000)
    """Platform commission in basis points of each order (1000 = 10 %)."""
    commission_overrides_bps: dict[str, int] = Field(default_factory=dict)
    """Per-seller commission, e.g. ``{"seller_42": 500}`` (JSON in the environment)."""

    # The only place the order limits are configured: the gateway checks the body's shape and amount
    # format, and passes this service's TOO_MANY_ORDERS / AMOUNT_TOO_LARGE on as its 400.
    max_orders_per_checkout: int = Field(default=50, ge=1, le=1000)
    max_order_amount_minor: int = Field(default=100_000_000, ge=1)

    risk_review_above_minor: int = Field(default=500_000, ge=0)
    risk_decline_above_minor: int = Field(default=5_000_000, ge=0)
    risk_velocity_window_seconds: int = Field(default=3600, ge=1)
    risk_velocity_max_checkouts: int = Field(default=20, ge=1)
    risk_velocity_max_amount_minor: int = Field(default=2_000_000, ge=0)
    risk_blocked_buyers: frozenset[str] = frozenset()
    risk_blocked_sellers: frozenset[str] = frozenset()

    janitor_interval_seconds: float = Field(default=10.0, gt=0)
    janitor_first_check_seconds: float = Field(default=30.0, ge=0)
    """How long an order may sit in an uncertain state before the janitor asks the PSP; also how long
    a pending refund the PSP never answered waits before the janitor asks again (and between tries)."""
    janitor_max_backoff_seconds: float = Field(default=3600.0, gt=0)
    order_deadline_seconds: float = Field(default=86_400.0, gt=0)
    """An order still uncertain this long after creation raises an alert (error log + metric)."""
    janitor_batch_size: int = Field(default=100, ge=1, le=10_000)
    janitor_lease_seconds: float = Field(default=120.0, gt=0)
    """How long a janitor's claim on the orders of its pass keeps another replica's janitor off them
    (each order then gets its real next check); longer than a pass takes."""

    payout_claim_lease_seconds: float = Field(default=120.0, gt=0, le=3600)
    """How long a worker holds a pay-out (or a run) it drives; a crashed worker's lapses after this."""
    payout_retry_seconds: float = Field(default=30.0, ge=0)
    """When the janitor retries a pay-out step whose outcome was unknown (same keys)."""
    payout_check_seconds: float = Field(default=6 * 3600.0, ge=0)
    """How long after sending the janitor first asks the PSP about a pay-out (doubling after)."""
    payout_deadline_seconds: float = Field(default=5 * 86_400.0, gt=0)
    """A pay-out still without a final answer this long after creation raises an alert (the PSP may
    take up to 5 business days to fail one)."""
    payout_concurrency: int = Field(default=16, ge=1, le=256)
    """Calls a run has in flight at once per step: sellers planned, wallet reservations, PSP calls."""
    payout_chunk_size: int = Field(default=250, ge=1, le=1000)
    """Sellers a run takes through its steps together: one insert of their pay-outs, one ledger
    ``PostTransactions``, one transaction recording each step for all of them."""
    payout_scheduler_enabled: bool = False
    """Start each period's run on the sellers' anchor day by itself (payment_svc/payouts/scheduler.py).
    Off unless set, so tests and one-off processes never start runs; every replica may enable it."""
    payout_scheduler_interval_seconds: float = Field(default=60.0, gt=0)
    """How often the scheduler looks for a period whose anchor day has come."""
    payout_inbox_batch_size: int = Field(default=500, ge=1, le=1000)
    """PSP pay-out facts the inbox worker applies together: one transaction, one wallet ``ApplyBatch``,
    one ledger ``PostTransactions``."""
    payout_inbox_linger_seconds: float = Field(default=1.0, ge=0, le=5)
    """How long the inbox worker lets facts gather after it is woken, so the PSP's burst of events (a
    bank day's payouts, delivered side by side) is applied in large groups rather than one by one."""
    payout_inbox_poll_seconds: float = Field(default=1.0, gt=0)
    """How often the inbox worker looks for facts without being woken (another replica recorded them,
    or a retry came due); a fact recorded by this process wakes it at once."""
    payout_inbox_retry_seconds: float = Field(default=5.0, gt=0)
    """When a fact whose apply failed (the wallet or ledger unavailable, a refusal) is tried again."""
    payout_inbox_retention_days: int = Field(default=30, ge=4)
    """Applied facts are deleted this long after they were applied (at least 4 days: longer than the
    PSP redelivers an event, 3 days for Stripe, so a redelivery still finds its fact). A redelivery
    after that is recorded again and changes nothing (the pay-out's state is final). Facts kept for an
    operator (unknown pay-out, mismatch) and unapplied ones are never deleted."""
    payout_inbox_alert_seconds: float = Field(default=300.0, gt=0)
    """A fact still unapplied this long after it arrived raises an alert (error log and metric)."""
    psp_account_max_age_seconds: float = Field(default=35 * 86_400.0, ge=0)
    """A run reads a seller's PSP account (can it receive payouts?) only when the last read or
    ``account.updated`` event is older than this; 0 reads it every run. The PSP sends
    ``account.updated`` on every change, so the stored word is current and the read is a safety net
    for a lost event; longer than a monthly period, so a monthly run does not read every account
    again. A stale "enabled" costs no money: the PSP refuses the transfer and the pay-out fails."""
