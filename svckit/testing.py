"""Real infrastructure for tests and benchmarks: embedded (or external) PostgreSQL and Redis,
fresh databases per run, and services started in-process on free ports, all speaking mutual TLS with
certificates from a CA made for the run (every test channel is opened as an identity: :meth:`Infra.channel`).

Set ``DATABASE_URL`` and ``REDIS_URL`` to use external servers instead of the embedded ones.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from sqlalchemy.engine import make_url

from svckit import pki
from svckit.config import ServiceSettings
from svckit.db import drop_database
from svckit.devstack.infra import EmbeddedPostgres, EmbeddedValkey, free_port, remove_tree
from svckit.grpc_errors import error_info
from svckit.tls import GrpcSecurity, identity_files

S = TypeVar("S", bound=ServiceSettings)


def refusal_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo our service attached to a refused call; raises if the call failed without one
    (a transport fault, or an error raised outside the servicers), so a test fails right here."""
    info = error_info(error)
    if info is None:
        raise AssertionError(f"no ErrorInfo on the failed call: {error!r}")
    return info


@dataclass
class Infra:
    """PostgreSQL and Redis for one test session, a unique prefix for its databases, and a PKI (a CA and
    every identity's certificate, made for this session in its own folder, so xdist workers never share one)."""

    database_url: str
    redis_url: str
    pki_dir: Path | None = None
    """Made (in the temporary folder) when not given."""
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    _pg: EmbeddedPostgres | None = None
    _valkey: EmbeddedValkey | None = None
    _tmp: Path | None = None
    _databases: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pki_dir is None:
            if self._tmp is None:
                self._tmp = Path(tempfile.mkdtemp(prefix="mpay-test-"))
            self.pki_dir = self._tmp / "pki"
            pki.init(self.pki_dir)

    @classmethod
    def start(cls) -> Infra:
        db_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
        tmp = Path(tempfile.mkdtemp(prefix="mpay-test-"))
        pg = valkey = None
        if not db_url:
            pg = EmbeddedPostgres(tmp / "pg", port=free_port(), durable=False).start()
            db_url = pg.url
        if not redis_url:
            valkey = EmbeddedValkey(tmp / "valkey", port=free_port(), persist=False).start()
            redis_url = valkey.url
        return cls(database_url=db_url, redis_url=redis_url, _pg=pg, _valkey=valkey, _tmp=tmp)

    @property
    def _pki(self) -> Path:
        assert self.pki_dir is not None  # set by __post_init__
        return self.pki_dir

    def security(self, identity: str = "payment") -> GrpcSecurity:
        """Credentials of ``identity`` (a service's name or ``operator``) from this session's CA."""
        files = pki.files(self._pki, identity)
        return identity_files(files.ca_file, files.cert_file, files.key_file)

    def channel(self, address: str, identity: str = "payment") -> grpc.aio.Channel:
        """An asyncio channel to ``address`` as ``identity``: the one way tests and benchmarks call a service.

        ``payment`` by default: it may move money in the ledger and wallets and read everything there."""
        return self.security(identity).aio_channel(address)

    def sync_channel(self, address: str, identity: str = "payment") -> grpc.Channel:
        """A blocking channel to ``address`` as ``identity`` (for clients off the event loop)."""
        return self.security(identity).channel(address)

    def tls_env(self, identity: str) -> dict[str, str]:
        """The environment that gives a child process ``identity``'s certificate (unprefixed variables)."""
        files = pki.files(self._pki, identity)
        return {
            "TLS_CA_FILE": str(files.ca_file),
            "TLS_CERT_FILE": str(files.cert_file),
            "TLS_KEY_FILE": str(files.key_file),
        }

    def settings(self, cls: type[S], db_suffix: str | None = None, **overrides: Any) -> S:
        """Settings for a service on this infra: its own fresh database, a free gRPC port.

        ``db_suffix`` gives a second instance of a service a database of its own (``<prefix>_<suffix>``).
        """
        name = f"{self.prefix}_{db_suffix or cls.model_fields['database_name'].default}"
        if name not in self._databases:
            self._databases.append(name)
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "database_name": name,
            "grpc_port": 0,
            "metrics_port": 0,
            "shutdown_grace_seconds": 0.5,
            "log_format": "console",
        }
        files = pki.files(self._pki, cls.model_fields["service_name"].default)
        values.update(tls_ca_file=files.ca_file, tls_cert_file=files.cert_file, tls_key_file=files.key_file)
        values.update(overrides)
        return cls(**values)

    def database_url_for(self, name: str) -> str:
        return make_url(self.database_url).set(database=name).render_as_string(hide_password=False)

    def stop(self) -> None:
        for name in self._databases:
            with contextlib.suppress(Exception):
                drop_database(self.database_url_for(name))
        if self._pg is not None:
            self._pg.stop()
        if self._valkey is not None:
            self._valkey.stop()
        if self._tmp is not None:
            remove_tree(self._tmp)
