"""Logging renders exceptions in both formats instead of crashing the caller."""

from __future__ import annotations

import json

import pytest

from svckit.logging import configure_logging, get_logger


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_log_exception_renders_in_every_format(fmt, capsys):
    configure_logging("logtest", "INFO", fmt)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            get_logger("t").exception("handler failed", order="po_1")
        err = capsys.readouterr().err
        assert "handler failed" in err
        assert "ValueError" in err
        if fmt == "json":
            line = json.loads(err.strip().splitlines()[-1])
            assert line["order"] == "po_1"
            assert line["service"] == "logtest"
    finally:
        # Back to the real stderr: capsys closes its stream after the test, and a logger left
        # writing to it breaks every later test that logs.
        with capsys.disabled():
            configure_logging("tests", "INFO", "console")
