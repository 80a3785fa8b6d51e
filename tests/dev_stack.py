"""The session's one `make run` stack, shared by the README tests and the supervisor tests (a plugin of
tests/conftest.py, so both modules get the same stack).

Starting a dev stack (embedded PostgreSQL and Valkey, four services, the gateway, the PSP simulator: a
dozen processes) is the most expensive set-up of the suite, so the tests that need one share it, in
stages: those that only use it first, then those that crash parts of it, then those that stop or kill
it. ``dev_stack(stage)`` marks them and the session sorts them by stage; a parallel run sends their
two modules to one worker as one unit (both in tests/conftest.py). A test that finds the stack stopped or killed gets a new one,
so each still passes alone or in any order; the order only saves start-ups.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from svckit.devstack.infra import free_port

ROOT = Path(__file__).resolve().parent.parent
DEV_KEY = "mpk_" + "d" * 43
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}
PORT_NAMES = ("pg", "redis", "payment", "ledger", "wallet", "recon", "gateway", "psp")


def free_ports() -> dict[str, int]:
    return {name: free_port() for name in PORT_NAMES}


def start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen:
    """``python -m svckit.devstack run`` (what `make run` runs) on these ports and data folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "DEV_PG_PORT": str(ports["pg"]), "DEV_REDIS_PORT": str(ports["redis"]),
        "PAYMENT_GRPC_PORT": str(ports["payment"]), "LEDGER_GRPC_PORT": str(ports["ledger"]),
        "WALLET_GRPC_PORT": str(ports["wallet"]), "RECON_GRPC_PORT": str(ports["recon"]),
        "GATEWAY_HTTP_PORT": str(ports["gateway"]), "PSP_SIM_PORT": str(ports["psp"]),
        "GATEWAY_DEV_API_KEY": DEV_KEY,
    })  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "svckit.devstack", "run", "--quiet", "--data-dir", str(data_dir)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(60)


def survivors(processes: list[psutil.Process], within: float = 10.0) -> list[psutil.Process]:
    """Processes still alive after ``within`` seconds (exiting children may need a moment on a busy machine)."""
    deadline = time.monotonic() + within
    while True:
        alive = []
        for p in processes:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


class Output:
    """The supervisor's output, read on a thread so waiting for a line can time out."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # the supervisor exited

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                self.lines.put(None)
                break
            self.seen.append(line)
            if text in line:
                return line
        pytest.fail(f"no line with {text!r} in:\n" + "".join(self.seen))


@dataclass
class RunningStack:
    ports: dict[str, int]
    data_dir: Path
    proc: subprocess.Popen
    output: Output
    summary: str
    """What the supervisor printed up to its ready line (the start summary)."""


def start_and_wait(data_dir: Path, ports: dict[str, int]) -> RunningStack:
    proc = start(data_dir, ports)
    output = Output(proc)
    try:
        output.wait_for("Stop: Ctrl-C", timeout=90)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    return RunningStack(ports, data_dir, proc, output, "".join(output.seen))


class SharedStack:
    """The session's dev stack: started on first use, started again when a test stopped or killed it."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self.current: RunningStack | None = None

    def running(self) -> RunningStack:
        if self.current is None or self.current.proc.poll() is not None:
            data_dir = self._tmp.mktemp("dev-stack")
            # `make run` keeps its generated key here (the README's commands read it); the test stack is
            # given the key by environment.
            (data_dir / "dev_api_key").write_text(DEV_KEY + "\n")
            self.current = start_and_wait(data_dir, free_ports())
        return self.current

    def restart(self) -> RunningStack:
        """The stopped stack started again on its data folder and ports (a second `make run`)."""
        assert self.current is not None and self.current.proc.poll() is not None, "stop the stack first"
        self.current = start_and_wait(self.current.data_dir, self.current.ports)
        return self.current

    def data_dir_at_rest(self) -> Path:
        """A data folder that a stack has used (PostgreSQL initialised, every migration applied), with
        nothing running on it."""
        stack = self.running() if self.current is None else self.current
        if stack.proc.poll() is None:
            assert stop(stack.proc) == 0
        return stack.data_dir

    def close(self) -> None:
        if self.current is not None and self.current.proc.poll() is None:
            stop(self.current.proc)


@pytest.fixture(scope="session")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStack]:
    shared = SharedStack(tmp_path_factory)
    try:
        yield shared
    finally:
        shared.close()
