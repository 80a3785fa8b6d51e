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
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from functools import partial
from pathlib import Path

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
from svckit.devstack.plan import (
    Child,
    DevTls,
    _env_flag,
    _env_port,
    dev_api_key,
    dev_status_page_secret,
    dev_webhook_secret,
    plan_children,
)
from svckit.devstack.readiness import ChildFailed, _is_ready, _require_free
from svckit.devstack.restarts import Backoff, CrashLoop, Watched, _exit_description

# The stack's parts live in plan (what runs), restarts (the policy) and readiness; their names stay
# importable from here, where benchmarks and tests have always found them.
__all__ = [
    "Backoff",
    "Child",
    "ChildFailed",
    "CrashLoop",
    "DevTls",
    "Stack",
    "Watched",
    "console",
    "dev_api_key",
    "dev_status_page_secret",
    "dev_webhook_secret",
    "free_port",
    "plan_children",
    "port_open",
    "run",
]

console = Console(stderr=True, highlight=False)
ROOT = Path(__file__).resolve().parents[2]
STANDBY_NAME = "standby"
"""The standby's ``application_name``, which the primary's ``synchronous_standby_names`` waits for."""
COLORS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red"]


class Stack:
    def __init__(self, data_dir: Path, echo_logs: bool) -> None:
        self.data_dir = data_dir
        self.echo_logs = echo_logs
        self.dev_key = dev_api_key(data_dir)
        self.tls = DevTls.from_env(data_dir, say=lambda m: console.print(m))
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
        self.crash_loop: CrashLoop | None = None
        """Set (before :meth:`supervise` returns 1) when a process crash-looped: what, for a caller
        watching from another thread."""
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
                    lines=partial(_tail_lines, child),
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
                    self.crash_loop = CrashLoop(unit.name, how, unit.backoff.max_crashes, unit.lines())
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


def _redact(url: str) -> str:
    return url.split("://", 1)[0] + "://***@" + url.rsplit("@", 1)[1] if "@" in url else url


def _node_proc(node: EmbeddedValkey) -> subprocess.Popen | None:
    return node.proc


def _proc_of(child: Child) -> subprocess.Popen | None:
    return child.proc  # read when called: a restart replaces it


def _tail_lines(child: Child) -> list[str]:
    return list(child.tail)


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
