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


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_tracebacks_carry_no_local_variables(fmt, capsys):
    """Locals hold secrets (a webhook secret passed to the verifier, a presented API key), and rendering
    the locals of a deep stack took seconds of CPU on the event loop, stalling every other request."""
    configure_logging("logtest", "INFO", fmt)
    try:

        def verify(secret: str) -> None:
            raise ValueError("signature mismatch")

        secret = "whsec_" + "s3cr3t" * 5
        try:
            verify(secret)
        except ValueError:
            get_logger("t").exception("verification failed")
        err = capsys.readouterr().err
        assert "signature mismatch" in err and "verify" in err  # the traceback is there
        assert "s3cr3t" not in err
    finally:
        with capsys.disabled():
            configure_logging("tests", "INFO", "console")
