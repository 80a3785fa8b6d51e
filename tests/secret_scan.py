"""pytest plugin: after a test session, look for the session's secrets in everything it wrote.

The session knows its secrets (the test API keys, webhook secrets, the PSP API key, the test card
numbers) and registers the ones made at run time (:func:`register`). At the end it scans:

- every log line of the session (``configure_test_logging`` copies them to ``session.log``);
- the test databases, table by table as text, and every Valkey key, before ``Infra`` drops them;
- the files under Infra's temporary directory (PostgreSQL and Valkey data and logs) and pytest's
  temporary directories (logs of stacks started by tests, ...).

Besides the exact secrets it looks for anything shaped like a live secret (an ``mpk_`` key, a
``whsec_`` secret, a ``sk_live_`` key, a PaymentIntent client secret). Anything found fails the session
(exit 1) with where it was found and what kind of secret, never the secret itself. Under xdist each
worker scans what it wrote and sends its findings to the controller, which fails the run.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

ALLOWED_FILES = frozenset({"dev_api_key", "dev_webhook_secret", "dev_status_page_secret"})
"""Files that exist to hold a secret (the dev stack's key, webhook and status-page secrets, mode 0600)."""

SHAPES = {
    "api_key": rb"mpk_[A-Za-z0-9_-]{30,}",
    "webhook_secret": rb"whsec_[A-Za-z0-9]{16,}",
    "psp_live_key": rb"(?:sk|rk)_live_[A-Za-z0-9]{4,}",
    "client_secret": rb"_secret_[A-Za-z0-9]{4,}",
}
"""Secrets the scanner finds without being told them (keys made by tests, simulator client secrets).

Each starts with a literal, which the regex engine searches for at memchr speed: the PostgreSQL data
directory alone is tens of megabytes.
"""
_SHAPES = {name: re.compile(body) for name, body in SHAPES.items()}
_CLIENT_SECRET_ID = re.compile(rb"(?:^|[^A-Za-z0-9_])(?:pi|seti)_[A-Za-z0-9]+$")
"""What must come right before ``_secret_`` in a PaymentIntent/SetupIntent client secret."""

_MAX_FILE_BYTES = 256 * 1024 * 1024
_PREFIX = 8
"""Known secrets are searched for by their first bytes first."""


@dataclass(frozen=True)
class Finding:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.what} in {self.where}"


