from __future__ import annotations

from pydantic import Field
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
