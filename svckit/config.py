"""Typed, fail-fast configuration shared by every service.

Each service subclasses :class:`ServiceSettings` with its own ``env_prefix`` (``LEDGER_``, …). Shared
infrastructure variables (``DATABASE_URL``, ``REDIS_URL``, ``LOG_LEVEL``, ``LOG_FORMAT``, the gRPC
``TLS_CA_FILE``, ``TLS_CERT_FILE``, ``TLS_KEY_FILE`` and ``GRPC_INSECURE``) are read unprefixed, and a
prefixed variant (``LEDGER_DATABASE_URL``) wins when set.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL, make_url

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


Port = Annotated[int, Field(ge=0, le=65535)]
"""A TCP port; 0 means pick a free one (gRPC) or disabled (metrics)."""

SHARED_FIELDS = frozenset({
    "database_url", "database_hosts", "redis_url", "redis_cluster", "log_level", "log_format",
    "tls_ca_file", "tls_cert_file", "tls_key_file", "grpc_insecure",
})  # fmt: skip


class _SharedEnvSource(EnvSettingsSource):
    """Unprefixed variables, for the shared infrastructure fields only (lower priority than prefixed)."""

    def __call__(self) -> dict[str, object]:
        return {k: v for k, v in super().__call__().items() if k in SHARED_FIELDS}


class SharedEnvSettings(BaseSettings):
    """Settings whose shared infrastructure fields also read the unprefixed variables."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _SharedEnvSource(settings_cls, env_prefix=""),
            file_secret_settings,
        )


