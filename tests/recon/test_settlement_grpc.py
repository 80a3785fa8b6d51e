"""The settlement RPCs of recon.v1.ReconService, called as the operator over mutual TLS."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest

from svckit.gen.recon.v1 import recon_service_pb2 as rpb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as rpb_grpc
from svckit.grpc_errors import error_info

HEADER = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id"


def _md() -> list[tuple[str, str]]:
    return [("idempotency-key", uuid.uuid4().hex)]


def _strangers(n: int) -> bytes:
    tag = uuid.uuid4().hex[:10]
    rows = [
        f"txn_{tag}{i},2026-11-20 10:00:00,usd,{i + 1}.00,0.00,{i + 1}.00,charge,ch_{tag}{i}"
        for i in range(n)
    ]
    return ("\n".join([HEADER, *rows]) + "\n").encode()


async def test_upload_list_and_work_the_queue_over_grpc(operator_channels):
    stub = rpb_grpc.ReconServiceStub(operator_channels["recon"])
    started = (
        await stub.StartSettlementRun(rpb.StartSettlementRunRequest(file_content=_strangers(3)))
    ).report
    assert (started.state, started.rows_read, dict(started.open_by_classification)) == (
        "SUCCEEDED",
        3,
        {"unclassified": 3},
    )
    assert json.loads(started.report_json)["psp_totals"] == {
        "USD:charge": {"gross": 600, "fee": 0, "net": 600, "rows": 3}
    }
    again = (await stub.GetSettlementRun(rpb.GetSettlementRunRequest(run_id=started.run_id))).report
    assert (again.run_id, again.state, again.rows_read) == (started.run_id, "SUCCEEDED", 3)

    first = await stub.ListMismatches(rpb.ListMismatchesRequest(run_id=started.run_id, page_size=2))
    rest = await stub.ListMismatches(
        rpb.ListMismatchesRequest(run_id=started.run_id, page_size=2, page_token=first.next_page_token)
    )
    mismatches = [*first.mismatches, *rest.mismatches]
    assert [m.amount_minor for m in mismatches] == [100, 200, 300]
    assert {m.code for m in mismatches} == {"UNMATCHED_ROW"} and not rest.next_page_token

    ids = [m.mismatch_id for m in mismatches]
    await stub.AssignMismatch(
        rpb.AssignMismatchRequest(mismatch_id=ids[0], assignee="ada", actor="op"), metadata=_md()
    )
    await stub.AnnotateMismatch(
        rpb.AnnotateMismatchRequest(mismatch_id=ids[0], note="checked", actor="op"), metadata=_md()
    )
    key = _md()
    request = rpb.ResolveMismatchesRequest(
        mismatch_ids=ids[:2], resolution_code="written_off", reason="test", actor="op"
    )
    assert (await stub.ResolveMismatches(request, metadata=key)).resolved == 2
    assert (await stub.ResolveMismatches(request, metadata=key)).resolved == 2  # a retry answers the same
    still_open = await stub.ListMismatches(rpb.ListMismatchesRequest(run_id=started.run_id, state="open"))
    assert [m.mismatch_id for m in still_open.mismatches] == ids[2:]
    resolved = await stub.ListMismatches(rpb.ListMismatchesRequest(run_id=started.run_id, state="resolved"))
    assert {(m.assignee, m.resolution_code) for m in resolved.mismatches} == {
        ("ada", "written_off"),
        ("", "written_off"),
    }


@pytest.mark.parametrize(
    ("request_", "code", "reason"),
    [
        (rpb.StartSettlementRunRequest(), grpc.StatusCode.INVALID_ARGUMENT, "MISSING_FIELD"),
        (
            rpb.StartSettlementRunRequest(date="20/11/2026"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FILTER",
        ),
    ],
)
async def test_bad_start_requests_are_refused(operator_channels, request_, code, reason):
    stub = rpb_grpc.ReconServiceStub(operator_channels["recon"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.StartSettlementRun(request_)
    assert (err.value.code(), error_info(err.value).reason) == (code, reason)


async def test_a_refused_file_fails_the_run_and_unknown_runs_are_not_found(operator_channels):
    stub = rpb_grpc.ReconServiceStub(operator_channels["recon"])
    report = (
        await stub.StartSettlementRun(rpb.StartSettlementRunRequest(file_content=b"\x00garbage"))
    ).report
    assert report.state == "FAILED" and "not a balance_change_from_activity" in report.error
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetSettlementRun(rpb.GetSettlementRunRequest(run_id="rr_nope"))
    assert error_info(err.value).reason == "RUN_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ResolveMismatches(
            rpb.ResolveMismatchesRequest(
                mismatch_ids=["mm_x"], resolution_code="written_off", reason="r", actor=""
            ),
            metadata=_md(),
        )
    assert error_info(err.value).reason == "MISSING_FIELD"
