"""A service process stops cleanly on SIGTERM: health flips to NOT_SERVING, exit code 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from svckit.devstack.infra import free_port
from svckit.healthcheck import check

ROOT = Path(__file__).resolve().parent.parent


def test_sigterm_drains_and_exits_zero(infra):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url,
        "RECON_DATABASE_NAME": f"{infra.prefix}_shutdown_recon",
        "RECON_GRPC_PORT": str(port),
        "LOG_FORMAT": "json",
        **infra.tls_env("recon"),
    }
    infra._databases.append(env["RECON_DATABASE_NAME"])  # dropped with the session's other databases
    proc = subprocess.Popen([sys.executable, "-m", "recon_svc"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not check("grpc", f"127.0.0.1:{port}", 0.5, security=infra.security("operator")):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "service did not become healthy"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        output = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert '"event": "shutting down"' in output
    assert '"event": "stopped"' in output
