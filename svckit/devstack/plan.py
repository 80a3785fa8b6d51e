"""What the development stack runs: each child process's plan (module, port, environment), the
development secrets kept in the data folder, and the stack's transport security (``DevTls``).

``plan_children`` reads the same port variables the services do, so `make run` and a service started
by hand agree; nothing here starts a process (that is :mod:`svckit.devstack.supervisor`).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import ssl
import subprocess
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from svckit import pki
from svckit.devstack.infra import free_port
from svckit.tls import INSECURE, GrpcSecurity, identity_files


@dataclass
class Child:
    name: str
    module: str
    port: int
    kind: str  # "grpc", "http" or "tcp"
    ready_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    https: bool = False
    proc: subprocess.Popen | None = None
    tail: deque = field(default_factory=lambda: deque(maxlen=30))
    color: str = "white"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.https else 'http'}://{self.address}"


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SystemExit(f"{name} must be a TCP port number, got {value!r}")
    return int(value)


def _env_count(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 16:
        raise SystemExit(f"{name} must be a number of processes from 1 to 16, got {value!r}")
    return int(value)


def _kept_secret(data_dir: Path, env: str, name: str, make: Callable[[], str]) -> str:
    """``env`` when set, else the secret kept in the data folder's file ``name`` (mode 0600), made by
    ``make`` the first time: the same on every start."""
    if secret := os.environ.get(env):
        return secret
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(make() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def dev_api_key(data_dir: Path) -> str:
    """The development API key: GATEWAY_DEV_API_KEY, else one generated once and kept in the data folder."""
    return _kept_secret(
        data_dir, "GATEWAY_DEV_API_KEY", "dev_api_key", lambda: "mpk_" + secrets.token_urlsafe(32)
    )


def dev_webhook_secret(data_dir: Path) -> str:
    """The ``whsec_`` secret the simulator signs with and the gateway verifies: generated once, kept."""
    return _kept_secret(
        data_dir,
        "GATEWAY_STRIPE_WEBHOOK_SECRET",
        "dev_webhook_secret",
        lambda: "whsec_" + secrets.token_hex(24),
    )


def dev_status_page_secret(data_dir: Path) -> str:
    """The key the gateway signs buyers' status-page links with: generated once and kept, so the links
    a buyer was given still open after the next ``make run``."""
    return _kept_secret(
        data_dir, "GATEWAY_STATUS_PAGE_SECRET", "dev_status_page_secret", lambda: secrets.token_urlsafe(32)
    )


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value not in ("", "0", "1", "true", "false"):
        raise SystemExit(f"{name} must be 1 or 0, got {value!r}")
    return value in ("1", "true")


@dataclass(frozen=True)
class DevTls:
    """The development stack's transport security: where the PKI is, and the two switches."""

    pki_dir: Path | None = None
    """The dev CA and certificates; None only when neither gRPC nor HTTPS uses TLS."""
    grpc_tls: bool = False
    """False with DEV_GRPC_INSECURE=1: plaintext gRPC, no caller authorization."""
    https: bool = False
    """DEV_HTTPS=1: the gateway serves HTTPS with its certificate from the dev CA."""

    @classmethod
    def from_env(cls, data_dir: Path, say: Callable[[str], object] | None = None) -> DevTls:
        """From DEV_HTTPS and DEV_GRPC_INSECURE; ``say`` tells of certificates made (the supervisor
        passes its console's print; default: standard error)."""
        https = _env_flag("DEV_HTTPS")
        grpc_tls = not _env_flag("DEV_GRPC_INSECURE")
        if not grpc_tls and not https:
            return cls()
        pki_dir = data_dir / "pki"
        made = pki.init(pki_dir)  # first start: the CA and every certificate; later: reused as is
        if made:
            (say or Console(stderr=True, highlight=False).print)(
                f"PKI: created {', '.join(made)} in {pki_dir}"
            )
        return cls(pki_dir, grpc_tls, https)

    def child_env(self, name: str, prefix: str) -> dict[str, str]:
        """The variables that give child ``name`` (its identity) its certificate, or plaintext."""
        if not self.grpc_tls or self.pki_dir is None:
            return {"GRPC_INSECURE": "true"}
        files = pki.files(self.pki_dir, name)
        return {
            f"{prefix}TLS_CA_FILE": str(files.ca_file),
            f"{prefix}TLS_CERT_FILE": str(files.cert_file),
            f"{prefix}TLS_KEY_FILE": str(files.key_file),
        }

    def gateway_https_env(self) -> dict[str, str]:
        if not self.https or self.pki_dir is None:
            return {}
        files = pki.files(self.pki_dir, "gateway")
        return {
            "GATEWAY_HTTP_TLS_CERT_FILE": str(files.cert_file),
            "GATEWAY_HTTP_TLS_KEY_FILE": str(files.key_file),
        }

    @property
    def http_scheme(self) -> str:
        return "https" if self.https else "http"

    def probe_security(self) -> GrpcSecurity:
        if not self.grpc_tls or self.pki_dir is None:
            return INSECURE
        files = pki.files(self.pki_dir, "operator")
        return identity_files(files.ca_file, files.cert_file, files.key_file)

    def http_verify(self) -> ssl.SSLContext | bool:
        if not self.https or self.pki_dir is None:
            return True
        return ssl.create_default_context(cafile=str(self.pki_dir / pki.CA_FILE))