class SecretScanner:
    """Finds known secrets and secret-shaped strings in text, bytes, files, databases and Valkey."""

    def __init__(self, known: dict[str, str] | None = None) -> None:
        self.known: dict[str, bytes] = {}
        self._by_prefix: dict[bytes, list[tuple[str, bytes]]] = {}
        for label, value in (known or {}).items():
            self.add(label, value)

    def add(self, label: str, value: str) -> None:
        secret = value.encode()
        if secret and secret not in self.known.values():
            self.known[label] = secret
            self._by_prefix.setdefault(secret[:_PREFIX], []).append((label, secret))

    def scan_bytes(self, where: str, data: bytes) -> list[Finding]:
        # One substring search per known prefix (C speed), each secret only where its prefix occurs (the
        # test cards share a few: a session's WAL is searched in a third of the passes); then the shapes.
        found = {
            label: Finding(where, label)
            for prefix, group in self._by_prefix.items()
            if prefix in data
            for label, secret in group
            if secret in data
        }
        known = set(self.known.values())
        for name, pattern in _SHAPES.items():
            for match in pattern.finditer(data):
                if name == "client_secret" and not _CLIENT_SECRET_ID.search(
                    data, max(0, match.start() - 64), match.start()
                ):
                    continue
                if match.group() not in known:
                    found.setdefault(name, Finding(where, name))
                    break
        return list(found.values())

    def scan_text(self, where: str, text: str) -> list[Finding]:
        return self.scan_bytes(where, text.encode("utf-8", "replace"))

    def scan_tree(self, root: Path, skip: Iterable[Path] = ()) -> list[Finding]:
        """Every file below ``root`` except those below a folder in ``skip``."""
        skipped = tuple(skip)
        found: list[Finding] = []
        for path in sorted(_files(root)):
            if path.name in ALLOWED_FILES or any(path.is_relative_to(folder) for folder in skipped):
                continue
            try:
                with path.open("rb") as fh:
                    data = fh.read(_MAX_FILE_BYTES)
            except OSError:
                continue  # a socket, or removed while we walked
            found += self.scan_bytes(str(path), data)
        return found

    def scan_postgres(self, url: str, database: str) -> list[Finding]:
        """Every row of every table of ``database``, as text (bytea as raw bytes)."""
        import psycopg
        from psycopg import sql

        found: list[Finding] = []
        try:
            conn = psycopg.connect(url.replace("+psycopg", ""), autocommit=True)
        except psycopg.OperationalError:
            return found  # dropped by a test already
        with conn:
            tables = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
                " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
            for schema, table in tables:
                query = sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
                chunks = [_as_bytes(v) for row in conn.execute(query) for v in row]
                found += self.scan_bytes(f"postgres {database}.{schema}.{table}", b"\n".join(chunks))
        return found

    def scan_valkey(self, url: str) -> list[Finding]:
        """Every key and value in the Valkey/Redis database at ``url``."""
        import redis

        found: list[Finding] = []
        client = redis.Redis.from_url(url)
        try:
            for key in client.scan_iter(count=500):
                kind = cast(bytes, client.type(key)).decode()  # no decode_responses: replies are bytes
                value: Any
                if kind == "string":
                    value = client.get(key)
                elif kind == "hash":
                    value = client.hgetall(key)
                elif kind == "list":
                    value = client.lrange(key, 0, -1)
                elif kind == "set":
                    value = client.smembers(key)
                elif kind == "zset":
                    value = client.zrange(key, 0, -1)
                elif kind == "stream":
                    value = client.xrange(key)
                else:
                    value = b""
                found += self.scan_bytes(f"valkey key {key.decode(errors='replace')}", key + _as_bytes(value))
        finally:
            client.close()
        return found


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                yield path


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        return b"\n".join(_as_bytes(k) + b"=" + _as_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return b"\n".join(_as_bytes(v) for v in value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return json.dumps(value, default=str).encode()


def session_secrets() -> dict[str, str]:
    """The secrets every test session uses, by label."""
    from psp_sim.cards import CARDS, TEST_PAYMENT_METHODS
    from psp_sim.testing import DEFAULT_API_KEY
    from tests.credentials import GATEWAY_TEST_KEY, WEBHOOK_SECRET

    known = {
        "GATEWAY_TEST_KEY": GATEWAY_TEST_KEY,
        "tests' WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PSP DEFAULT_API_KEY": DEFAULT_API_KEY,
    }
    for number in sorted({*CARDS, *TEST_PAYMENT_METHODS.values()}):
        known[f"test card …{number[-4:]}"] = number
    return known


# ------------------------------------------------------------------------------------------ plugin

_STATE: dict[str, Any] = {"scanner": None, "findings": [], "log": None}


def register(label: str, secret: str) -> None:
    """Tell the scan about a secret made at run time (a generated key, the simulator's webhook secret)."""
    scanner: SecretScanner | None = _STATE["scanner"]
    if scanner is not None:
        scanner.add(label, secret)


def session_log_path() -> Path | None:
    return _STATE["log"]


def scan_infra(infra: Any) -> None:
    """Scan the session's databases, Valkey and Infra's data directory; call before ``infra.stop()``."""
    scanner: SecretScanner | None = _STATE["scanner"]
    if scanner is None:
        return
    found: list[Finding] = []
    for name in list(infra._databases):
        found += scanner.scan_postgres(infra.database_url_for(name), name)
    found += scanner.scan_valkey(infra.redis_url)
    if infra._tmp is not None:
        # Not the server's table files: every row in them was just read through SQL above (values
        # decompressed), and every row version ever written, deleted ones included, is in the WAL,
        # which is scanned as a file.
        found += scanner.scan_tree(infra._tmp, skip=[infra._tmp / "pg" / "base"])
    _STATE["findings"].extend(found)


def _scan_enabled(config: pytest.Config) -> bool:
    # A `--collect-only` run writes nothing worth scanning.
    return not config.option.collectonly


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not _scan_enabled(config) or _is_controller(config):
        return
    _STATE["scanner"] = SecretScanner(session_secrets())
    _STATE["findings"] = []


def _is_controller(config: pytest.Config) -> bool:
    """The xdist controller runs no tests; its workers scan."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _STATE["scanner"] is None:
        return
    base = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # set by pytest's tmp_path plugin, undeclared on Config
    _STATE["log"] = base / "session.log"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    scanner: SecretScanner | None = _STATE["scanner"]
    findings: list[Finding] = list(_STATE["findings"])
    if scanner is not None:
        base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # set by pytest's tmp_path plugin, undeclared on Config
        findings += scanner.scan_tree(base)
    if hasattr(config, "workerinput"):
        config.workeroutput["secret_findings"] = [str(f) for f in findings]  # type: ignore[attr-defined]  # set by xdist on a worker's Config
        findings = []
    findings_text = [str(f) for f in findings] + _STATE.setdefault("from_workers", [])
    _STATE["report"] = findings_text
    if findings_text:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)  # an xdist hook: unknown (and never called) without xdist
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: collect what each worker found."""
    found = getattr(node, "workeroutput", {}).get("secret_findings") or []
    worker = getattr(node, "workerinput", {}).get("workerid") or getattr(node.gateway, "id", "?")
    _STATE.setdefault("from_workers", []).extend(f"{f} (worker {worker})" for f in found)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    report: list[str] = _STATE.get("report") or []
    if not report:
        return
    terminalreporter.section("secrets found in what the session wrote", sep="=", red=True, bold=True)
    for line in report:
        terminalreporter.write_line(f"  {line}")


def scan_paths(scanner: SecretScanner, paths: Iterable[Path]) -> list[Finding]:
    """Scan files and directories (for tests of the scanner and for ad-hoc use)."""
    found: list[Finding] = []
    for path in paths:
        found += (
            scanner.scan_tree(path) if path.is_dir() else scanner.scan_bytes(str(path), path.read_bytes())
        )
    return found
