"""A service process stops cleanly on SIGTERM: health flips to NOT_SERVING, exit code 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

from sqlalchemy.ext.asyncio import create_async_engine
from structlog.testing import capture_logs

from svckit import runtime
from svckit.config import ServiceSettings
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


async def test_a_background_job_that_ignores_its_cancellation_cannot_hold_a_stop(monkeypatch):
    monkeypatch.setattr(runtime, "TASK_STOP_SECONDS", 0.3)

    async def stubborn() -> None:
        for _ in range(2):  # the bug guarded against: a job that swallows its first cancellation
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(60)

    async def polite() -> None:
        await asyncio.sleep(60)

    stopped: list[str] = []

    async def hook() -> None:
        stopped.append("hook")

    engine = create_async_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connects
    handle = runtime.ServiceHandle(
        settings=ServiceSettings(), engine=engine, server=cast(Any, None), on_stop=[hook]
    )
    handle.tasks += [
        asyncio.create_task(stubborn(), name="stubborn"),
        asyncio.create_task(polite(), name="polite"),
    ]
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await asyncio.wait_for(handle.close_resources(), timeout=10)
    assert stopped == ["hook"]  # the rest of the stop ran
    # Only this stop's own lines: the capture is process-wide, and other services of the same test
    # worker may log errors meanwhile.
    [error] = [e for e in logs if e["log_level"] == "error" and e.get("task") in ("stubborn", "polite")]
    assert error["task"] == "stubborn" and "stubborn" in error["awaiting"]
    handle.tasks[0].cancel()  # the second cancellation ends it
    await asyncio.wait(handle.tasks[:1], timeout=5)
