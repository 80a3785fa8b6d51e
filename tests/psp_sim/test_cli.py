"""``python -m psp_sim serve`` as its own process: env configuration, request logs, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import stripe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_env_logs_and_stops_on_sigterm(tmp_path) -> None:
    port = _free_port()
    faults = tmp_path / "faults.toml"
    faults.write_text('seed = 5\n[[faults]]\nkind = "http_500"\ncount = 1\npath_prefix = "/v1/refunds"\n')
    env = dict(
        os.environ,
        PSP_SIM_PORT=str(port),
        PSP_SIM_WEBHOOK_URL="http://127.0.0.1:9/hooks",
        PSP_SIM_WEBHOOK_SECRET="whsec_cli",
        PSP_SIM_FAULTS_FILE=str(faults),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "psp_sim", "serve", "--seed", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"{base}/_sim/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.05)
        endpoints = httpx.get(f"{base}/_sim/webhook_endpoints").json()
        assert endpoints["data"][0]["url"] == "http://127.0.0.1:9/hooks"
        assert endpoints["data"][0]["secret_last4"] == "_cli"  # listed masked, never whole
        assert httpx.get(f"{base}/_sim/faults").json()["rules"][0]["kind"] == "http_500"
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": base})
        pi = client.v1.payment_intents.create(
            params={"amount": 100, "currency": "usd"}, options={"idempotency_key": "cli-1"}
        )
        assert pi.id.startswith("pi_")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err[-2000:]
    assert '{"event":"stop"' in err  # the lifespan shutdown ran
    lines = [json.loads(line) for line in err.splitlines() if line.startswith('{"event":"request"')]
    posted = [entry for entry in lines if entry["path"] == "/v1/payment_intents"]
    assert posted and posted[0]["method"] == "POST" and posted[0]["status"] == 200
    assert posted[0]["idempotency_key"] == "cli-1" and posted[0]["request_id"].startswith("req_")


def test_settlement_answers_bad_input_with_an_error_not_a_traceback(sim) -> None:
    from typer.testing import CliRunner

    from psp_sim.cli import app

    runner = CliRunner()
    cases = [
        (["--start", "2026-11-01", "--end", "2099-01-01", "--url", sim.base_url], "report refused"),
        (["--start", "2026-13-01", "--end", "2026-11-02", "--url", sim.base_url], "ISO date"),
        (
            ["--start", "2026-11-01", "--end", "2026-11-02", "--url", f"http://127.0.0.1:{_free_port()}"],
            "cannot reach",
        ),
    ]
    for args, expected in cases:
        result = runner.invoke(app, ["settlement", *args])
        assert result.exit_code == 2, (args, result.output)
        assert expected in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_make_run_keeps_the_simulator_state_in_its_data_folder(tmp_path) -> None:
    from svckit.devstack import supervisor

    stack = supervisor.Stack(tmp_path / "data", echo_logs=False)
    sim = next(c for c in stack.children if c.name == "psp-sim")
    assert sim.env["PSP_SIM_STATE"] == str(tmp_path / "data" / "psp_sim" / "state.sqlite3")
    # Planned without a data folder (as some tests do), the simulator keeps its state in memory.
    planned = next(c for c in supervisor.plan_children() if c.name == "psp-sim")
    assert "PSP_SIM_STATE" not in planned.env
