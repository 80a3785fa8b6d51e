"""svckit.grpc_errors.pages: every page of a listing RPC, the token of each answer sent with the next
request, and a failed call raised as its domain error."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from svckit.errors import Unavailable
from svckit.gen.payments.v1 import payment_service_pb2 as ppb
from svckit.grpc_errors import pages


async def test_each_page_is_asked_with_the_token_of_the_one_before():
    answers = {
        "": ppb.ListRefundsResponse(refunds=[ppb.Refund(refund_id="r1")], next_page_token="t1"),
        "t1": ppb.ListRefundsResponse(refunds=[ppb.Refund(refund_id="r2")], next_page_token="t2"),
        "t2": ppb.ListRefundsResponse(refunds=[ppb.Refund(refund_id="r3")]),
    }
    asked: list[tuple[str, float]] = []

    async def rpc(request: ppb.ListRefundsRequest, timeout: float) -> ppb.ListRefundsResponse:  # noqa: ASYNC109 (a gRPC stub's signature)
        asked.append((request.page_token, timeout))
        return answers[request.page_token]

    got = [
        r.refund_id
        async for page in pages(rpc, ppb.ListRefundsRequest(page_size=1), 2.5)
        for r in page.refunds
    ]

    assert got == ["r1", "r2", "r3"]
    assert asked == [("", 2.5), ("t1", 2.5), ("t2", 2.5)]


async def test_a_failed_call_is_raised_as_its_domain_error():
    async def rpc(request: Any, timeout: float) -> Any:  # noqa: ASYNC109 (a gRPC stub's signature)
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down"
        )

    with pytest.raises(Unavailable):
        async for _ in pages(rpc, ppb.ListRefundsRequest(), 1.0):
            pass
