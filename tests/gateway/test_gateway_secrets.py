"""No caller's key, password or card number in the gateway's logs or error answers, even on a 500."""

from __future__ import annotations

import grpc
import pytest

from gateway.clients import Upstreams
from svckit.logging import configure_logging
from tests.conftest import configure_test_logging

ORDER_URL = "/v1/payments/po_secrets_1"


class _Raising:
    """A stub whose every RPC raises ``exc`` (an unexpected bug, or an upstream error with chatty text)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __getattr__(self, _name: str):
        def method(_request, timeout=None):
            raise self.exc

        return method


def _upstreams(exc: BaseException) -> Upstreams:
    stub = _Raising(exc)
    return Upstreams(channels={}, payment=stub, payouts=stub, ledger=stub, wallet=stub, recon=stub)  # type: ignore[arg-type]  # one _Raising stands in for every service's stub


def _pieces(secret: str, width: int = 12) -> list[str]:
    """Every run of ``width`` characters of ``secret``: none of them may show."""
    return [secret[i : i + width] for i in range(len(secret) - width + 1)]


@pytest.mark.parametrize("fmt", ["console", "json"])
async def test_a_500_logs_neither_the_key_nor_local_variables(start_gateway, keys, capsys, fmt):
    gw = await start_gateway(upstreams=_upstreams(RuntimeError("unexpected bug in a route")))
    _, key = await keys.make("payments")
    configure_logging("gateway-test", "INFO", fmt)
    try:
        async with gw.client(key) as client:
            resp = await client.get(ORDER_URL, headers={"Cookie": "session=s3ss10nc00k1e"})
        out = capsys.readouterr().err
    finally:
        with capsys.disabled():
            configure_test_logging()
    assert resp.status_code == 500 and resp.json()["code"] == "INTERNAL"
    assert "unexpected bug in a route" in out and "RuntimeError" in out  # the traceback is there
    assert "locals" not in out
    for piece in _pieces(key):
        assert piece not in out
    assert "s3ss10nc00k1e" not in out


async def test_an_upstream_error_text_with_secrets_reaches_no_answer_and_no_log(
    start_gateway, client_key, capsys
):
    chatty = grpc.aio.AioRpcError(
        grpc.StatusCode.INTERNAL,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details="could not connect to postgresql://app:hunter2pw@db:5432/payments with "
        f"Bearer {client_key}, card 4242 4242 4242 4242, psp key sk_live_abcdef123456",
    )
    gw = await start_gateway(upstreams=_upstreams(chatty))
    configure_logging("gateway-test", "INFO", "json")
    try:
        async with gw.client(client_key) as client:
            resp = await client.get(ORDER_URL)
        out = capsys.readouterr().err
    finally:
        with capsys.disabled():
            configure_test_logging()
    assert resp.status_code == 500
    body = resp.text
    assert resp.json()["code"] == "UPSTREAM_ERROR"
    assert "could not connect to postgresql://app:" in body  # the useful part stays
    for text in (body, out):
        assert "hunter2pw" not in text
        assert "4242 4242 4242 4242" not in text
        assert "sk_live_abcdef123456" not in text
        for piece in _pieces(client_key):
            assert piece not in text
    assert "…4242" in body
