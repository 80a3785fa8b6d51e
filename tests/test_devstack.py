"""`make run`'s supervisor: starts everything, reports readiness, stops with no orphans, keeps data."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from tests.dev_stack import AUTH, DEV_KEY, ROOT, SharedStack, free_ports, start, stop, survivors


@pytest.mark.slow
@pytest.mark.dev_stack(3)
def test_run_starts_everything_stops_cleanly_and_reuses_data(dev_stack: SharedStack):
    stack = dev_stack.running()
    ports = stack.ports
    for name in ("payment", "ledger", "wallet", "recon"):
        assert f"127.0.0.1:{ports[name]}" in stack.summary
    assert f"Authorization: Bearer {DEV_KEY}" in stack.summary  # the ready-to-paste checkout curl
    gw = f"http://127.0.0.1:{ports['gateway']}"
    ready = httpx.get(f"{gw}/readyz", timeout=5).json()
    assert ready["status"] == "ready"
    created = httpx.post(
        f"{gw}/v1/ledger/accounts", json={"name": "asset:devstack_restart", "currency": "USD"},
        headers={"Idempotency-Key": "devstack-restart-1", **AUTH}, timeout=5,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    children = psutil.Process(stack.proc.pid).children(recursive=True)
    assert len(children) >= 7  # postgres, valkey, four services, gateway (and the PSP simulator)
    assert stop(stack.proc) == 0
    assert survivors(children) == [], "processes outlived the supervisor"

    # A second start on the same data folder finds the account made by the first.
    stack = dev_stack.restart()
    again = httpx.get(
        f"http://127.0.0.1:{ports['gateway']}/v1/ledger/accounts/asset:devstack_restart",
        timeout=5,
        headers=AUTH,
    )
    assert again.status_code == 200
    assert again.json()["currency"] == "USD"
    # The console banner shows the key once, for the user; the log files never do.
    logs = "".join(p.read_text(errors="replace") for p in (stack.data_dir / "logs").glob("*.log"))
    assert "development API key ready" in logs
    assert DEV_KEY[4:20] not in logs


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


def _direct_children(proc: subprocess.Popen) -> dict[str, psutil.Process]:
    """The supervisor's own children by what they run (PostgreSQL's backends come and go below them)."""
    found = {}
    for child in psutil.Process(proc.pid).children():
        cmdline = " ".join(child.cmdline())
        name = next(
            (m for m in ("payment_svc", "ledger_svc", "wallet_svc", "recon_svc") if m in cmdline), None
        )
        found[name or cmdline.split()[0]] = child
    return found


def _ready(gateway_port: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{gateway_port}/readyz", timeout=5).status_code == 200:
                return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.dev_stack(2)
def test_a_crashed_service_is_restarted_and_the_rest_keeps_running(dev_stack: SharedStack):
    stack = dev_stack.running()
    proc, output = stack.proc, stack.output
    before = _direct_children(proc)
    payment = before.pop("payment_svc")
    payment.send_signal(signal.SIGKILL)
    crash = output.wait_for("payment was killed by SIGKILL")
    assert "restarting it in" in crash
    assert "restart 1" in crash
    assert "restart 1" in output.wait_for("payment restarted")
    assert _ready(stack.ports["gateway"]), "the stack did not answer /readyz 200 after the restart"
    assert proc.poll() is None, "the supervisor stopped"
    assert all(p.is_running() for p in before.values()), "another process was stopped or restarted"
    assert _direct_children(proc)["payment_svc"].pid != payment.pid


@pytest.mark.slow
@pytest.mark.dev_stack(2)
def test_crashed_embedded_infrastructure_is_restarted_too(dev_stack: SharedStack):
    stack = dev_stack.running()
    proc, output = stack.proc, stack.output
    valkey = next(p for p in psutil.Process(proc.pid).children() if "valkey-server" in " ".join(p.cmdline()))
    valkey.send_signal(signal.SIGKILL)
    assert "restarting it in" in output.wait_for("valkey was killed by SIGKILL")
    output.wait_for("valkey restarted")
    assert _ready(stack.ports["gateway"]), "the stack did not answer /readyz 200 after Valkey's restart"
    assert proc.poll() is None


@pytest.mark.slow
@pytest.mark.dev_stack(4)
def test_a_killed_supervisor_leaves_no_orphans(dev_stack: SharedStack):
    proc = dev_stack.running().proc
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 7  # postgres, valkey, four services, gateway (and the PSP simulator)
    proc.send_signal(signal.SIGKILL)  # no chance to stop anything itself
    proc.wait(10)
    # Each child carries a parent-death signal: PostgreSQL gets a fast shutdown, the rest SIGTERM.
    # (A restarted service, if the test above ran first, carries it too.)
    assert survivors(children, within=30.0) == [], "processes outlived a SIGKILLed supervisor"


@pytest.mark.dev_stack(5)
def test_a_service_that_cannot_start_stops_the_stack_with_its_name(dev_stack: SharedStack, monkeypatch):
    # On a data folder a stack has used: no initdb, every migration done; the failure is the same.
    data_dir = dev_stack.data_dir_at_rest()
    monkeypatch.setenv("LEDGER_CHAIN_BATCH_SIZE", "0")  # read by the ledger only, refused by its settings
    proc = start(data_dir, free_ports())
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode != 0, out
    assert "ledger exited with code" in out, out
    assert "Stop: Ctrl-C" not in out  # never came up


def test_a_process_that_keeps_crashing_stops_the_stack_with_its_name(tmp_path, capsys):
    from svckit.devstack import supervisor

    stack = supervisor.Stack(tmp_path, echo_logs=False)
    starts = []

    def start() -> None:
        starts.append(subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"]))

    start()
    unit = supervisor.Watched(
        "flaky", lambda: starts[-1], start, backoff=supervisor.Backoff(first_delay=0.01, max_crashes=3)
    )
    assert stack.supervise([unit]) == 1
    printed = capsys.readouterr().err
    assert len(starts) == 3  # the first start and two restarts, then it gave up
    assert "flaky exited with code 3; restarting it in" in printed
    assert "flaky restarted (restart 2" in printed
    assert "flaky exited with code 3; it crashed 3 times within" in printed
    assert "stopping everything" in printed


def test_restart_delays_double_up_to_a_cap_and_start_over_after_a_stable_run():
    from svckit.devstack.supervisor import Backoff

    backoff = Backoff(first_delay=1, max_delay=5, stable_after=60, max_crashes=100, window=120)
    delays = [backoff.crashed(now=float(t), up_for=1) for t in range(5)]
    assert delays == [1, 2, 4, 5, 5]
    assert backoff.crashed(now=200.0, up_for=90) == 1  # it had stayed up: back to the first delay
    assert backoff.restarts == 6

    looping = Backoff(first_delay=1, max_crashes=3, window=120)
    assert looping.crashed(now=0.0, up_for=1) is not None
    assert looping.crashed(now=10.0, up_for=1) is not None
    assert looping.crashed(now=20.0, up_for=1) is None  # third crash within the window: give up
    spaced = Backoff(first_delay=1, max_crashes=3, window=120)
    assert all(spaced.crashed(now=t * 100.0, up_for=1) is not None for t in range(5))


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
        standby=None,
        valkey=None,
        valkey_cluster=None,
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


def test_the_simulator_gateway_and_payment_service_share_the_webhook_secret():
    from svckit.devstack.supervisor import plan_children

    secret = "whsec_" + "d" * 48
    env = {child.name: child.env for child in plan_children("", secret)}
    assert env["psp-sim"]["PSP_SIM_WEBHOOK_SECRET"] == secret
    assert env["gateway"]["GATEWAY_STRIPE_WEBHOOK_SECRET"] == secret
    assert env["payment"]["PAYMENT_PSP_WEBHOOK_SECRETS"] == secret


def test_the_status_page_secret_is_kept_in_the_data_folder_for_the_gateway(monkeypatch, tmp_path):
    from svckit.devstack import supervisor

    monkeypatch.delenv("GATEWAY_STATUS_PAGE_SECRET", raising=False)
    first = supervisor.dev_status_page_secret(tmp_path)
    assert len(first) >= 32 and supervisor.dev_status_page_secret(tmp_path) == first  # the next start
    assert (tmp_path / "dev_status_page_secret").stat().st_mode & 0o077 == 0
    gateway = next(c for c in supervisor.plan_children(status_page_secret=first) if c.name == "gateway")
    assert gateway.env["GATEWAY_STATUS_PAGE_SECRET"] == first


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
