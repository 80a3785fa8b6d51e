"""The admin REST routes of settlement reconciliation, through the real gateway and recon service: an
uploaded file's run, its report, the exceptions queue and resolving (one and in bulk); bad input answered as
problem+json with the service's code, and an upload over the limit refused with 413."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx

from tests.gateway.conftest import Keys, StartGateway

HEADER = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id"
RUNS = "/v1/admin/reconciliation/runs"
MISMATCHES = "/v1/admin/reconciliation/mismatches"


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _strangers(n: int) -> bytes:
    """A settlement file of ``n`` charges that match nothing of ours (one UNMATCHED_ROW each, nothing booked)."""
    tag = uuid.uuid4().hex[:10]
    rows = [
        f"txn_{tag}{i},2026-11-20 10:00:00,usd,{i + 1}.00,0.00,{i + 1}.00,charge,ch_{tag}{i}"
        for i in range(n)
    ]
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def _upload(data: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("report.csv", data, "text/csv")}


async def test_upload_report_queue_and_resolve_over_rest(http: httpx.AsyncClient):
    data = _strangers(3)
    r = await http.post(RUNS, files=_upload(data))
    assert r.status_code == 201, r.text
    report = r.json()
    assert (report["state"], report["rows_read"], report["booked"], report["open_by_classification"]) == (
        "SUCCEEDED",
        3,
        0,
        {"unclassified": 3},
    )
    assert report["psp_totals"] == {"USD:charge": {"gross": 600, "fee": 0, "net": 600, "rows": 3}}
    run_id = report["run_id"]
    assert (await http.get(f"{RUNS}/{run_id}")).json() == report
    listed = (await http.get(RUNS, params={"page_size": 100})).json()["runs"]
    [ours] = [run for run in listed if run["run_id"] == run_id]
    assert (ours["kind"], ours["state"]) == ("settlement_file", "succeeded")

    # The same file again is recognised and changes nothing.
    again = await http.post(RUNS, files=_upload(data))
    assert (again.status_code, again.json()["state"], again.json()["rows_read"]) == (201, "DUPLICATE_FILE", 0)

    r = await http.get(MISMATCHES, params={"run_id": run_id, "classification": "unclassified"})
    mismatches = r.json()["mismatches"]
    assert [(m["code"], m["amount"], m["currency"], m["state"]) for m in mismatches] == [
        ("UNMATCHED_ROW", "1.00", "USD", "open"),
        ("UNMATCHED_ROW", "2.00", "USD", "open"),
        ("UNMATCHED_ROW", "3.00", "USD", "open"),
    ]
    first, *rest = (m["mismatch_id"] for m in mismatches)

    body = {"resolution_code": "psp_contacted", "reason": "asked the PSP about the charge"}
    headers = _key()
    r = await http.post(f"{MISMATCHES}/{first}/resolve", json=body, headers=headers)
    assert (r.status_code, r.json()) == (200, {"resolved": 1})
    replay = await http.post(f"{MISMATCHES}/{first}/resolve", json=body, headers=headers)
    assert (replay.json(), replay.headers.get("Idempotent-Replayed")) == ({"resolved": 1}, "true")
    twice = await http.post(f"{MISMATCHES}/{first}/resolve", json=body, headers=_key())
    assert (twice.status_code, twice.json()["code"]) == (409, "MISMATCH_NOT_OPEN")
    assert twice.headers["content-type"] == "application/problem+json"

    r = await http.post(
        f"{MISMATCHES}/resolve",
        json={**body, "resolution_code": "written_off", "mismatch_ids": rest},
        headers=_key(),
    )
    assert (r.status_code, r.json()) == (200, {"resolved": 2})
    assert (await http.get(MISMATCHES, params={"run_id": run_id, "state": "open"})).json()["mismatches"] == []
    resolved = (await http.get(MISMATCHES, params={"run_id": run_id, "state": "resolved"})).json()[
        "mismatches"
    ]
    assert sorted(m["resolution_code"] for m in resolved) == ["psp_contacted", "written_off", "written_off"]


async def test_bad_requests_are_problems_with_their_code(http: httpx.AsyncClient):
    today = dt.datetime.now(dt.UTC).date().isoformat()
    cases = [
        (await http.post(RUNS, json={"date": today}), 400, "SETTLEMENT_DAY_NOT_AVAILABLE"),
        # Before the PSP's data starts (the simulator's began with this test session): the PSP says so.
        (await http.post(RUNS, json={"date": "2020-01-01"}), 400, "SETTLEMENT_DAY_NOT_AVAILABLE"),
        (await http.post(RUNS, json={"date": "2020-02-30"}), 400, "INVALID_REQUEST"),
        (await http.post(RUNS, json={"day": "2020-01-01"}), 400, "INVALID_REQUEST"),
        (
            await http.post(RUNS, content=b"a,b\n", headers={"Content-Type": "text/csv"}),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (await http.post(RUNS, files={"other": ("x.csv", b"a", "text/csv")}), 400, "MISSING_FIELD"),
        (await http.get(f"{RUNS}/rr_{uuid.uuid4().hex}"), 404, "RUN_NOT_FOUND"),
        (await http.get(MISMATCHES, params={"state": "lost"}), 400, "INVALID_REQUEST"),
        (
            await http.post(
                f"{MISMATCHES}/mm_{uuid.uuid4().hex}/resolve",
                json={"resolution_code": "written_off", "reason": "x"},
                headers=_key(),
            ),
            404,
            "MISMATCH_NOT_FOUND",
        ),
        (
            await http.post(
                f"{MISMATCHES}/resolve",
                json={"resolution_code": "forgotten", "reason": "x", "mismatch_ids": ["mm_1"]},
                headers=_key(),
            ),
            400,
            "INVALID_REQUEST",
        ),
    ]
    for r, status, code in cases:
        assert (r.status_code, r.json()["code"]) == (status, code), r.text
        assert r.headers["content-type"] == "application/problem+json"


async def test_a_file_that_is_not_a_settlement_report_fails_its_run_and_books_nothing(
    http: httpx.AsyncClient,
):
    semicolons = HEADER.replace(",", ";").encode() + b"\n"
    r = await http.post(RUNS, files=_upload(semicolons + uuid.uuid4().hex.encode()))
    assert r.status_code == 201, r.text
    report = r.json()
    assert (report["state"], report["booked"]) == ("FAILED", 0)
    assert "';'-delimited" in report["error"]


async def test_an_upload_over_the_limit_is_413_and_other_routes_keep_theirs(
    start_gateway: StartGateway, keys: Keys
):
    gw = await start_gateway(settlement_upload_max_bytes=4096, max_body_bytes=1024)
    _, key = await keys.make("admin")
    async with gw.client(key) as c:
        big = await c.post(RUNS, files=_upload(_strangers(200)))
        assert (big.status_code, big.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
        assert "4096 bytes" in big.json()["detail"]
        # Under the upload limit but over the ordinary one: the upload route takes it.
        small = _strangers(30)
        assert 1024 < len(small) < 4000
        r = await c.post(RUNS, files=_upload(small))
        assert (r.status_code, r.json()["rows_read"]) == (201, 30)
        # Any other route keeps the ordinary limit.
        r = await c.post(f"{MISMATCHES}/resolve", content=b"{" + b" " * 2000 + b"}", headers=_key())
        assert (r.status_code, r.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_a_key_without_the_admin_scope_is_refused(gw, keys: Keys):
    _, key = await keys.make("payments")
    async with gw.client(key) as c:
        r = await c.post(RUNS, files=_upload(_strangers(1)))
        assert (r.status_code, r.json()["code"]) == (403, "FORBIDDEN")
