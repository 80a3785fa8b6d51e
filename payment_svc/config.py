from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from svckit.config import Port, ServiceSettings


class PaymentSettings(ServiceSettings):
    """Configuration of payment_svc; every field can be set as ``PAYMENT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_", extra="ignore", validate_default=True)

    service_name: str = "payment"
    database_name: str = "payments"
    grpc_port: Port = 50051
    db_pool_size: int = Field(default=20, ge=2, le=200)
    """Each in-flight CreatePayment holds one connection for its key's lock while it calls the PSP."""

    psp_base_url: str = "http://127.0.0.1:12111"
    psp_api_key: SecretStr = SecretStr("sk_test_local")
    psp_timeout_seconds: float = Field(default=10.0, gt=0, le=80)
    psp_max_network_retries: int = Field(default=2, ge=0, le=5)
    """SDK retries of one PSP call; each reuses the same idempotency key."""
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
    """How long an order may sit in an uncertain state before the janitor asks the PSP."""
    janitor_max_backoff_seconds: float = Field(default=3600.0, gt=0)
    order_deadline_seconds: float = Field(default=86_400.0, gt=0)
    """An order still uncertain this long after creation raises an alert (error log + metric)."""
    janitor_batch_size: int = Field(default=100, ge=1, le=10_000)
