from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from svckit.config import Port, ServiceSettings


class ReconSettings(ServiceSettings):
    """Configuration of recon_svc; every field can be set as ``RECON_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="RECON_", extra="ignore", validate_default=True)

    service_name: str = "recon"
    database_name: str = "recon"
    grpc_port: Port = 50054
