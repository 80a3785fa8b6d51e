from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from svckit.config import Port, ServiceSettings


class ReconSettings(ServiceSettings):
    """Configuration of recon_svc; every field can be set as ``RECON_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RECON_", extra="ignore", validate_default=True)

    service_name: str = "recon"
    database_name: str = "recon"
    grpc_port: Port = 50054
    ledger_addr: str = "127.0.0.1:50052"
    wallet_addr: str = "127.0.0.1:50053"
    upstream_deadline_seconds: float = Field(default=30.0, gt=0, le=600)
    """Deadline of each call to the ledger or wallet service while checking the books."""

    # -- settlement reconciliation (issue 15) ---------------------------------------------------------
    payment_addr: str = "127.0.0.1:50051"
    psp_base_url: str = "http://127.0.0.1:12111"
    """Where the PSP's Reporting API is (the simulator in development)."""
    psp_api_key: SecretStr = SecretStr("sk_test_local")
    settlement_fee_tolerance_minor: int = Field(default=2, ge=0)
    """A fee off by at most this many minor units is auto-fixable (posted); beyond, a person decides. Two
    units absorb the half-up rounding of a percentage on either side and a one-unit rate change."""
    settlement_expected_fee_bps: int | None = Field(default=290, ge=0, le=10_000)
    """The PSP's processing fee in basis points of the charge (Stripe standard: 2.9 %); None trusts the file."""
    settlement_expected_fee_fixed_minor: int = Field(default=30, ge=0)
    settlement_report_poll_seconds: float = Field(default=2.0, gt=0)
    settlement_report_poll_attempts: int = Field(default=30, ge=1)
    """A report run still pending after these polls fails the fetch, and says so."""
    settlement_auto_fix: bool = True
    """Run auto-fixes (the payment service re-checks an order the PSP charged); false proposes them only."""
    settlement_workers: int = Field(default=2, ge=1, le=16)
    """Processes for the second pass (match, classify, book) of a large file; set it to the cores recon may use."""
    settlement_workers_min_rows: int = Field(default=50_000, ge=0)
    """A file with fewer rows runs in the service's own process: a worker's start costs more than it saves."""

    # -- the nightly run (recon_svc/settlement/nightly.py) ------------------------------------------------
    nightly_at: dt.time | None = None
    """Local time (``HH:MM``) at which the previous day's report is fetched and reconciled; unset = no nightly
    run (the default, and in tests)."""
    timezone: str = "UTC"
    """IANA time zone of ``nightly_at`` (``Europe/Berlin``)."""
    nightly_catch_up_days: int = Field(default=3, ge=1, le=31)
    """After downtime, the last this many days not reconciled yet are run on start (yesterday included)."""
    nightly_account: str = Field(default="platform", min_length=1)
    """The PSP account the nightly report is for: one day per account is run once, whatever the replicas."""
    nightly_tick_seconds: float = Field(default=300.0, gt=0)
    """How often the scheduler looks for a due day."""
    nightly_retry_seconds: float = Field(default=300.0, gt=0)
    """A failed day is tried again after this long, doubled at each further failure..."""
    nightly_retry_max_seconds: float = Field(default=21600.0, gt=0)
    """... up to this long: a PSP without the day's data yet is asked a few times an hour, then every 6 h."""
    nightly_lease_seconds: float = Field(default=3600.0, gt=0)
    """A day claimed by a replica that died is free again after this long."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
        return value