class ServiceSettings(SharedEnvSettings):
    """Settings every gRPC service has. Subclasses set ``service_name``, ``env_prefix`` and defaults."""

    model_config = SettingsConfigDict(extra="ignore", validate_default=True)

    service_name: str = "service"
    database_name: str = "postgres"
    """Database this service owns on the server named by ``database_url`` (replaces the URL's database part)."""

    database_url: str = DEFAULT_DATABASE_URL
    """PostgreSQL server URL; only its host, port and credentials are used. It may list several servers
    in libpq's form (``postgresql://user@/db?host=h1,h2&port=p1,p2&target_session_attrs=read-write``),
    or ``DATABASE_HOSTS`` builds that form from it."""
    database_hosts: str = ""
    """``host:port,host:port``: a primary and its standbys. Set, it replaces the host and port of
    ``database_url`` and every connection goes to whichever of them accepts writes
    (``target_session_attrs=read-write``), so after a failover the services reconnect to the promoted
    standby by themselves. Empty: ``database_url`` as given."""
    database_read_url: str = ""
    """A server for reads that decide no money (listings), in ``database_url``'s form: a hot standby
    (or several hosts with ``target_session_attrs=prefer-standby``). Its answers may lag the primary by
    the replication delay, so nothing that checks a balance or a state before a change reads there.
    Services that route reads to it: the wallet's ListMovements. Empty: every read goes to
    ``database_url``."""
    redis_url: str = DEFAULT_REDIS_URL
    redis_cluster: bool = False
    """``redis_url`` names one node of a Redis (Valkey) Cluster: clients follow its slot map and
    fail-overs (``svckit.redis_client``). Every key the services use is hash-tagged, so each multi-key
    command and script stays within one slot."""
    grpc_host: str = "127.0.0.1"
    grpc_port: Port = 0
    metrics_port: Port = 0
    """Prometheus /metrics port; 0 disables the endpoint."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    db_pool_size: int = Field(default=10, ge=1, le=200)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=300)
    idempotency_retention_hours: int = Field(default=48, ge=24, le=24 * 90)
    """How long idempotency keys are kept before the purge; at least 24 h, as clients are promised."""
    idempotency_purge_interval_seconds: int = Field(default=3600, ge=1)
    migrate_on_start: bool = True

    # -- gRPC mutual TLS (svckit/tls.py; docs/security.md) --------------------------------------
    tls_ca_file: Path | None = None
    """PEM bundle of the CA(s) whose certificates this process trusts (two during a CA rotation)."""
    tls_cert_file: Path | None = None
    """This process's identity certificate: served to callers and presented to the services it calls."""
    tls_key_file: Path | None = None
    grpc_insecure: bool = False
    """Plaintext gRPC with no caller authorization, for local debugging only (logged as a warning).
    Without it, a process that serves or calls gRPC refuses to start unless the three files are set."""

    @field_validator("database_url", "redis_url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if "://" not in value:
            # The value is not repeated: a server URL may carry a password.
            raise ValueError(f"must be a URL such as {DEFAULT_DATABASE_URL!r}")
        return value

    @field_validator("database_read_url")
    @classmethod
    def _read_url(cls, value: str) -> str:
        return cls._url_has_scheme(value) if value else value

    @field_validator("database_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        if value:
            host_ports(value)  # refused here, so the message names the variable
        return value

    @model_validator(mode="after")
    def _multi_host(self) -> Self:
        if self.database_hosts:
            self.database_url = multi_host_url(self.database_url, self.database_hosts)
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL of this service's own database (psycopg 3 driver)."""
        url = make_url(self.database_url).set(drivername="postgresql+psycopg", database=self.database_name)
        return url.render_as_string(hide_password=False)

    def sqlalchemy_read_url(self) -> str | None:
        """The same database on ``database_read_url``'s server; None when reads all go to the primary."""
        if not self.database_read_url:
            return None
        url = make_url(self.database_read_url).set(
            drivername="postgresql+psycopg", database=self.database_name
        )
        return url.render_as_string(hide_password=False)


def host_ports(hosts: str) -> list[tuple[str, str]]:
    """``h1:p1,h2:p2`` as pairs; ValueError for anything else."""
    pairs = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be host:port[,host:port...], got {hosts!r}")
        pairs.append((host, port))
    return pairs


def multi_host_url(url: str, hosts: str) -> str:
    """``url`` with its server replaced by ``hosts`` (``h1:p1,h2:p2``), to the writable one of them.

    libpq's own multi-host form (``host=h1,h2&port=p1,p2`` in the query), which both psycopg (plain
    connections and pools) and SQLAlchemy's psycopg dialect read: one URL serves every client.
    """
    pairs = host_ports(hosts)
    base = make_url(url)
    query = {k: v for k, v in base.query.items() if k not in ("host", "port")}
    query["host"] = ",".join(h for h, _ in pairs)
    query["port"] = ",".join(p for _, p in pairs)
    query.setdefault("target_session_attrs", "read-write")
    bare = URL.create(base.drivername, base.username, base.password, None, None, base.database, query)
    return bare.render_as_string(hide_password=False)


class GrpcClientSettings(SharedEnvSettings):
    """The gRPC identity of a tool that only calls (health probe, CLIs): the unprefixed ``TLS_*`` and
    ``GRPC_INSECURE`` variables, as a service reads them."""

    model_config = SettingsConfigDict(extra="ignore")

    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    grpc_insecure: bool = False


S = TypeVar("S", bound=BaseSettings)


def _shown_input(cls: type[BaseSettings], err: Any) -> str:
    """What a refused setting was given, unless that may be a secret: a check over several settings
    (no field named) is given all of them, a secret-typed field's value is its secret, and a URL may
    hold a password."""
    loc = err["loc"]
    field = cls.model_fields.get(str(loc[0])) if loc else None
    # A server URL (``*_url``) may carry a password in its user part.
    if field is None or "Secret" in repr(field.annotation) or str(loc[0]).endswith("_url"):
        return ""
    return f" (got {err.get('input')!r})"


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings or exit with a readable list of what is wrong (exit code 2)."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = [f"invalid configuration for {cls.__name__}:"]
        prefix = cls.model_config.get("env_prefix", "")
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {prefix}{field.upper()}: {err['msg']}{_shown_input(cls, err)}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
