"""Helpers of the ledger tests: request builders and a ledger server in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from svckit.devstack.infra import free_port
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.testing import Infra

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LedgerProcess:
    """A ledger server in its own process on its own database."""

    address: str
    database_url: str
    proc: subprocess.Popen

    def connect(self) -> psycopg.Connection:
        """A plain (superuser) connection to the server's database, autocommit."""
        return psycopg.connect(self.database_url, autocommit=True)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def start_ledger_process(infra: Infra, pool_size: int = 10) -> LedgerProcess:
    name = f"{infra.prefix}_ledger_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": infra.database_url,
        "LEDGER_DATABASE_NAME": name,
        "LEDGER_GRPC_PORT": str(port),
        "LEDGER_METRICS_PORT": "0",
        "LEDGER_DB_POOL_SIZE": str(pool_size),
        "LEDGER_LOG_LEVEL": "WARNING",
        "LEDGER_LOG_FORMAT": "console",
        "LEDGER_SHUTDOWN_GRACE_SECONDS": "0.5",
        **infra.tls_env("ledger"),
    }
    proc = subprocess.Popen([sys.executable, "-m", "ledger_svc", "serve"], cwd=ROOT, env=env)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    with infra.sync_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ledger process exited with {proc.returncode}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)  # type: ignore[attr-defined]  # the stub declares no methods
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError("ledger process did not become healthy")
            time.sleep(0.1)
    return LedgerProcess(address, infra.database_url_for(name), proc)


def md(key: str | None = None) -> list[tuple[str, str]]:
    key = key or uuid.uuid4().hex
    return [("idempotency-key", key), ("x-request-id", f"req_{key}")]


def uid() -> str:
    return uuid.uuid4().hex[:10]


D, C = pb.DIRECTION_DEBIT, pb.DIRECTION_CREDIT


def entry(account: str, direction: pb.Direction, amount: int, currency: str = "USD") -> pb.Entry:
    return pb.Entry(account=account, direction=direction, amount_minor=amount, currency=currency)


def transfer(debit: str, credit: str, amount: int, currency: str = "USD", **kw) -> pb.PostTransactionRequest:
    """A two-entry posting: debit one account, credit another."""
    return pb.PostTransactionRequest(
        entries=[entry(debit, D, amount, currency), entry(credit, C, amount, currency)], **kw
    )
