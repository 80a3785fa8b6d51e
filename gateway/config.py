from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from svckit.config import Port, ServiceSettings
from svckit.tls import channel_target

API_KEY_RE = re.compile(r"^mpk_[A-Za-z0-9_-]{43}$")
"""Format of an API key: ``mpk_`` and 32 random bytes, URL-safe base64 without padding."""


class GatewaySettings(ServiceSettings):
    """Configuration of the gateway; every field can be set as ``GATEWAY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", validate_default=True)

    service_name: str = "gateway"
    database_name: str = "gateway"
    """The gateway's own small database (API keys); it reads no other service's tables."""
    environment: Literal["development", "production"] = "production"
    """``production`` (the default, so a forgotten setting fails safe) refuses to start without a webhook
    secret and refuses a development API key."""
    http_host: str = "127.0.0.1"
    http_port: Port = 8000
    http_tls_cert_file: Path | None = None
    """Serve HTTPS with this PEM certificate (chain) and ``http_tls_key_file``; plain HTTP when unset
    (behind a TLS-terminating proxy, see docs/security.md). Not the ``tls_*`` files: those are the
    gateway's gRPC client identity, issued by the internal CA."""
    http_tls_key_file: Path | None = None
    payment_addr: str = "127.0.0.1:50051"
    ledger_addr: str = "127.0.0.1:50052"
    wallet_addr: str = "127.0.0.1:50053"
    recon_addr: str = "127.0.0.1:50054"
    """Each ``*_addr`` is ``host:port``, or ``ip:port,ip:port`` for replicas called round-robin."""

    @field_validator("payment_addr", "ledger_addr", "wallet_addr", "recon_addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        channel_target(value)  # refuses a bad list at start-up, naming the variable
        return value

    upstream_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Deadline of each gRPC call the gateway makes."""
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Requests with a larger body are refused with 413 before they are parsed."""
    db_pool_size: int = Field(default=5, ge=1, le=200)
    settlement_upload_max_bytes: int = Field(default=4_000_000, ge=1024, le=4_000_000)
    """Body limit of ``POST /v1/admin/reconciliation/runs`` (a settlement CSV upload) instead of
    ``max_body_bytes``. At most 4,000,000: the file travels on to recon in one gRPC message, whose default
    limit is 4 MiB; a larger file goes through the recon CLI's ``--file``."""
    settlement_run_timeout_seconds: float = Field(default=120.0, gt=0, le=600)
    """Deadline of a settlement run started through the gateway: it answers when the run is done (a day's
    report is fetched from the PSP, matched and booked first)."""

    # -- authentication -------------------------------------------------------------------------
    api_key_cache_ttl_seconds: float = Field(default=30.0, ge=0, le=3600)
    """How long a successful key look-up is reused in-process; a revocation takes effect within it.
    0 disables the cache."""
    api_key_cache_max_entries: int = Field(default=10_000, ge=1)
    dev_api_key: SecretStr | None = None
    """Development only: a key upserted at start-up with scopes payments+admin (``make run`` sets it)."""

    # -- rate limit -----------------------------------------------------------------------------
    max_inflight_writes: int = Field(default=32, ge=1, le=10_000)
    """POSTs (payments, refunds, reviews) admitted at once by this gateway process; beyond that a
    request waits up to ``admission_wait_seconds`` and is then refused 503 ``OVERLOADED`` with
    ``Retry-After``, so an overload fails fast instead of queueing without bound."""
    admission_wait_seconds: float = Field(default=0.5, ge=0, le=30)
    rate_limit_requests: int = Field(default=100, ge=1, le=1_000_000)
    rate_limit_window_seconds: float = Field(default=1.0, gt=0, le=3600)
    """Each API key may make ``rate_limit_requests`` requests per window (GCRA: a burst of the whole
    budget is allowed, then one request every ``window / requests``)."""
    auth_failure_limit: int = Field(default=20, ge=1, le=1_000_000)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0, le=86_400)
    """Each client address may fail authentication ``auth_failure_limit`` times per window (same GCRA as
    above); beyond that its requests are refused 429 ``RATE_LIMITED`` with ``Retry-After`` before any
    key is looked at. Successful requests are not counted."""
    forwarded_allow_ips: str | None = None
    """Behind a reverse proxy: the proxy addresses (comma-separated, ``*`` for any) whose
    ``X-Forwarded-For`` names the client, which the failed-authentication limit counts by. Unset: the
    client is the connection's peer address and forwarding headers are ignored."""
    rate_limit_fail_open: bool = True
    """When Redis cannot be reached, let requests through (logged and counted) rather than refuse them."""
    rate_limit_redis_timeout_seconds: float = Field(default=0.25, gt=0, le=10)

    # -- webhooks -------------------------------------------------------------------------------
    stripe_webhook_secret: SecretStr | None = None
    """The endpoint's signing secret (``whsec_...``). Required in production."""
    webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    """Signatures older than this, or dated further ahead than this, are refused (Stripe's default; 0
    would disable the check, so not allowed)."""
    webhook_upstream_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    """Deadline of the HandlePspEvent call; the PSP gives up on slow endpoints and retries."""

    # -- buyer pages ----------------------------------------------------------------------------
    status_page_secret: SecretStr | None = Field(default=None, min_length=32)
    """Key of the HMAC that signs the buyer's status-page links (``/v1/checkouts/<id>/status?token=``),
    at least 32 characters. Unset: a random key per process, so links stop working when the gateway
    restarts and differ between replicas (logged at start-up); set it wherever buyers keep links."""
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/?#\s]+/?$")
    """The scheme and host buyers reach the gateway at (``https://pay.example.com``), for the status-page
    links the gateway hands out; unset: the host the request came to."""
    status_page_refresh_seconds: int = Field(default=3, ge=1, le=300)
    """How often the status page reloads itself while an order is not final."""

    # -- operator console -----------------------------------------------------------------------
    console_session_ttl_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)
    """How long a console session lasts after sign-in (an absolute limit, not an idle timeout)."""

    @model_validator(mode="after")
    def _https_files_come_in_pairs(self) -> GatewaySettings:
        if (self.http_tls_cert_file is None) != (self.http_tls_key_file is None):
            raise ValueError("set both GATEWAY_HTTP_TLS_CERT_FILE and GATEWAY_HTTP_TLS_KEY_FILE, or neither")
        for path in (self.http_tls_cert_file, self.http_tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"HTTPS file {path} does not exist")
        return self

    @model_validator(mode="after")
    def _secrets_fit_the_environment(self) -> GatewaySettings:
        secret = self.stripe_webhook_secret.get_secret_value() if self.stripe_webhook_secret else ""
        if secret and not secret.startswith("whsec_"):
            raise ValueError("stripe_webhook_secret must be a Stripe signing secret starting with 'whsec_'")
        if self.environment == "production" and not secret:
            raise ValueError(
                "stripe_webhook_secret is required in production (set GATEWAY_STRIPE_WEBHOOK_SECRET, "
                "or GATEWAY_ENVIRONMENT=development to run without webhooks)"
            )
        if self.dev_api_key is not None:
            if self.environment != "development":
                raise ValueError("dev_api_key is only allowed with GATEWAY_ENVIRONMENT=development")
            if not API_KEY_RE.match(self.dev_api_key.get_secret_value()):
                raise ValueError("dev_api_key must look like mpk_<43 URL-safe characters>")
        return self
