"""Starting without certificates: refused with the variables named, or plaintext only when asked for."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from gateway.config import GatewaySettings
from ledger_svc.config import LedgerSettings
from svckit import pki
from svckit.devstack.infra import free_port

ROOT = Path(__file__).resolve().parents[2]


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any TLS or plaintext switch, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if "TLS_" not in k and "GRPC_INSECURE" not in k}
    return {**env, **extra}


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_service_without_certificates_refuses_to_start_naming_the_variables():
    result = subprocess.run(
        [sys.executable, "-m", "ledger_svc", "serve"], cwd=ROOT, env=_clean_env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    for name in ("LEDGER_TLS_CA_FILE", "LEDGER_TLS_CERT_FILE", "LEDGER_TLS_KEY_FILE", "GRPC_INSECURE=true"):
        assert name in result.stderr


def test_a_missing_certificate_file_refuses_to_start(tmp_path):
    env = _clean_env(
        TLS_CA_FILE=str(tmp_path / "ca.crt"),
        TLS_CERT_FILE=str(tmp_path / "x.crt"),
        TLS_KEY_FILE=str(tmp_path / "x.key"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway"], cwd=ROOT, env={**env, "GATEWAY_ENVIRONMENT": "development"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"cannot read {tmp_path / 'ca.crt'}" in result.stderr


def test_shared_tls_variables_are_read_unprefixed_and_the_prefixed_ones_win(monkeypatch):
    monkeypatch.setenv("TLS_CA_FILE", "/shared/ca.crt")
    monkeypatch.setenv("TLS_CERT_FILE", "/shared/x.crt")
    monkeypatch.setenv("LEDGER_TLS_CERT_FILE", "/own/ledger.crt")
    monkeypatch.setenv("GRPC_INSECURE", "false")
    settings = LedgerSettings()
    assert settings.tls_ca_file == Path("/shared/ca.crt")
    assert settings.tls_cert_file == Path("/own/ledger.crt")
    assert settings.grpc_insecure is False


def test_grpc_insecure_serves_plaintext_with_a_loud_warning(infra):
    port = free_port()
    name = f"{infra.prefix}_ledger_plain"
    infra._databases.append(name)  # dropped with the session's other databases
    env = _clean_env(
        DATABASE_URL=infra.database_url, LEDGER_DATABASE_NAME=name, LEDGER_GRPC_PORT=str(port),
        GRPC_INSECURE="true", LOG_FORMAT="json",
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledger_svc", "serve"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # deliberately plaintext
            while True:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    break
                except grpc.RpcError:
                    assert proc.poll() is None, proc.stdout.read()
                    assert time.monotonic() < deadline, "plaintext ledger did not come up"
                    time.sleep(0.1)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        output = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "PLAINTEXT" in output and '"level": "warning"' in output


def test_gateway_https_files_come_in_pairs(tmp_path):
    (tmp_path / "c.crt").write_text("x")
    with pytest.raises(ValidationError, match="GATEWAY_HTTP_TLS_KEY_FILE"):
        GatewaySettings(environment="development", http_tls_cert_file=tmp_path / "c.crt", _env_file=None)


async def test_the_gateway_serves_https_when_given_a_certificate(infra, services):
    # Async: the session's services run on this event loop and must keep answering meanwhile.
    port = free_port()
    files = pki.files(infra.pki_dir, "gateway")
    env = _clean_env(
        **infra.tls_env("gateway"),
        DATABASE_URL=infra.database_url, REDIS_URL=infra.redis_url,
        GATEWAY_DATABASE_NAME=f"{infra.prefix}_gateway_https_{uuid.uuid4().hex[:6]}",
        GATEWAY_ENVIRONMENT="development", GATEWAY_HTTP_PORT=str(port),
        GATEWAY_HTTP_TLS_CERT_FILE=str(files.cert_file), GATEWAY_HTTP_TLS_KEY_FILE=str(files.key_file),
        GATEWAY_LEDGER_ADDR=services["ledger"].address, GATEWAY_PAYMENT_ADDR=services["payment"].address,
        GATEWAY_WALLET_ADDR=services["wallet"].address, GATEWAY_RECON_ADDR=services["recon"].address,
    )  # fmt: skip
    infra._databases.append(env["GATEWAY_DATABASE_NAME"])
    proc = _spawn(["-m", "gateway"], env)
    verify = ssl.create_default_context(cafile=str(files.ca_file))
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(verify=verify, timeout=2) as client:
            while True:
                try:
                    ready = await client.get(f"https://127.0.0.1:{port}/readyz")
                    break
                except httpx.HTTPError:
                    assert proc.poll() is None, proc.stdout.read()
                    assert time.monotonic() < deadline, "HTTPS gateway did not come up"
                    await asyncio.sleep(0.2)
        # Ready means it reached every service over mutual TLS as `gateway`.
        assert ready.status_code == 200, ready.text
        async with httpx.AsyncClient(timeout=2) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://127.0.0.1:{port}/healthz")  # no plain HTTP on the port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
