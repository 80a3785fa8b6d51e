from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from svckit.config import Port, ServiceSettings


class PaymentSettings(ServiceSettings):
    """Configuration of payment_svc; every field can be set as ``PAYMENT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PAYMENT_", extra="ignore", validate_default=True)

    service_name: str = "payment"
    database_name: str = "payments"
    grpc_port: Port = 50051
