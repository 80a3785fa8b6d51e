from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from svckit.config import Port, ServiceSettings


class GatewaySettings(ServiceSettings):
    """Configuration of the gateway; every field can be set as ``GATEWAY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", validate_default=True)

    service_name: str = "gateway"
    http_host: str = "127.0.0.1"
    http_port: Port = 8000
    payment_addr: str = "127.0.0.1:50051"
    ledger_addr: str = "127.0.0.1:50052"
    wallet_addr: str = "127.0.0.1:50053"
    recon_addr: str = "127.0.0.1:50054"
    upstream_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    """Deadline of each gRPC call the gateway makes."""
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    """Requests with a larger body are refused with 413 before they are parsed."""
