"""The console's pay-out runs over HTTP: a preview pays nothing, the confirmation page pays nothing, the
confirmed run starts once however often the form is sent, its page refreshes itself until it completes
and links each seller's pay-out, whose page shows its history; bad forms change nothing."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest_asyncio

from tests.console.conftest import action_of, csrf_of
from tests.console.sellers_helpers import fund, registered_seller

PERIOD = "2026-11"  # ended: a run pays what the wallets hold when it runs


@pytest_asyncio.fixture
async def admin_api(gw, admin_key):
    async with gw.client(admin_key) as http:
        yield http


async def _payouts(admin_api, seller: str) -> list[dict]:
    return (await admin_api.get("/v1/admin/payouts", params={"seller_account": seller})).json()["payouts"]


async def test_a_run_is_previewed_confirmed_started_once_and_watched(operator, client, admin_api, shared_psp):
    paid = await registered_seller(admin_api, shared_psp)
    idle = await registered_seller(admin_api, shared_psp)  # no money: below the minimum
    await fund(client, admin_api, paid, "40.00")
    available = (await admin_api.get(f"/v1/sellers/{paid}/wallet", params={"currency": "USD"})).json()[
        "available"
    ]
    sellers = f"{paid}, {idle}"

    preview = await operator.http.get("/console/payout-runs", params={"period": PERIOD, "sellers": sellers})
    assert preview.status_code == 200, preview.text
    assert f"Preview of {PERIOD}: {available} USD" in preview.text
    assert "below_minimum" in preview.text

    form = {"csrf": csrf_of(preview.text), "period": PERIOD, "sellers": sellers}
    r = await operator.http.post("/console/payout-runs/confirm", data=form | {"note": ""})
    assert r.status_code == 400 and "Say why" in r.text
    confirm = await operator.http.post("/console/payout-runs/confirm", data=form | {"note": "November run"})
    assert confirm.status_code == 200 and f"Pay {available} USD for {PERIOD}?" in confirm.text
    assert await _payouts(admin_api, paid) == []  # neither preview nor confirmation paid anything

    start = form | {"note": "November run", "action_id": action_of(confirm.text)}
    first, second = [await operator.http.post("/console/payout-runs", data=start) for _ in range(2)]
    assert first.status_code == second.status_code == 303, first.text
    assert first.headers["location"] == second.headers["location"]  # a double click: one run
    run_url = first.headers["location"]
    assert re.fullmatch(r"/console/payout-runs/prun_\w+", run_url)

    deadline = time.monotonic() + 20
    while True:
        page = await operator.http.get(run_url)
        assert page.status_code == 200
        if "Refresh" not in page.headers:
            break
        assert page.headers["Refresh"] == "1" and "reloads every 1 s" in page.text
        assert time.monotonic() < deadline, "the run never completed"
        await asyncio.sleep(0.05)
    assert (
        "completed" in page.text
        and "2 of 2 sellers done: 1 pay-outs created, 1 sellers not paid" in page.text
    )
    payouts = await _payouts(admin_api, paid)
    assert len(payouts) == 1 and payouts[0]["amount"] == available
    payout_id = payouts[0]["payout_id"]
    assert f'href="/console/payouts/{payout_id}"' in page.text

    detail = await operator.http.get(f"/console/payouts/{payout_id}")
    assert detail.status_code == 200 and f"{available} USD" in detail.text and ">run</td>" in detail.text
    seller_page = (await operator.http.get(f"/console/sellers/{paid}")).text
    assert payout_id in seller_page
    runs_page = (await operator.http.get("/console/payout-runs")).text
    assert "Recent runs" in runs_page and 'href="/console/payout-runs/prun_' in runs_page
    audit = (await operator.http.get("/console/audit", params={"target": PERIOD})).text
    assert "payout.run.start" in audit and "November run" in audit and run_url.rsplit("/", 1)[1] in audit


async def test_bad_run_forms_change_nothing(operator, admin_api, shared_psp):
    seller = await registered_seller(admin_api, shared_psp)
    csrf = await operator.csrf()
    for period, text in (("2099-01", "PERIOD_NOT_ENDED"), ("2026-13", "INVALID_PERIOD")):
        r = await operator.http.get("/console/payout-runs", params={"period": period, "sellers": seller})
        assert r.status_code == 400 and text in r.text
    r = await operator.http.get("/console/payout-runs", params={"period": PERIOD, "sellers": "no such!"})
    assert r.status_code == 400 and "not a seller account" in r.text
    base = {"csrf": csrf, "period": PERIOD, "sellers": seller, "note": "n"}
    for form in (base, base | {"action_id": "nothex"}, base | {"action_id": "a" * 32, "note": ""}):
        r = await operator.http.post("/console/payout-runs", data=form)
        assert r.status_code == 400 and "nothing was changed" in r.text
    r = await operator.http.post("/console/payout-runs", data=base | {"action_id": "a" * 32, "csrf": "x"})
    assert r.status_code == 403
    r = await operator.http.post(
        "/console/payout-runs", data=base | {"period": "2099-01", "action_id": uuid.uuid4().hex}
    )
    assert r.status_code == 409 and "PERIOD_NOT_ENDED" in r.text  # the service's refusal, audited
    assert await _payouts(admin_api, seller) == []
    for path in ("/console/payout-runs/prun_none", "/console/payouts/pyo_none"):
        assert (await operator.http.get(path)).status_code == 404
