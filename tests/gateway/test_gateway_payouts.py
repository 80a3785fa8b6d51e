"""The admin REST routes of pay-outs, through the real gateway and payment service: sellers, a run,
pay-outs and a statement as JSON and CSV; bad input answered as problem+json with the service's code."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

import httpx

from psp_sim.testing import SimServer
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _account(psp: SimServer) -> str:
    return str(psp.client(max_network_retries=0).v1.accounts.create(params={"type": "custom"}).id)


async def test_seller_run_payouts_and_statement_over_rest(http: httpx.AsyncClient, shared_psp: SimServer):
    seller = f"s-rest-{uuid.uuid4().hex[:8]}"
    body = {
        "seller_account": seller,
        "psp_account": _account(shared_psp),
        "payout_currency": "USD",
        "minimum_payouts": {"USD": "10.00"},
    }
    headers = _key()
    r = await http.post("/v1/admin/sellers", json=body, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["state"], created["schedule"], created["minimum_payouts"]) == (
        "active",
        "monthly",
        {"USD": "10.00"},
    )
    again = await http.post("/v1/admin/sellers", json=body, headers=headers)
    assert (again.status_code, again.headers.get("Idempotent-Replayed")) == (201, "true")
    taken = await http.post("/v1/admin/sellers", json=body, headers=_key())
    assert (taken.status_code, taken.json()["code"]) == (409, "SELLER_ALREADY_EXISTS")

    r = await http.patch(
        f"/v1/admin/sellers/{seller}", json={"state": "payouts_paused", "state_reason": "KYC"}, headers=_key()
    )
    assert (r.status_code, r.json()["state"], r.json()["state_reason"]) == (200, "payouts_paused", "KYC")
    r = await http.patch(
        f"/v1/admin/sellers/{seller}",
        json={"state": "active", "minimum_payouts": {"USD": "5.00"}},
        headers=_key(),
    )
    assert (r.json()["state"], r.json()["minimum_payouts"]) == ("active", {"USD": "5.00"})
    assert (await http.get(f"/v1/admin/sellers/{seller}")).json() == r.json()
    listed = await http.get("/v1/admin/sellers", params={"seller_account_prefix": seller, "state": "active"})
    assert listed.json() == {"sellers": [r.json()], "next_page_token": None}
    paused = await http.get("/v1/admin/sellers", params={"seller_account_prefix": seller, "state": "blocked"})
    assert paused.json()["sellers"] == []
    assert (await http.get("/v1/admin/sellers", params={"state": "asleep"})).status_code == 400

    r = await http.post(
        "/v1/admin/payout-runs",
        json={"period": "2026-11", "dry_run": True, "seller_accounts": [seller]},
        headers=_key(),
    )
    assert r.status_code == 202, r.text
    run = r.json()
    assert (run["state"], run["dry_run"], run["sellers_total"]) == ("completed", True, 1)
    assert run["items"][0]["skip_reason"] == "below_minimum" and run["items"][0]["amount"] == "0.00"
    assert (await http.get(f"/v1/admin/payout-runs/{run['run_id']}")).json() == run
    listed = (await http.get("/v1/admin/payout-runs", params={"period": "2026-11", "page_size": 1000})).json()
    assert {**run, "items": []} in listed["runs"]
    r = await http.get("/v1/admin/payouts", params={"seller_account": seller, "state": "paid"})
    assert r.json() == {"payouts": [], "next_page_token": None}

    month = datetime.now(UTC).strftime("%Y-%m")
    r = await http.get(f"/v1/admin/sellers/{seller}/statements/{month}")
    assert r.status_code == 200, r.text
    assert (r.json()["opening_balance"], r.json()["closing_balance"], r.json()["lines"]) == (
        "0.00",
        "0.00",
        [],
    )
    r = await http.get(f"/v1/admin/sellers/{seller}/statements/{month}", headers={"Accept": "text/csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:4] == ["time", "kind", "reference", "amount"]
    assert [row[1] for row in rows[1:]] == ["opening_balance", "closing_balance"]


async def test_bad_payout_input_is_a_problem_with_the_services_code(
    http: httpx.AsyncClient, shared_psp: SimServer
):
    seller = f"s-rest-bad-{uuid.uuid4().hex[:8]}"
    base = {"seller_account": seller, "psp_account": _account(shared_psp), "payout_currency": "USD"}
    cases = [
        ({**base, "minimum_payouts": {"USD": "-1.00"}}, "INVALID_AMOUNT"),
        ({**base, "payout_currency": "XQZ"}, "UNKNOWN_CURRENCY"),
        ({**base, "seller_account": "bad seller"}, "INVALID_REQUEST"),
        ({**base, "reserve_bps": 20_000, "reserve_days": 7}, "INVALID_REQUEST"),
        ({**base, "reserve_bps": 500}, "INVALID_RESERVE"),  # a reserve needs days: the service's rule
    ]
    for body, code in cases:
        r = await http.post("/v1/admin/sellers", json=body, headers=_key())
        assert (r.status_code, r.json()["code"]) == (400, code), r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await http.get(f"/v1/admin/sellers/{seller}")).json()["code"] == "SELLER_NOT_FOUND"
    for period, code in [("2099-01", "PERIOD_NOT_ENDED"), ("2026-13", "INVALID_PERIOD")]:
        r = await http.post("/v1/admin/payout-runs", json={"period": period}, headers=_key())
        assert (r.status_code, r.json()["code"]) == (400, code)
    r = await http.post("/v1/admin/payout-runs", json={"period": "2026-11"})
    assert r.status_code == 400  # no Idempotency-Key
    assert (await http.get("/v1/admin/payouts/pyo_none")).json()["code"] == "PAYOUT_NOT_FOUND"
    assert (await http.get("/v1/admin/payout-runs/prun_none")).json()["code"] == "PAYOUT_RUN_NOT_FOUND"


async def test_a_debt_write_off_over_rest_needs_a_reason_and_no_more_than_the_debt(
    http: httpx.AsyncClient, channels
):
    seller = f"s-wo-{uuid.uuid4().hex[:8]}"
    url = f"/v1/admin/sellers/{seller}/debt-write-offs"
    # A debt of 2.50 as settlement books a refund's shortfall, straight in the ledger.
    ledger = lpb_grpc.LedgerServiceStub(channels["ledger"])
    await ledger.PostTransaction(
        lpb.PostTransactionRequest(
            entries=[
                lpb.Entry(
                    account=f"asset:seller_receivable:{seller}/USD",
                    direction=lpb.DIRECTION_DEBIT,
                    amount_minor=250,
                    currency="USD",
                ),
                lpb.Entry(
                    account="asset:psp_receivable:stripe/USD",
                    direction=lpb.DIRECTION_CREDIT,
                    amount_minor=250,
                    currency="USD",
                ),
            ],
            description="refund shortfall (test)",
        ),
        metadata=(("idempotency-key", uuid.uuid4().hex),),
    )
    headers = _key()
    body = {"amount": "2.00", "currency": "USD", "reason": "uncollectable"}
    done = await http.post(url, json=body, headers=headers)
    assert done.status_code == 201, done.text
    assert {k: done.json()[k] for k in ("written_off", "debt_left", "currency")} == {
        "written_off": "2.00",
        "debt_left": "0.50",
        "currency": "USD",
    }
    again = await http.post(url, json=body, headers=headers)
    assert (again.headers.get("Idempotent-Replayed"), again.json()) == ("true", done.json())
    no_reason = await http.post(url, json={"amount": "1.00", "currency": "USD", "reason": ""}, headers=_key())
    assert no_reason.status_code == 400
    too_much = await http.post(
        url, json={"amount": "0.51", "currency": "USD", "reason": "uncollectable"}, headers=_key()
    )
    assert (too_much.status_code, too_much.json()["code"]) == (409, "WRITE_OFF_EXCEEDS_DEBT")
    bad_amount = await http.post(
        url, json={"amount": "1.001", "currency": "USD", "reason": "uncollectable"}, headers=_key()
    )
    assert bad_amount.status_code == 400