def plan_children(
    dev_key: str = "",
    webhook_secret: str = "",
    tls: DevTls | None = None,
    status_page_secret: str = "",
    sim_state: Path | None = None,
) -> list[Child]:
    """What `make run` starts, with ports from the same variables the services read."""
    tls = tls or DevTls()
    ports = {
        "payment": _env_port("PAYMENT_GRPC_PORT", 50051),
        "ledger": _env_port("LEDGER_GRPC_PORT", 50052),
        "wallet": _env_port("WALLET_GRPC_PORT", 50053),
        "recon": _env_port("RECON_GRPC_PORT", 50054),
        "gateway": _env_port("GATEWAY_HTTP_PORT", 8000),
        "psp-sim": _env_port("PSP_SIM_PORT", 12111),
    }
    # Every service is stateless (janitors, relays, consumers, schedulers and runs share their work
    # through database claims, advisory locks and consumer groups: docs/architecture.md), so each can
    # run as several processes, one core each, on ports of their own; callers spread calls over them
    # round-robin. DEV_REPLICAS sets the count for all, DEV_PAYMENT_REPLICAS for the payment service.
    gateway_url = f"{tls.http_scheme}://127.0.0.1:{ports['gateway']}"
    default_replicas = _env_count("DEV_REPLICAS", 1)
    counts = {name: default_replicas for name in ("payment", "ledger", "wallet", "recon", "gateway")} | {
        "payment": _env_count("DEV_PAYMENT_REPLICAS", default_replicas)
    }
    replica_ports = {
        name: [ports[name], *(free_port() for _ in range(count - 1))] for name, count in counts.items()
    }
    addrs = {name: ",".join(f"127.0.0.1:{p}" for p in ps) for name, ps in replica_ports.items()}
    payment_ports = replica_ports["payment"]
    # Metrics are off by default (port 0); asked for, each replica takes the next port up.
    metrics_off = os.environ.get("PAYMENT_METRICS_PORT", "0") == "0"
    metrics_base = 0 if metrics_off else _env_port("PAYMENT_METRICS_PORT", 0)
    children = [
        Child(
            _replica_name("payment", i),
            "payment_svc",
            port,
            "grpc",
            env={
                "PAYMENT_GRPC_PORT": str(port),
                "PAYMENT_PSP_BASE_URL": f"http://127.0.0.1:{ports['psp-sim']}",
                "PAYMENT_RETURN_URL": f"{gateway_url}/v1/payments/return",
                "PAYMENT_LEDGER_ADDR": addrs["ledger"],
                "PAYMENT_WALLET_ADDR": addrs["wallet"],
                # The payment service verifies each PSP event with the secret the simulator signs with.
                "PAYMENT_ENVIRONMENT": os.environ.get("PAYMENT_ENVIRONMENT", "development"),
                **({"PAYMENT_PSP_WEBHOOK_SECRETS": webhook_secret} if webhook_secret else {}),
                **({"PAYMENT_METRICS_PORT": str(metrics_base + i)} if metrics_base else {}),
                **tls.child_env("payment", "PAYMENT_"),
            },
        )
        for i, port in enumerate(payment_ports)
    ]
    for name, module in (("ledger", "ledger_svc"), ("wallet", "wallet_svc")):
        prefix = f"{name.upper()}_"
        children += [
            Child(
                _replica_name(name, i),
                module,
                port,
                "grpc",
                env={f"{prefix}GRPC_PORT": str(port), **tls.child_env(name, prefix)},
            )
            for i, port in enumerate(replica_ports[name])
        ]
    children += [
        Child(
            _replica_name("recon", i),
            "recon_svc",
            port,
            "grpc",
            env={
                "RECON_GRPC_PORT": str(port),
                "RECON_LEDGER_ADDR": addrs["ledger"],
                "RECON_WALLET_ADDR": addrs["wallet"],
                "RECON_PAYMENT_ADDR": addrs["payment"],
                "RECON_PSP_BASE_URL": f"http://127.0.0.1:{ports['psp-sim']}",
                **tls.child_env("recon", "RECON_"),
            },
        )
        for i, port in enumerate(replica_ports["recon"])
    ]
    if importlib.util.find_spec("psp_sim") is not None:
        from payment_svc.psp_events import HANDLED_EVENT_TYPES

        children.append(
            Child(
                "psp-sim",
                "psp_sim",
                ports["psp-sim"],
                "tcp",
                args=["serve", "--port", str(ports["psp-sim"])],
                # The simulator delivers its webhooks to our gateway, signed with the shared secret.
                env={
                    "PSP_SIM_WEBHOOK_URL": f"{gateway_url}/v1/webhooks/stripe",
                    # Subscribed like a Stripe endpoint in production: only what can change a payment.
                    "PSP_SIM_WEBHOOK_EVENTS": ",".join(sorted(HANDLED_EVENT_TYPES)),
                    # Its objects outlive a restart, like the payments that refer to them.
                    **({"PSP_SIM_STATE": str(sim_state)} if sim_state else {}),
                    **({"PSP_SIM_WEBHOOK_SECRET": webhook_secret} if webhook_secret else {}),
                    # Over HTTPS the simulator's webhook client must trust the dev CA.
                    **(
                        {"SSL_CERT_FILE": str(tls.pki_dir / pki.CA_FILE)}
                        if tls.https and tls.pki_dir is not None
                        else {}
                    ),
                },
            )
        )
    # Gateway replicas are peers on ports of their own (a load balancer in front is the deployment's
    # business); the simulator's webhooks go to the first, buyers may use any.
    children += [
        Child(
            _replica_name("gateway", i),
            "gateway",
            port,
            "http",
            ready_path="/readyz",
            https=tls.https,
            env={
                **tls.child_env("gateway", "GATEWAY_"),
                **tls.gateway_https_env(),
                "GATEWAY_HTTP_PORT": str(port),
                # Development: no webhook secret needed, and a ready-made key (payments + admin).
                "GATEWAY_ENVIRONMENT": os.environ.get("GATEWAY_ENVIRONMENT", "development"),
                **({"GATEWAY_DEV_API_KEY": dev_key} if dev_key else {}),
                **({"GATEWAY_STRIPE_WEBHOOK_SECRET": webhook_secret} if webhook_secret else {}),
                **({"GATEWAY_STATUS_PAGE_SECRET": status_page_secret} if status_page_secret else {}),
                **{f"GATEWAY_{n.upper()}_ADDR": addrs[n] for n in ("payment", "ledger", "wallet", "recon")},
            },
        )
        for i, port in enumerate(replica_ports["gateway"])
    ]
    return children


def _replica_name(service: str, index: int) -> str:
    """``payment``, then ``payment-2``, ``payment-3``…: the first keeps the plain name (and port)."""
    return service if index == 0 else f"{service}-{index + 1}"
