"""Run the whole system on one machine: infrastructure, services, gateway; stop it all on Ctrl-C.

A process that crashes once it was up (a service, the gateway, the PSP simulator, or the embedded
PostgreSQL/Valkey this supervisor started) is restarted after an exponential backoff; the stack is
stopped only on Ctrl-C/SIGTERM, when a process fails its first start, or when one crash-loops.

gRPC between the children is mutual TLS: the first start makes a development CA and one certificate per
identity in ``<data>/pki`` (later starts reuse them), each child gets its identity's files by
environment, and readiness is probed as ``operator``. ``DEV_GRPC_INSECURE=1`` runs plaintext instead;
``DEV_HTTPS=1`` makes the gateway serve HTTPS with a certificate from the same CA.

Children run in their own sessions (so the terminal's Ctrl-C reaches only us, and we stop them in
order) and carry a parent-death signal (so even ``kill -9`` of this process leaves no orphans).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from svckit import pki
from svckit.config import multi_host_url
from svckit.devstack.infra import (
    EmbeddedPostgres,
    EmbeddedStandby,
    EmbeddedValkey,
    EmbeddedValkeyCluster,
    _die_with_parent,
    free_port,
    port_open,
)
from svckit.tls import INSECURE, GrpcSecurity, identity_files

console = Console(stderr=True, highlight=False)
ROOT = Path(__file__).resolve().parents[2]
STANDBY_NAME = "standby"
"""The standby's ``application_name``, which the primary's ``synchronous_standby_names`` waits for."""
COLORS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red"]


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


@dataclass
class Backoff:
    """When to restart a process that crashed, and when to give up on it (it crash-loops)."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    """Up at least this long before a crash: the next delay is ``first_delay`` again."""
    max_crashes: int = 5
    window: float = 120.0
    """``max_crashes`` crashes within this many seconds: give up."""
    restarts: int = 0
    _streak: int = 0
    _crashes: deque = field(default_factory=deque)

    def crashed(self, now: float, up_for: float) -> float | None:
        """Seconds to wait before the next start, or None when the process crash-loops."""
        if up_for >= self.stable_after:
            self._streak = 0
        self._crashes.append(now)
        while now - self._crashes[0] > self.window:
            self._crashes.popleft()
        if len(self._crashes) >= self.max_crashes:
            return None
        delay = min(self.max_delay, self.first_delay * 2**self._streak)
        self._streak += 1
        self.restarts += 1
        return delay


@dataclass
class Watched:
    """A process the supervisor keeps running: a child, or embedded PostgreSQL/Valkey."""

    name: str
    proc: Callable[[], subprocess.Popen | None]
    start: Callable[[], object]
    """Start it again; for PostgreSQL/Valkey this waits until it is ready (or raises)."""
    tail: Callable[[], None] = lambda: None
    backoff: Backoff = field(default_factory=Backoff)
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None


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


def dev_api_key(data_dir: Path) -> str:
    """The development API key: GATEWAY_DEV_API_KEY, else one generated once and kept in the data folder."""
    if key := os.environ.get("GATEWAY_DEV_API_KEY"):
        return key
    path = data_dir / "dev_api_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("mpk_" + secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def dev_webhook_secret(data_dir: Path) -> str:
    """The ``whsec_`` secret the simulator signs with and the gateway verifies: generated once, kept."""
    if secret := os.environ.get("GATEWAY_STRIPE_WEBHOOK_SECRET"):
        return secret
    path = data_dir / "dev_webhook_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("whsec_" + secrets.token_hex(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def dev_status_page_secret(data_dir: Path) -> str:
    """The key the gateway signs buyers' status-page links with: generated once and kept, so the links
    a buyer was given still open after the next ``make run``."""
    if secret := os.environ.get("GATEWAY_STATUS_PAGE_SECRET"):
        return secret
    path = data_dir / "dev_status_page_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


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
    def from_env(cls, data_dir: Path) -> DevTls:
        https = _env_flag("DEV_HTTPS")
        grpc_tls = not _env_flag("DEV_GRPC_INSECURE")
        if not grpc_tls and not https:
            return cls()
        pki_dir = data_dir / "pki"
        made = pki.init(pki_dir)  # first start: the CA and every certificate; later: reused as is
        if made:
            console.print(f"PKI: created {', '.join(made)} in {pki_dir}")
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


class Stack:
    def __init__(self, data_dir: Path, echo_logs: bool) -> None:
        self.data_dir = data_dir
        self.echo_logs = echo_logs
        self.dev_key = dev_api_key(data_dir)
        self.tls = DevTls.from_env(data_dir)
        self.children = plan_children(
            self.dev_key,
            dev_webhook_secret(data_dir),
            self.tls,
            dev_status_page_secret(data_dir),
            sim_state=data_dir / "psp_sim" / "state.sqlite3",
        )
        self.pg: EmbeddedPostgres | None = None
        self.standby: EmbeddedStandby | None = None
        """DEV_PG_STANDBY=1: a synchronous streaming standby of ``pg``, promoted when ``pg`` dies."""
        self.valkey: EmbeddedValkey | None = None
        self.valkey_cluster: EmbeddedValkeyCluster | None = None
        """DEV_REDIS_CLUSTER=1: a Valkey Cluster instead of one server."""
        self.stop_requested = threading.Event()
        self.env = dict(os.environ)

    # -- infrastructure -------------------------------------------------------------------------
    def start_infra(self) -> None:
        if self.env.get("DATABASE_URL"):
            console.print(f"PostgreSQL: using DATABASE_URL ({_redact(self.env['DATABASE_URL'])})")
        else:
            port = _env_port("DEV_PG_PORT", 5432)
            _require_free(port, "PostgreSQL", "DEV_PG_PORT")
            console.print(
                f"PostgreSQL: starting embedded server on 127.0.0.1:{port} (data in {self.data_dir / 'postgres'})"
            )
            standby = _env_flag("DEV_PG_STANDBY")
            self.pg = EmbeddedPostgres(
                self.data_dir / "postgres",
                port=port,
                durable=True,
                sync_standby=STANDBY_NAME if standby else None,
            ).start()
            self.env["DATABASE_URL"] = self.pg.url
            if standby:
                self._start_standby(self.pg)
        if self.env.get("REDIS_URL"):
            console.print(f"Redis: using REDIS_URL ({_redact(self.env['REDIS_URL'])})")
        else:
            port = _env_port("DEV_REDIS_PORT", 6379)
            if _env_flag("DEV_REDIS_CLUSTER"):
                self._start_valkey_cluster(port)
                return
            _require_free(port, "Valkey", "DEV_REDIS_PORT")
            console.print(
                f"Valkey: starting embedded server on 127.0.0.1:{port} (data in {self.data_dir / 'valkey'})"
            )
            self.valkey = EmbeddedValkey(self.data_dir / "valkey", port=port, persist=True).start()
            self.env["REDIS_URL"] = self.valkey.url

    def _start_valkey_cluster(self, first_port: int) -> None:
        """Three primaries with a replica each on ``first_port`` and the five ports after it."""
        ports = list(range(first_port, first_port + 6))
        for port in ports:
            _require_free(port, "a Valkey cluster node", "DEV_REDIS_PORT")
        # The bus ports are part of the cluster's memory (nodes.conf): the usual port + 10000 when it
        # exists, so a restart finds the same ones.
        bus = [p + 10000 if p + 10000 < 65536 else free_port() for p in ports]
        folder = self.data_dir / "valkey-cluster"
        console.print(
            f"Valkey: starting a cluster of 3 primaries with a replica each on 127.0.0.1:{ports[0]}-{ports[-1]} "
            f"(data in {folder})"
        )
        self.valkey_cluster = EmbeddedValkeyCluster(folder, ports, bus_ports=bus, persist=True).start()
        self.env["REDIS_URL"] = self.valkey_cluster.url
        self.env["REDIS_CLUSTER"] = "true"

    def _start_standby(self, primary: EmbeddedPostgres) -> None:
        folder = self.data_dir / "postgres-standby"
        if (folder / "PG_VERSION").exists() and not (folder / "standby.signal").exists():
            raise SystemExit(
                f"the standby in {folder} was promoted in an earlier run, so {primary.data_dir} is stale: "
                "`make reset` (or remove both folders) to start over"
            )
        port = _env_port("DEV_PG_STANDBY_PORT", 5433)
        _require_free(port, "the PostgreSQL standby", "DEV_PG_STANDBY_PORT")
        console.print(
            f"PostgreSQL: starting a synchronous streaming standby on 127.0.0.1:{port} (data in {folder})"
        )
        self.standby = EmbeddedStandby(
            folder, port=port, durable=True, primary=primary, application_name=STANDBY_NAME
        )
        self.standby.start()
        # Both servers in one URL: every connection goes to whichever accepts writes.
        self.env["DATABASE_URL"] = multi_host_url(
            primary.url, f"{primary.host}:{primary.port},{self.standby.host}:{self.standby.port}"
        )

    def _recover_postgres(self) -> object:
        """The primary died: promote the standby when there is one (a restarted old primary would
        bring back a second writable copy), else restart the primary."""
        standby = self.standby
        if standby is None or standby.proc is None or standby.proc.poll() is not None:
            assert self.pg is not None
            return self.pg.start()
        old = self.pg
        standby.promote()
        self.pg, self.standby = standby, None
        console.print(
            f"[yellow]PostgreSQL: promoted the standby on port {standby.port}; the services reconnect "
            f"to it. The old primary's data ({old.data_dir if old else '?'}) is stale and stays stopped; "
            "`make reset` before the next run.[/]"
        )
        return standby

    # -- services -------------------------------------------------------------------------------
    def start_children(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        for i, child in enumerate(self.children):
            _require_free(child.port, child.name, None)
            child.color = COLORS[i % len(COLORS)]
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        env = {
            **self.env,
            "PYTHONUNBUFFERED": "1",
            "LOG_FORMAT": self.env.get("LOG_FORMAT", "console"),
            **child.env,
        }
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        child.proc = subprocess.Popen(
            [sys.executable, "-m", child.module, *child.args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent, start_new_session=True,
        )  # fmt: skip
        threading.Thread(
            target=self._pump,
            args=(child, self.data_dir / "logs" / f"{child.name}.log", child.color),
            daemon=True,
        ).start()

    def _pump(self, child: Child, log_path: Path, color: str) -> None:
        proc = child.proc  # this run's: a restart gets a pump of its own
        assert proc is not None and proc.stdout is not None
        with open(log_path, "ab") as log_file:
            for raw in iter(proc.stdout.readline, b""):
                log_file.write(raw)
                log_file.flush()
                line = raw.decode(errors="replace").rstrip()
                child.tail.append(line)
                if self.echo_logs:
                    console.print(f"[{color}]{child.name:>8}[/] | {line}", markup=True, soft_wrap=True)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.children)
        while pending:
            if self.stop_requested.is_set():
                raise KeyboardInterrupt
            for child in list(pending):
                if child.proc is not None and child.proc.poll() is not None:
                    raise ChildFailed(child)
                if _is_ready(child, self.tls):
                    pending.remove(child)
            if time.monotonic() > deadline:
                names = ", ".join(c.name for c in pending)
                raise TimeoutError(
                    f"not ready after {timeout:.0f}s: {names} (logs in {self.data_dir / 'logs'})"
                )
            time.sleep(0.2)

    def watched(self) -> list[Watched]:
        """Everything this supervisor started, with how to start each again."""
        watched = []
        if self.pg is not None:
            # Read when called: a fail-over makes the promoted standby the primary.
            watched.append(
                Watched("postgres", lambda: self.pg.proc if self.pg else None, self._recover_postgres)
            )
        if self.standby is not None:
            standby = self.standby
            watched.append(
                Watched(
                    "postgres-standby",
                    lambda: standby.proc if self.standby is standby else None,
                    standby.start,
                )
            )
        if self.valkey is not None:
            valkey = self.valkey
            watched.append(Watched("valkey", lambda: valkey.proc, valkey.start))
        if self.valkey_cluster is not None:
            for node in self.valkey_cluster.nodes:
                # Restarted only after its replica had time to take its slots over (node timeout 2 s
                # plus the election); it rejoins from its nodes.conf, a former primary as a replica.
                watched.append(
                    Watched(
                        f"valkey-{node.port}",
                        partial(_node_proc, node),
                        node.start,
                        backoff=Backoff(first_delay=5.0),
                    )
                )
        for child in self.children:
            watched.append(
                Watched(
                    child.name,
                    partial(_proc_of, child),
                    partial(self._spawn, child),
                    tail=partial(_print_tail, child),
                )
            )
        return watched

    def supervise(self, watched: list[Watched] | None = None) -> int:
        """Restart what crashes until asked to stop; 1 when something crash-loops, else 0."""
        watched = self.watched() if watched is None else watched
        while not self.stop_requested.wait(0.2):
            now = time.monotonic()
            for unit in watched:
                if unit.restart_at is not None:
                    if now >= unit.restart_at:
                        self._restart(unit)
                    continue
                proc = unit.proc()
                if proc is None or proc.poll() is None:
                    continue
                how = _exit_description(proc.returncode)
                delay = unit.backoff.crashed(now, up_for=now - unit.started_at)
                if delay is None:
                    console.print(
                        f"[red]{unit.name} {how}; it crashed {unit.backoff.max_crashes} times within "
                        f"{unit.backoff.window:.0f} s, so it cannot run: stopping everything[/]"
                    )
                    unit.tail()
                    return 1
                console.print(
                    f"[yellow]{unit.name} {how}; restarting it in {delay:g} s "
                    f"(restart {unit.backoff.restarts})[/]"
                )
                unit.tail()
                unit.restart_at = now + delay
        return 0

    def _restart(self, unit: Watched) -> None:
        unit.restart_at = None
        unit.started_at = time.monotonic()
        try:
            unit.start()
        except (RuntimeError, TimeoutError, OSError) as exc:
            # Counted as its next crash on the following check (the process has exited, or is
            # killed here if it never became ready).
            console.print(f"[red]{unit.name} failed to restart: {exc}[/]")
            proc = unit.proc()
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            return
        proc = unit.proc()
        pid = proc.pid if proc is not None else "-"
        console.print(f"{unit.name} restarted (restart {unit.backoff.restarts}, pid {pid})")

    def stop(self) -> None:
        # Gateway first (stop taking traffic), then services, then the infrastructure they use.
        for child in reversed(self.children):
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                console.print(f"[yellow]{child.name} did not stop in time; killing it[/]")
                child.proc.kill()
                child.proc.wait()
        if self.valkey is not None:
            self.valkey.stop()
        if self.valkey_cluster is not None:
            self.valkey_cluster.stop()
        if self.pg is not None:
            self.pg.stop()
        if self.standby is not None:
            self.standby.stop()


class ChildFailed(RuntimeError):
    def __init__(self, child: Child) -> None:
        super().__init__(
            f"{child.name} exited with code {child.proc.returncode if child.proc else '?'} during start-up"
        )
        self.child = child


def _is_ready(child: Child, tls: DevTls) -> bool:
    if child.kind == "grpc":
        try:
            with tls.probe_security().channel(child.address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]  # the stub declares no methods
                    health_pb2.HealthCheckRequest(), timeout=0.5
                )
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False
    if child.kind == "http":
        try:
            return (
                httpx.get(
                    f"{child.url}{child.ready_path or '/'}", timeout=1.0, verify=tls.http_verify()
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            return False
    return port_open("127.0.0.1", child.port)


def _exit_description(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name} (exit code {returncode})"
    return f"exited with code {returncode}"


def _require_free(port: int, what: str, variable: str | None) -> None:
    if port_open("127.0.0.1", port):
        hint = (
            f"; set {variable} to use another port"
            if variable
            else "; stop whatever listens there or set its *_PORT variable"
        )
        raise SystemExit(f"port {port} for {what} is already in use{hint}")


def _redact(url: str) -> str:
    return url.split("://", 1)[0] + "://***@" + url.rsplit("@", 1)[1] if "@" in url else url


def _node_proc(node: EmbeddedValkey) -> subprocess.Popen | None:
    return node.proc


def _proc_of(child: Child) -> subprocess.Popen | None:
    return child.proc  # read when called: a restart replaces it


def _print_tail(child: Child) -> None:
    for line in child.tail:
        console.print(f"  {child.name} | {line}", markup=False)


def _shown_path(path: Path) -> str:
    """``path`` relative to the checkout when inside it (what the README's commands use)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _summary(stack: Stack, started: float) -> None:
    table = Table(
        title=f"Marketplace Payments is up ({time.monotonic() - started:.1f}s)", title_justify="left"
    )
    table.add_column("process")
    table.add_column("listens on")
    table.add_column("pid", justify="right")
    for child in stack.children:
        where = child.url if child.kind in ("http", "tcp") else f"grpc {child.address}"
        table.add_row(child.name, where, str(child.proc.pid if child.proc else "-"))
    table.add_row(
        "postgres",
        _redact(stack.env["DATABASE_URL"]),
        str(stack.pg.proc.pid) if stack.pg and stack.pg.proc else "external",
    )
    if stack.standby is not None and stack.standby.proc is not None:
        table.add_row("postgres-standby", stack.standby.url, str(stack.standby.proc.pid))
    if stack.valkey_cluster is not None:
        ports = [n.port for n in stack.valkey_cluster.nodes]
        table.add_row("redis", f"cluster 127.0.0.1:{ports[0]}-{ports[-1]}", "6 nodes")
    else:
        table.add_row(
            "redis",
            stack.env["REDIS_URL"],
            str(stack.valkey.proc.pid) if stack.valkey and stack.valkey.proc else "external",
        )
    console.print(table)
    gw = next(c for c in stack.children if c.name == "gateway")
    payment = next(c for c in stack.children if c.name == "payment")
    checkout = uuid.uuid4().hex[:8]
    tls: DevTls = stack.tls
    pki_dir = _shown_path(tls.pki_dir) if tls.pki_dir is not None else None
    cacert = f" --cacert {pki_dir}/{pki.CA_FILE}" if tls.https else ""
    grpcurl_tls = (
        f"-cacert {pki_dir}/{pki.CA_FILE} -cert {pki_dir}/operator.crt -key {pki_dir}/operator.key"
        if tls.grpc_tls
        else "-plaintext"
    )
    # No success_url/cancel_url: the buyer comes back to the gateway's status page of the checkout
    # (the answer's status_page_url), which works without a network; a shop would send its own.
    body = (
        f'{{"checkout_id":"chk_{checkout}","buyer_info":{{"buyer_id":"buyer_1"}},'
        f'"payment_orders":[{{"payment_order_id":"po_{checkout}_a","seller_account":"seller_a",'
        f'"amount":"25.00","currency":"USD","line_items":[{{"name":"Desk lamp","quantity":1}}]}},'
        f'{{"payment_order_id":"po_{checkout}_b","seller_account":"seller_b","amount":"9.90",'
        f'"currency":"USD","line_items":[{{"name":"Light bulb","quantity":2}}]}}]}}'
    )
    console.print(
        f"API key (development, scopes payments+admin): {stack.dev_key}\n"
        f"Pay:  curl -s{cacert} -X POST {gw.url}/v1/payments -H 'Authorization: Bearer {stack.dev_key}' "
        f"-H 'Idempotency-Key: {checkout}' -H 'Content-Type: application/json' -d '{body}'",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"Try:  curl -s{cacert} {gw.url}/readyz | python3 -m json.tool\n"
        f"      open {gw.url}/docs\n"
        f"      .venv/bin/grpcurl {grpcurl_tls} {payment.address} list\n"
        f"Logs: {stack.data_dir / 'logs'}/<process>.log     Stop: Ctrl-C",
        markup=False,
        soft_wrap=True,  # the commands must stay on one line to paste
    )


def run(data_dir: Path, echo_logs: bool = True, ready_timeout: float = 60.0) -> int:
    started = time.monotonic()
    stack = Stack(data_dir, echo_logs)

    def _on_signal(_signum: int, _frame: object) -> None:
        stack.stop_requested.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    code = 1
    try:
        stack.start_infra()
        stack.start_children()
        stack.wait_ready(ready_timeout)
        _summary(stack, started)
        code = stack.supervise()
    except KeyboardInterrupt:
        code = 0
    except ChildFailed as exc:
        console.print(f"[red]{exc}[/]")
        _print_tail(exc.child)
    except (TimeoutError, RuntimeError, OSError) as exc:
        console.print(f"[red]{exc}[/]")
    finally:
        console.print("stopping…")
        with contextlib.suppress(Exception):
            stack.stop()
        console.print("stopped")
    return code
