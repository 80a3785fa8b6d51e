from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from svckit.config import Port, ServiceSettings


class WalletSettings(ServiceSettings):
    """Configuration of wallet_svc; every field can be set as ``WALLET_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="WALLET_", extra="ignore", validate_default=True)

    service_name: str = "wallet"
    database_name: str = "wallet"
    grpc_port: Port = 50053
    coalesce_movements: bool = False
    """Apply concurrent single Credit/Debit calls together as one batch transaction (group commit).
    Opt-in until a hang seen once in a fault-injection test of a failed group is explained (see
    docs/wallet.md); bulk callers (pay-in settlement) use ApplyBatch and do not need it."""
    coalesce_window_seconds: float = Field(default=0.0, ge=0, le=0.01)
    """Extra wait for more calls before a group is sent; 0 = only the calls that arrived meanwhile."""
    coalesce_max_group: int = Field(default=200, ge=1, le=1000)
    """Most calls in one group."""
    coalesce_max_in_flight: int = Field(default=1, ge=1, le=64)
    """Groups being applied at the same time (each holds one database connection)."""
