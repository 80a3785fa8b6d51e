"""The console's reconciliation screens over HTTP: a run's report, the queue and its filters, a mismatch's
page, assign / annotate / resolve (one and ticked in bulk), each through recon's RPCs and audited; no page
or action without a session and its CSRF token; hostile strings shown escaped."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import grpc
import httpx
import pytest
from markupsafe import escape
from sqlalchemy import text

from svckit.devstack.infra import free_port
from svckit.gen.recon.v1 import recon_service_pb2 as rpb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as rpb_grpc
from svckit.grpc_errors import error_info
from tests.console.conftest import csrf_of, sign_in

HEADER = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id"
BASE = "/console/reconciliation"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def strangers(n: int) -> bytes:
    """A settlement file of ``n`` charges for nothing of ours: one open UNMATCHED_ROW mismatch each."""
    tag = uuid.uuid4().hex[:10]
    rows = [
        f"txn_{tag}{i},2026-11-20 10:00:00,usd,{i + 1}.00,0.00,{i + 1}.00,charge,ch_{tag}{i}"
        for i in range(n)
    ]
    return ("\n".join([HEADER, *rows]) + "\n").encode()


async def seeded_run(operator_channels, n: int) -> tuple[str, list[str]]:
    """A settlement run of an uploaded file (StartSettlementRun with its bytes); its mismatch ids."""
    stub = rpb_grpc.ReconServiceStub(operator_channels["recon"])
    report = (await stub.StartSettlementRun(rpb.StartSettlementRunRequest(file_content=strangers(n)))).report
    assert report.state == "SUCCEEDED"
    listed = await stub.ListMismatches(rpb.ListMismatchesRequest(run_id=report.run_id))
    return report.run_id, [m.mismatch_id for m in listed.mismatches]


async def _get(operator_channels, mismatch_id: str) -> rpb.GetMismatchResponse:
    stub = rpb_grpc.ReconServiceStub(operator_channels["recon"])
    return await stub.GetMismatch(rpb.GetMismatchRequest(mismatch_id=mismatch_id))


async def _post_pairs(http: httpx.AsyncClient, path: str, pairs: list[tuple[str, str]]) -> httpx.Response:
    """A form with a repeated name (ticked checkboxes), urlencoded as a browser sends it."""
    return await http.post(
        path, content=urlencode(pairs), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )


def _action_id(html: str) -> str:
    return html.split('name="action_id" value="')[1].split('"')[0]


async def test_a_runs_report_shows_counts_totals_and_its_mismatches(operator, operator_channels):
    run_id, ids = await seeded_run(operator_channels, 2)
    runs = await operator.http.get(BASE)
    assert runs.status_code == 200 and f"{BASE}/runs/{run_id}" in runs.text
    page = await operator.http.get(f"{BASE}/runs/{run_id}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "SUCCEEDED" in text and "USD:charge" in text and "3.00 USD" in text  # PSP gross 1.00 + 2.00
    assert "UNMATCHED_ROW</a>: 2" in text and "unclassified</a>: 2" in text
    queue = await operator.http.get(f"{BASE}/mismatches", params={"run_id": run_id})
    assert queue.status_code == 200 and all(f">{i}</a>" in queue.text for i in ids)
    assert (await operator.http.get(f"{BASE}/runs/run_nope")).status_code == 404


async def test_queue_filters_select_and_bad_ones_are_refused(operator, operator_channels):
    run_id, ids = await seeded_run(operator_channels, 3)  # amounts 1.00, 2.00, 3.00 USD
    q = {"run_id": run_id, "min_amount_minor": "200"}
    page = await operator.http.get(f"{BASE}/mismatches", params=q)
    assert [i in page.text for i in ids] == [False, True, True]
    page = await operator.http.get(f"{BASE}/mismatches", params={"run_id": run_id, "code": "AMOUNT_DIFFERS"})
    assert not any(i in page.text for i in ids) and "No mismatches match" in page.text
    page = await operator.http.get(f"{BASE}/mismatches", params={"run_id": run_id, "state": "resolved"})
    assert not any(i in page.text for i in ids)
    for bad in ({"state": "gone"}, {"classification": "x"}, {"code": "lower"}, {"min_amount_minor": "1.5"}):
        r = await operator.http.get(f"{BASE}/mismatches", params=bad)
        assert r.status_code == 400 and 'role="alert"' in r.text, bad


async def test_a_mismatch_is_assigned_annotated_and_resolved_with_a_reason(operator, operator_channels):
    _, [mismatch_id] = await seeded_run(operator_channels, 1)
    page = await operator.http.get(f"{BASE}/mismatches/{mismatch_id}")
    assert page.status_code == 200 and "Ours vs theirs" in page.text and "opened" in page.text
    csrf = csrf_of(page.text)
    url = f"{BASE}/mismatches/{mismatch_id}"
    r = await operator.http.post(f"{url}/assign", data={"csrf": csrf, "assignee": "ana"})
    assert r.status_code == 303, r.text
    r = await operator.http.post(f"{url}/annotate", data={"csrf": csrf, "note": "asked the PSP"})
    assert r.status_code == 303, r.text
    # No reason, or no valid code: refused, nothing changed.
    form = {"csrf": csrf, "action_id": _action_id(page.text), "resolution_code": "written_off"}
    r = await operator.http.post(f"{url}/resolve", data=form | {"note": " "})
    assert r.status_code == 400 and "Say why" in r.text
    r = await operator.http.post(f"{url}/resolve", data=form | {"resolution_code": "shrug", "note": "x"})
    assert r.status_code == 400 and "resolution code" in r.text
    assert (await _get(operator_channels, mismatch_id)).mismatch.state == "open"

    r = await operator.http.post(f"{url}/resolve", data=form | {"note": "a test charge of the PSP"})
    assert r.status_code == 303, r.text
    got = await _get(operator_channels, mismatch_id)
    actor = f"{operator.key_name} ({operator.key_id})"
    assert (got.mismatch.state, got.mismatch.resolution_code, got.mismatch.assignee) == (
        "resolved",
        "written_off",
        "ana",
    )
    assert [(a.actor, a.action, a.detail) for a in got.actions][1:] == [
        (actor, "assigned", "ana"),
        (actor, "noted", "asked the PSP"),
        (actor, "resolved:written_off", "a test charge of the PSP"),
    ]
    shown = (await operator.http.get(url)).text
    assert "recon.resolve" in shown and "resolution=written_off" in shown and "recon.assign" in shown
    assert 'action="/console/reconciliation/mismatches/' + mismatch_id + '/resolve"' not in shown
    # Resolved once: resolving again under a fresh key is the service's refusal, shown and audited.
    again = await operator.http.post(
        f"{url}/resolve", data=form | {"action_id": uuid.uuid4().hex, "note": "again"}
    )
    assert again.status_code == 409 and "MISMATCH_NOT_OPEN" in again.text
    audit = (await operator.http.get("/console/audit", params={"target": mismatch_id})).text
    assert "refused: resolution=written_off; MISMATCH_NOT_OPEN" in audit
    assert f'href="/console/reconciliation/mismatches/{mismatch_id}"' in audit  # linked to its page


async def test_ticked_mismatches_are_resolved_together_once(operator, operator_channels):
    run_id, ids = await seeded_run(operator_channels, 3)
    queue = await operator.http.get(f"{BASE}/mismatches", params={"run_id": run_id, "state": "open"})
    form = [("csrf", csrf_of(queue.text)), ("action_id", _action_id(queue.text)),
            ("back", f"{BASE}/mismatches?run_id={run_id}&state=open"),
            ("resolution_code", "false_positive"), ("note", "PSP test rows")]  # fmt: skip
    picked = [("mismatch_id", i) for i in ids[:2]]
    for _ in range(2):  # a double submit replays the first answer
        r = await _post_pairs(operator.http, f"{BASE}/mismatches/resolve", form + picked)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == f"{BASE}/mismatches?run_id={run_id}&state=open&done=2"
    states = [(await _get(operator_channels, i)).mismatch.state for i in ids]
    assert states == ["resolved", "resolved", "open"]
    # All or none: one of the ticked is no longer open, so the other stays open too.
    mixed = [("mismatch_id", ids[0]), ("mismatch_id", ids[2])]
    form[1] = ("action_id", uuid.uuid4().hex)
    r = await _post_pairs(operator.http, f"{BASE}/mismatches/resolve", form + mixed)
    assert r.status_code == 409 and "MISMATCH_NOT_OPEN" in r.text
    assert (await _get(operator_channels, ids[2])).mismatch.state == "open"
    r = await _post_pairs(operator.http, f"{BASE}/mismatches/resolve", form)
    assert r.status_code == 400 and "Tick at least one" in r.text
    # A whole page ticked (50 rows, more fields than other forms have) reaches the service, which
    # refuses unknown ids: all or none again.
    page = [("mismatch_id", f"mm_{uuid.uuid4().hex}") for _ in range(49)] + [("mismatch_id", ids[2])]
    form[1] = ("action_id", uuid.uuid4().hex)
    r = await _post_pairs(operator.http, f"{BASE}/mismatches/resolve", form + page)
    assert r.status_code == 409 and "MISMATCH_NOT_FOUND" in r.text
    assert (await _get(operator_channels, ids[2])).mismatch.state == "open"


async def test_no_reconciliation_page_or_action_without_a_session_and_its_csrf_token(
    gw, operator, operator_channels
):
    _, [mismatch_id] = await seeded_run(operator_channels, 1)
    url = f"{BASE}/mismatches/{mismatch_id}"
    actions = [f"{url}/assign", f"{url}/annotate", f"{url}/resolve", f"{BASE}/mismatches/resolve"]
    form = {"assignee": "eve", "note": "n", "resolution_code": "written_off", "action_id": "c" * 32,
            "mismatch_id": mismatch_id}  # fmt: skip
    async with httpx.AsyncClient(base_url=gw.url) as http:
        for path in (BASE, f"{BASE}/runs/x", f"{BASE}/mismatches", url):
            r = await http.get(path)
            assert (r.status_code, r.headers["location"]) == (303, "/console/sign-in"), path
        for path in actions:
            assert (await http.post(path, data=form | {"csrf": "x"})).status_code == 403, path
    for csrf in ("", "wrong"):
        for path in actions:
            r = await operator.http.post(path, data=form | {"csrf": csrf})
            assert r.status_code == 403 and "Form expired" in r.text, path
    got = await _get(operator_channels, mismatch_id)
    assert (got.mismatch.state, got.mismatch.assignee, len(got.actions)) == ("open", "", 1)


async def test_hostile_strings_in_reconciliation_pages_are_escaped(operator, operator_channels):
    _, [mismatch_id] = await seeded_run(operator_channels, 1)
    url = f"{BASE}/mismatches/{mismatch_id}"
    csrf = await operator.csrf()
    assert (
        await operator.http.post(f"{url}/assign", data={"csrf": csrf, "assignee": HOSTILE})
    ).status_code == 303
    r = await operator.http.post(f"{url}/annotate", data={"csrf": csrf, "note": "n " + HOSTILE})
    assert r.status_code == 303
    pages = [(await operator.http.get(url)).text]
    pages.append((await operator.http.get(f"{BASE}/mismatches", params={"run_id": HOSTILE})).text)
    pages.append((await operator.http.get(f"{BASE}/mismatches", params={"code": HOSTILE})).text)
    pages.append((await operator.http.get(f"{BASE}/runs/{HOSTILE}")).text)
    for page in pages:
        assert "<script" not in page and "<img" not in page
    assert pages[0].count(str(escape(HOSTILE))) >= 2  # the assignee and its history entry
    assert str(escape("n " + HOSTILE)) in pages[0]


async def test_get_mismatch_answers_not_found_for_an_unknown_id(operator_channels):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(operator_channels, "mm_" + uuid.uuid4().hex)
    assert (err.value.code(), error_info(err.value).reason) == (
        grpc.StatusCode.NOT_FOUND,
        "MISMATCH_NOT_FOUND",
    )


async def test_a_resolve_whose_outcome_is_unknown_is_audited_as_unknown(start_gateway, keys, gateway_engine):
    """recon cannot be reached: the resolve may or may not have happened, and the audit log says so."""
    cut_off = await start_gateway(recon_addr=f"127.0.0.1:{free_port()}", upstream_timeout_seconds=2)
    key, admin = await keys.make("admin")
    mismatch_id = f"mm_{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=cut_off.url, timeout=10) as http:
        assert (await sign_in(http, admin)).status_code == 303
        csrf = csrf_of((await http.get("/console/audit")).text)
        r = await http.post(
            f"{BASE}/mismatches/{mismatch_id}/resolve",
            data={"csrf": csrf, "resolution_code": "written_off", "note": "network trouble",
                  "action_id": uuid.uuid4().hex},
        )  # fmt: skip
        assert r.status_code == 503 and "outcome is unknown" in r.text
    async with gateway_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT outcome, reason FROM console_audit WHERE target = :t AND key_id = :k"),
                {"t": mismatch_id, "k": key.id},
            )
        ).one()
    assert tuple(row) == ("unknown", "network trouble")
