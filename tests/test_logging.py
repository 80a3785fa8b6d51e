"""Logging renders exceptions in both formats instead of crashing the caller, and never a secret."""

from __future__ import annotations

import json
import logging

import pytest

from svckit.logging import configure_logging, get_logger
from tests.conftest import configure_test_logging

API_KEY = "mpk_" + "Zq8" * 14 + "x"
SECRETS = {
    "api key": API_KEY,
    "webhook secret": "whsec_" + "9f" * 16,
    "psp secret key": "sk_test_" + "51Hx" * 6,
    "psp live key": "sk_live_" + "51Hx" * 6,
    "psp restricted key": "rk_live_" + "51Hx" * 6,
    "client secret": "pi_3PqR5tUvWx_secret_" + "Kd93" * 5,
    "database password": "postgresql://app:Pa55w0rdXY@db:5432/payments",
    "redis password": "redis://:Pa55w0rdXY@cache:6379/0",
    "authorization header": "{'authorization': 'Bearer garbage-not-a-key-9x'}",
    "cookie header": "Cookie: session=c00k1e5ess10n",
    "password pair": "login failed for password=Pa55w0rdXY",
    "card number": "4242424242424242",
    "spaced card number": "4000 0566 5566 5556",
    "amex number": "3782-822463-10005",
}
"""What each secret looks like in text, and the part of it that must not survive."""
MUST_GO = {
    "database password": "Pa55w0rdXY",
    "redis password": "Pa55w0rdXY",
    "authorization header": "garbage-not-a-key-9x",
    "cookie header": "c00k1e5ess10n",
    "password pair": "Pa55w0rdXY",
    "client secret": "Kd93Kd93",
}
KEPT = ["pi_123", "po_order_77", "chk_5f2a", "1234567890123456", "2026-12-06T01:02:03Z"]
"""Ordinary ids, a 16-digit number that fails the Luhn check (an idempotency hash), a time."""


@pytest.fixture
def log_output(capsys):
    """Reconfigure logging onto capsys in the format asked; back to the session's logging afterwards."""

    def start(fmt: str):
        configure_logging("logtest", "INFO", fmt)
        return lambda: capsys.readouterr().err

    yield start
    # Back to the real stderr: capsys closes its stream after the test, and a logger left
    # writing to it breaks every later test that logs.
    with capsys.disabled():
        configure_test_logging()


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_log_exception_renders_in_every_format(fmt, log_output):
    read = log_output(fmt)
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("t").exception("handler failed", order="po_1")
    err = read()
    assert "handler failed" in err
    assert "ValueError" in err
    if fmt == "json":
        line = json.loads(err.strip().splitlines()[-1])
        assert line["order"] == "po_1"
        assert line["service"] == "logtest"


def _raise_holding_a_key(secret: str) -> None:
    headers = {"authorization": f"Bearer {secret}"}  # noqa: F841 - the local a traceback must not show
    raise RuntimeError("request failed")


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_tracebacks_carry_no_local_variables(fmt, log_output):
    read = log_output(fmt)
    try:
        _raise_holding_a_key(API_KEY)
    except RuntimeError:
        get_logger("t").exception("handler failed")
    err = read()
    assert "_raise_holding_a_key" in err and "request failed" in err
    assert API_KEY[4:20] not in err
    assert "locals" not in err


@pytest.mark.parametrize("fmt", ["console", "json"])
@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_secret_kind_is_redacted_in_events_exceptions_and_nested_values(kind, fmt, log_output):
    secret = SECRETS[kind]
    gone = MUST_GO.get(kind, secret)
    read = log_output(fmt)
    log = get_logger("t")
    log.info(f"saw {secret}", detail=f"value: {secret}", nested={"a": [{"b": secret}], "kept": KEPT})
    try:
        raise ValueError(f"could not use {secret}")
    except ValueError as exc:
        log.exception("failed", error=repr(exc))
    logging.getLogger("some.library").warning("library says %s", secret)
    err = read()
    assert "could not use" in err and "library says" in err
    assert gone not in err
    assert "[REDACTED:" in err
    for ordinary in KEPT:
        assert ordinary in err


def test_card_numbers_keep_only_their_last_four_digits(log_output):
    read = log_output("json")
    get_logger("t").info("charge", card="4242424242424242", as_int=5555555555554444)
    line = json.loads(read().strip().splitlines()[-1])
    assert line["card"].endswith("4242") and "424242424242" not in line["card"]
    assert "5555555555554444" not in json.dumps(line)


def test_values_under_secret_names_are_dropped_whole(log_output):
    read = log_output("json")
    get_logger("t").info("headers", authorization="whatever-it-is", headers={"Stripe-Signature": "t=1,v1=ab"})
    line = json.loads(read().strip().splitlines()[-1])
    assert "whatever-it-is" not in json.dumps(line) and "v1=ab" not in json.dumps(line)


def test_the_psp_simulators_plain_logging_is_redacted_too():
    import io

    from svckit.redaction import RedactingFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(message)s"))
    logger = logging.getLogger("psp_sim.test-redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise ValueError("card[number]=4242424242424242&key=sk_test_" + "51Hx" * 6)
        except ValueError:
            logger.exception("handler failed: %s", "POST /v1/payment_methods")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "handler failed: POST /v1/payment_methods" in out and "ValueError" in out
    assert "4242424242424242" not in out and "51Hx51Hx" not in out
    assert "…4242" in out
