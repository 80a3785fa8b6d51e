"""gRPC transport security of one process: mutual TLS as one identity, or plaintext when asked for.

Every gRPC server requires a client certificate signed by the deployment's CA, and every client
presents its own identity's certificate (docs/security.md). A process builds its credentials once
(:func:`security_for` is cached per set of files) and opens every server and channel through them::

    security = security_for(settings)            # ServiceSettings: TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE
    channel = security.aio_channel("ledger:50052")
    server.add_secure_port(addr, security.server_credentials())

``GRPC_INSECURE=true`` turns all of it off (plaintext, no caller authorization) for local debugging
only; it is logged as a warning at start.
"""

from __future__ import annotations

import functools
import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from svckit.logging import get_logger
from svckit.pki import SPIFFE_PREFIX, IdentityFiles, identity_of

log = get_logger(__name__)

_SPIFFE_PREFIX_BYTES = SPIFFE_PREFIX.encode()
TLS_FIELDS = ("tls_ca_file", "tls_cert_file", "tls_key_file")
INSECURE_WARNING = (
    "GRPC_INSECURE is set: gRPC runs in PLAINTEXT with NO caller authentication or authorization; "
    "anyone who reaches a port can move money. Local debugging only."
)


class TlsConfigError(ValueError):
    """The TLS settings are missing or unusable; the message names the variables to set."""


