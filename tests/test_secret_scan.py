"""The end-of-session secret scan finds what it must, says where, and never prints the secret."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.secret_scan import SecretScanner, scan_paths

PLANTED = "mpk_" + "P1anted" * 6 + "q"
UNSHAPED = "planted-for-the-scanner-test-7Yq2"
"""Known only to the scanner made in a test, so the session's own scan does not report it."""


@pytest.fixture
def planted(tmp_path):
    """A directory for files holding planted secrets, removed before the session's own scan."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_the_scanner_reports_a_planted_key_in_a_log_and_a_file(planted):
    tmp_path = planted
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "gateway.log").write_text(f"2026-12-06 info http authorization=Bearer {PLANTED}\n")
    (tmp_path / "data.bin").write_bytes(b"\x00\x01" + b"4242424242424242" + b"\xff")
    (tmp_path / "clean.log").write_text("nothing to see: pi_123 po_1 1234567890123456\n")
    scanner = SecretScanner({"test key": PLANTED, "test card 4242": "4242424242424242"})
    found = scan_paths(scanner, [tmp_path])
    assert {(f.where.rsplit("/", 1)[-1], f.what) for f in found} == {
        ("gateway.log", "test key"),
        ("data.bin", "test card 4242"),
    }
    assert all(PLANTED not in str(f) and "4242424242424242" not in str(f) for f in found)


def test_the_scanner_finds_secret_shapes_it_was_not_told(planted):
    tmp_path = planted
    (tmp_path / "x.log").write_text(
        "mpk_" + "a" * 43 + " whsec_" + "b" * 20 + " sk_live_" + "c" * 10 + " pi_1Ab_secret_Zz9q\n"
    )
    found = scan_paths(SecretScanner(), [tmp_path])
    assert sorted(f.what for f in found) == ["api_key", "client_secret", "psp_live_key", "webhook_secret"]


def test_files_meant_to_hold_a_secret_are_not_reported(planted):
    tmp_path = planted
    (tmp_path / "dev_api_key").write_text(PLANTED)
    assert scan_paths(SecretScanner({"k": PLANTED}), [tmp_path]) == []


async def test_the_scanner_reads_database_rows_and_valkey_values(infra):
    import psycopg
    import redis

    from svckit.db import ensure_database

    scanner = SecretScanner({"test key": UNSHAPED})
    name = f"{infra.prefix}_scan"
    infra._databases.append(name)  # dropped with the session's others
    url = infra.database_url_for(name)
    ensure_database(url)
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, note text, blob bytea)")
        conn.execute("INSERT INTO t VALUES (1, %s, %s)", ("ok", f"x{UNSHAPED}y".encode()))
    assert [f.what for f in scanner.scan_postgres(url, name)] == ["test key"]
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("TRUNCATE t")
    assert scanner.scan_postgres(url, name) == []
    client = redis.Redis.from_url(infra.redis_url)
    key = f"{infra.prefix}:scan-test"
    try:
        client.xadd(key, {"payload": f'{{"auth": "Bearer {UNSHAPED}"}}'})
        assert [f.what for f in scanner.scan_valkey(infra.redis_url) if key in f.where] == ["test key"]
    finally:
        client.delete(key)
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-p", "xdist.plugin", "-n", "2"]], ids=["one process", "xdist"])
def test_a_session_that_wrote_a_secret_exits_non_zero(pytester: pytest.Pytester, monkeypatch, workers):
    """Under xdist the worker that wrote the file finds it and the controller's exit code says so."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    # Only the plugins the inner session needs: importing every installed one costs seconds per process.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(
        """
pytest_plugins = ["tests.secret_scan"]
"""
    )
    pytester.makepyfile(
        f"""
def test_leaks(tmp_path):
    (tmp_path / "app.log").write_text("Bearer {PLANTED}")
"""
    )
    try:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *workers, timeout=240)
        assert result.ret == 1
        result.stdout.fnmatch_lines(["*secrets found*", "*api_key in *app.log*"])
        assert PLANTED not in result.stdout.str()
    finally:
        shutil.rmtree(pytester.path, ignore_errors=True)


def test_a_tree_scan_leaves_out_only_the_folders_it_is_told_to(planted):
    (planted / "pg" / "base").mkdir(parents=True)
    (planted / "pg" / "pg_wal").mkdir()
    for folder in ("pg/base", "pg/pg_wal"):
        (planted / folder / "file").write_bytes(b"\x00" + PLANTED.encode() + b"\x00")
    scanner = SecretScanner({"test key": PLANTED})
    found = scanner.scan_tree(planted, skip=[planted / "pg" / "base"])
    assert [f.where.removeprefix(str(planted)) for f in found] == ["/pg/pg_wal/file"]
