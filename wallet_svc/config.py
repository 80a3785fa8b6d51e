from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from svckit.config import Port, ServiceSettings


class WalletSettings(ServiceSettings):
    """Configuration of wallet_svc; every field can be set as ``WALLET_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="WALLET_", extra="ignore", validate_default=True)

    service_name: str = "wallet"
    database_name: str = "wallet"
    grpc_port: Port = 50053