@dataclass(frozen=True)
class GrpcSecurity:
    """Credentials of one process; ``files`` is None in plaintext (``GRPC_INSECURE``) mode."""

    files: IdentityFiles | None

    @property
    def insecure(self) -> bool:
        return self.files is None

    @functools.cached_property
    def identity(self) -> str | None:
        """The identity our own certificate carries (``payment``, ``operator``, …)."""
        if self.files is None:
            return None
        return identity_of(x509.load_pem_x509_certificate(self.files.cert_file.read_bytes()))

    @functools.cached_property
    def _pem(self) -> tuple[bytes, bytes, bytes]:
        assert self.files is not None
        return (
            self.files.ca_file.read_bytes(),
            self.files.cert_file.read_bytes(),
            self.files.key_file.read_bytes(),
        )

    @functools.cached_property
    def _channel_credentials(self) -> grpc.ChannelCredentials:
        ca, cert, key = self._pem
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Serve with our certificate; refuse any client without one signed by a CA in the bundle."""
        ca, cert, key = self._pem
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)

    def _options(self, target: str, options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
        opts = list(options)
        if not any(name == "grpc.lb_policy_name" for name, _ in opts):
            # Every address a name resolves to (or each of a listed few) gets calls in turn, so the
            # replicas of a service share the load instead of the first one taking it all.
            opts.append(("grpc.lb_policy_name", "round_robin"))
        if self.files is not None and target.startswith("ipv4:") and "," in target:
            # A list of replica addresses has no single host name to verify; check each replica's
            # certificate against the first address instead (all replicas share one identity).
            first_host = target.removeprefix("ipv4:").split(",")[0].rpartition(":")[0]
            opts.append(("grpc.ssl_target_name_override", first_host))
        return opts

    def aio_channel(
        self,
        target: str,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
    ) -> grpc.aio.Channel:
        """An asyncio channel to ``target`` (``host:port``, or ``ip:port,ip:port`` for replicas) as this
        identity (plaintext in insecure mode)."""
        target = channel_target(target)
        opts = self._options(target, options)
        if self.files is None:
            return grpc.aio.insecure_channel(target, options=opts, interceptors=interceptors)
        return grpc.aio.secure_channel(
            target, self._channel_credentials, options=opts, interceptors=interceptors
        )

    def channel(self, target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """A blocking channel to ``target`` as this identity (probes, CLIs, benchmarks)."""
        target = channel_target(target)
        opts = self._options(target, options)
        if self.files is None:
            return grpc.insecure_channel(target, options=opts)
        return grpc.secure_channel(target, self._channel_credentials, options=opts)


INSECURE = GrpcSecurity(None)


def channel_target(addr: str) -> str:
    """A gRPC target for ``host:port``, or for several ``ip:port`` replicas separated by commas."""
    parts = [p.strip() for p in addr.split(",") if p.strip()]
    if len(parts) <= 1 or addr.startswith("ipv4:"):
        return addr.strip()
    for part in parts:
        host, _, port = part.rpartition(":")
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(
                f"{addr!r}: several addresses must be IPv4 literals (ip:port,ip:port); "
                "for host names use one name that resolves to every replica"
            ) from None
        if not port.isdigit():
            raise ValueError(f"{addr!r}: {part!r} has no port")
    return "ipv4:" + ",".join(parts)


def identity_files(ca_file: Path, cert_file: Path, key_file: Path) -> GrpcSecurity:
    """Credentials from three files, checked now so that a wrong path fails at start, not on first call."""
    files = IdentityFiles(Path(ca_file), Path(cert_file), Path(key_file))
    return _cached(files.ca_file, files.cert_file, files.key_file)


@functools.lru_cache(maxsize=16)
def _cached(ca_file: Path, cert_file: Path, key_file: Path) -> GrpcSecurity:
    security = GrpcSecurity(IdentityFiles(ca_file, cert_file, key_file))
    try:
        security._pem  # noqa: B018 - read (and keep) the files once, here
        identity = security.identity
    except OSError as exc:
        raise TlsConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise TlsConfigError(f"{cert_file} is not a PEM certificate: {exc}") from None
    if identity is None:
        raise TlsConfigError(f"{cert_file} carries no {SPIFFE_PREFIX}<identity> URI SAN")
    return security


def security_for(settings: Any) -> GrpcSecurity:
    """The process's gRPC security from its settings (any class with the ``tls_*`` and
    ``grpc_insecure`` fields of :class:`~svckit.config.ServiceSettings`)."""
    if settings.grpc_insecure:
        _warn_insecure_once()
        return INSECURE
    prefix = settings.model_config.get("env_prefix", "")
    missing = [name for name in TLS_FIELDS if getattr(settings, name) is None]
    if missing:
        names = ", ".join(f"{prefix}{n.upper()}" if prefix else n.upper() for n in missing)
        shared = " (or the unprefixed TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE)" if prefix else ""
        raise TlsConfigError(
            f"gRPC uses mutual TLS and {names} {'is' if len(missing) == 1 else 'are'} not set{shared}; "
            f"make the files with `python -m svckit.pki init`. For local debugging only, "
            f"GRPC_INSECURE=true runs plaintext."
        )
    return identity_files(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)


def from_environment() -> GrpcSecurity:
    """The identity a calling-only tool (probe, CLI, benchmark client) finds in the unprefixed
    ``TLS_*`` / ``GRPC_INSECURE`` variables; exits 2 naming them when they are missing."""
    from svckit.config import GrpcClientSettings, load_settings

    return security_or_exit(load_settings(GrpcClientSettings))


def security_or_exit(settings: Any) -> GrpcSecurity:
    """:func:`security_for`, or exit 2 with the message (as :func:`svckit.config.load_settings` does)."""
    try:
        return security_for(settings)
    except TlsConfigError as exc:
        print(f"invalid configuration for {type(settings).__name__}:\n  {exc}", file=sys.stderr)
        raise SystemExit(2) from None


@functools.cache
def _warn_insecure_once() -> None:
    log.warning(INSECURE_WARNING)


@functools.lru_cache(maxsize=64)
def _identity_from_san(san: bytes) -> str:
    return san[len(_SPIFFE_PREFIX_BYTES) :].decode()


def caller_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The identity in the calling peer's certificate (its ``spiffe://marketplace-payments/`` URI SAN).

    Read through ``peer_identities()`` (the auth context's SAN property) rather than building the whole
    ``auth_context()`` dict, which copies the PEM certificate on every call."""
    for value in context.peer_identities() or ():
        if value.startswith(_SPIFFE_PREFIX_BYTES):
            return _identity_from_san(value)
    return None
