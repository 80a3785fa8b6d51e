"""`make run`'s supervisor: starts everything, reports readiness, stops with no orphans, keeps data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from svckit.devstack.infra import free_port

ROOT = Path(__file__).resolve().parent.parent
DEV_KEY = "mpk_" + "d" * 43
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}


def _start(data_dir: Path, ports: dict[str, int]) -> subprocess.Popen:
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


def _wait_for_summary(proc: subprocess.Popen, timeout: float = 90) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if "Stop: Ctrl-C" in line:
            return "".join(seen)
    proc.kill()
    pytest.fail("stack did not come up:\n" + "".join(seen))


def _survivors(processes: list[psutil.Process], within: float = 10.0) -> list[psutil.Process]:
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


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
    return proc.wait(60)


@pytest.mark.slow
def test_run_starts_everything_stops_cleanly_and_reuses_data(tmp_path):
    ports = {
        name: free_port()
        for name in ("pg", "redis", "payment", "ledger", "wallet", "recon", "gateway", "psp")
    }
    proc = _start(tmp_path, ports)
    children: list[psutil.Process] = []
    try:
        summary = _wait_for_summary(proc)
        for name in ("payment", "ledger", "wallet", "recon"):
            assert f"127.0.0.1:{ports[name]}" in summary
        assert f"Authorization: Bearer {DEV_KEY}" in summary  # the ready-to-paste checkout curl
        gw = f"http://127.0.0.1:{ports['gateway']}"
        ready = httpx.get(f"{gw}/readyz", timeout=5).json()
        assert ready["status"] == "ready"
        created = httpx.post(
            f"{gw}/v1/ledger/accounts", json={"name": "asset:bank:operating", "currency": "USD"},
            headers={"Idempotency-Key": "devstack-1", **AUTH}, timeout=5,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 7  # postgres, valkey, four services, gateway (and the PSP simulator)
    finally:
        code = _stop(proc)
    assert code == 0
    assert _survivors(children) == [], "processes outlived the supervisor"

    # A second start on the same data folder finds the account made by the first.
    proc = _start(tmp_path, ports)
    try:
        _wait_for_summary(proc)
        again = httpx.get(
            f"http://127.0.0.1:{ports['gateway']}/v1/ledger/accounts/asset:bank:operating",
            timeout=5,
            headers=AUTH,
        )
        assert again.status_code == 200
        assert again.json()["currency"] == "USD"
    finally:
        assert _stop(proc) == 0


def test_occupied_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env["DEV_PG_PORT"] = str(busy)
        result = subprocess.run(
            [sys.executable, "-m", "svckit.devstack", "run", "--quiet", "--data-dir", str(tmp_path)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert f"port {busy}" in result.stdout + result.stderr
    assert "DEV_PG_PORT" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_killed_supervisor_leaves_no_orphans(tmp_path):
    ports = {
        name: free_port()
        for name in ("pg", "redis", "payment", "ledger", "wallet", "recon", "gateway", "psp")
    }
    proc = _start(tmp_path, ports)
    try:
        _wait_for_summary(proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 7
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to stop anything itself
        proc.wait(10)
    # Each child carries a parent-death signal: PostgreSQL gets a fast shutdown, the rest SIGTERM.
    assert _survivors(children, within=30.0) == [], "processes outlived a SIGKILLed supervisor"


def test_the_start_summary_names_the_ports_in_use(monkeypatch, capsys, tmp_path):
    # Started on other ports (another stack already runs), the printed hints must follow them.
    from types import SimpleNamespace

    from svckit.devstack import supervisor

    monkeypatch.setenv("PAYMENT_GRPC_PORT", "28051")
    monkeypatch.setenv("GATEWAY_HTTP_PORT", "28000")
    tls = supervisor.DevTls(tmp_path / "pki", grpc_tls=True)
    stack = SimpleNamespace(
        children=supervisor.plan_children(dev_key="mpk_test", tls=tls),
        env={"DATABASE_URL": "postgresql://u@127.0.0.1:1/x", "REDIS_URL": "redis://127.0.0.1:2/0"},
        pg=None,
        valkey=None,
        dev_key="mpk_test",
        data_dir=tmp_path,
        tls=tls,
    )
    supervisor._summary(stack, started=0.0)
    printed = capsys.readouterr().err
    pki = tmp_path / "pki"
    assert (
        f"grpcurl -cacert {pki}/ca.crt -cert {pki}/operator.crt -key {pki}/operator.key 127.0.0.1:28051 list"
        in printed
    )
    assert "http://127.0.0.1:28000/v1/payments" in printed
    assert "50051" not in printed


def test_each_child_gets_its_identity_by_environment_and_plaintext_only_when_asked(monkeypatch, tmp_path):
    from svckit.devstack import supervisor

    monkeypatch.delenv("DEV_GRPC_INSECURE", raising=False)
    monkeypatch.delenv("DEV_HTTPS", raising=False)
    tls = supervisor.DevTls.from_env(tmp_path)
    assert (tmp_path / "pki" / "ca.crt").exists() and (tmp_path / "pki" / "operator.key").exists()
    children = {c.name: c for c in supervisor.plan_children(tls=tls)}
    for name, prefix in (("payment", "PAYMENT_"), ("ledger", "LEDGER_"), ("wallet", "WALLET_"),
                         ("recon", "RECON_"), ("gateway", "GATEWAY_")):  # fmt: skip
        env = children[name].env
        assert env[f"{prefix}TLS_CERT_FILE"] == str(tmp_path / "pki" / f"{name}.crt")
        assert env[f"{prefix}TLS_KEY_FILE"] == str(tmp_path / "pki" / f"{name}.key")
        assert env[f"{prefix}TLS_CA_FILE"] == str(tmp_path / "pki" / "ca.crt")
        assert "GRPC_INSECURE" not in env
    assert "GATEWAY_HTTP_TLS_CERT_FILE" not in children["gateway"].env
    before = (tmp_path / "pki" / "ca.crt").read_bytes()
    assert supervisor.DevTls.from_env(tmp_path).pki_dir == tmp_path / "pki"
    assert (tmp_path / "pki" / "ca.crt").read_bytes() == before  # the second start reuses the CA

    monkeypatch.setenv("DEV_GRPC_INSECURE", "1")
    children = supervisor.plan_children(tls=supervisor.DevTls.from_env(tmp_path))
    assert all(
        c.env.get("GRPC_INSECURE") == "true" for c in children if c.kind == "grpc" or c.name == "gateway"
    )

    monkeypatch.setenv("DEV_GRPC_INSECURE", "0")
    monkeypatch.setenv("DEV_HTTPS", "1")
    children = {c.name: c for c in supervisor.plan_children(tls=supervisor.DevTls.from_env(tmp_path))}
    gateway = children["gateway"]
    assert gateway.url.startswith("https://")
    assert gateway.env["GATEWAY_HTTP_TLS_CERT_FILE"] == str(tmp_path / "pki" / "gateway.crt")
    sim = children["psp-sim"].env
    assert sim["PSP_SIM_WEBHOOK_URL"].startswith("https://127.0.0.1:")
    assert sim["SSL_CERT_FILE"] == str(tmp_path / "pki" / "ca.crt")  # the simulator trusts the dev CA
    monkeypatch.setenv("DEV_HTTPS", "yes please")
    with pytest.raises(SystemExit, match="DEV_HTTPS"):
        supervisor.DevTls.from_env(tmp_path)
