"""The console's seller screens over HTTP: the list with its filters, a seller's balances (wallet and
ledger), movements and pay-outs, pause and resume with a reason (audited, CSRF), statements as a page
and as CSV, and hostile strings shown escaped."""

from __future__ import annotations

import csv
import io
import uuid

import httpx
import pytest_asyncio
from markupsafe import escape

from tests.console.conftest import csrf_of
from tests.console.sellers_helpers import fund, registered_seller

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest_asyncio.fixture
async def admin_api(gw, admin_key):
    async with gw.client(admin_key) as http:
        yield http


async def test_a_seller_is_found_shown_with_its_balances_paused_and_resumed(
    operator, client, admin_api, shared_psp
):
    seller = await registered_seller(admin_api, shared_psp)
    order_id = await fund(client, admin_api, seller, "40.00")

    listing = await operator.http.get("/console/sellers", params={"seller": seller})
    assert listing.status_code == 200 and f">{seller}</a>" in listing.text
    assert listing.text.count("/console/sellers/s-con-") == 1  # the prefix is the whole account: only it

    page = await operator.http.get(f"/console/sellers/{seller}")
    assert page.status_code == 200, page.text
    wallet = (await admin_api.get(f"/v1/sellers/{seller}/wallet", params={"currency": "USD"})).json()
    # Available and reserved from the wallet, the same amount owed in the ledger's seller_payable account.
    money = wallet["available"] + " USD"
    assert (
        f'<td>USD</td><td class="num">{money}</td><td class="num">0.00 USD</td><td class="num">{money}</td>'
        in page.text
    )
    assert f"/console/payments/{order_id}" in page.text  # the movement links its order
    order_page = (await operator.http.get(f"/console/payments/{order_id}")).text
    assert f'href="/console/sellers/{seller}"' in order_page  # and the order its seller

    csrf = csrf_of(page.text)
    r = await operator.http.post(f"/console/sellers/{seller}/pause", data={"csrf": csrf, "note": " "})
    assert r.status_code == 400 and "Say why" in r.text
    r = await operator.http.post(f"/console/sellers/{seller}/pause", data={"csrf": "wrong", "note": "KYC"})
    assert r.status_code == 403
    assert (await admin_api.get(f"/v1/admin/sellers/{seller}")).json()["state"] == "active"

    r = await operator.http.post(
        f"/console/sellers/{seller}/pause", data={"csrf": csrf, "note": "KYC documents expired"}
    )
    assert (r.status_code, r.headers["location"]) == (303, f"/console/sellers/{seller}?done=pause")
    got = (await admin_api.get(f"/v1/admin/sellers/{seller}")).json()
    assert (got["state"], got["state_reason"]) == ("payouts_paused", "KYC documents expired")
    paused = await operator.http.get("/console/sellers", params={"seller": seller, "state": "payouts_paused"})
    assert f">{seller}</a>" in paused.text and "KYC documents expired" in paused.text
    active = await operator.http.get("/console/sellers", params={"seller": seller, "state": "active"})
    assert f">{seller}</a>" not in active.text

    r = await operator.http.post(
        f"/console/sellers/{seller}/resume", data={"csrf": csrf, "note": "documents received"}
    )
    assert r.status_code == 303
    assert (await admin_api.get(f"/v1/admin/sellers/{seller}")).json()["state"] == "active"
    page = (await operator.http.get(f"/console/sellers/{seller}")).text
    assert "seller.pause" in page and "seller.resume" in page and "documents received" in page
    audit = (await operator.http.get("/console/audit", params={"target": seller})).text
    assert "KYC documents expired" in audit and ">ok</td>" in audit
    assert f'href="/console/sellers/{seller}"' in audit and f'href="/console/payments/{seller}"' not in audit

    bad = await operator.http.get("/console/sellers", params={"state": "sleeping"})
    assert bad.status_code == 400 and "not a seller state" in bad.text


async def test_a_statement_is_shown_and_downloaded_as_csv(operator, client, admin_api, shared_psp):
    seller = await registered_seller(admin_api, shared_psp)
    order_id = await fund(client, admin_api, seller, "12.00")
    month = (await client.get(f"/v1/payments/{order_id}")).json()["created_at"][:7]
    page = await operator.http.get(f"/console/sellers/{seller}/statement", params={"period": month})
    assert page.status_code == 200 and f"/console/payments/{order_id}" in page.text
    r = await operator.http.get(
        f"/console/sellers/{seller}/statement", params={"period": month, "format": "csv"}
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f'filename="statement-{seller}-{month}.csv"' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert [row[1] for row in rows[1:]] == ["opening_balance", "order", "closing_balance"]
    assert rows[2][2] == order_id
    bad = await operator.http.get(f"/console/sellers/{seller}/statement", params={"period": "2026-13"})
    assert bad.status_code == 400 and "INVALID_PERIOD" in bad.text


async def test_seller_pages_show_hostile_strings_escaped(operator, admin_api, shared_psp):
    seller = await registered_seller(admin_api, shared_psp)
    csrf = await operator.csrf()
    r = await operator.http.post(f"/console/sellers/{seller}/pause", data={"csrf": csrf, "note": HOSTILE})
    assert r.status_code == 303
    pages = [
        (await operator.http.get(f"/console/sellers/{seller}")).text,
        (await operator.http.get("/console/sellers", params={"seller": seller})).text,
        (await operator.http.get("/console/sellers", params={"seller": HOSTILE})).text,
        (await operator.http.get(f"/console/sellers/{seller}/statement", params={"period": HOSTILE})).text,
        (await operator.http.get("/console/payout-runs", params={"period": HOSTILE, "sellers": seller})).text,
        (
            await operator.http.get("/console/payout-runs", params={"period": "2026-11", "sellers": HOSTILE})
        ).text,
        (await operator.http.get("/console/books", params={"prefix": HOSTILE})).text,
        (await operator.http.get("/console/books/account", params={"name": HOSTILE})).text,
    ]
    confirm = await operator.http.post(
        "/console/payout-runs/confirm",
        data={"csrf": csrf, "period": "2026-11", "sellers": seller, "note": HOSTILE},
    )
    assert confirm.status_code == 200
    pages.append(confirm.text)
    for page in pages:
        assert "<script" not in page and "<img" not in page
    assert pages[0].count(str(escape(HOSTILE))) >= 2  # the seller's state reason and the audit entry
    assert str(escape(HOSTILE)) in pages[1] and str(escape(HOSTILE)) in pages[-1]

    # Blocked by risk (through the REST API): resuming is the service's refusal, shown and audited.
    r = await admin_api.patch(
        f"/v1/admin/sellers/{seller}",
        json={"state": "blocked", "state_reason": "risk"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 200, r.text
    r = await operator.http.post(f"/console/sellers/{seller}/resume", data={"csrf": csrf, "note": "try"})
    assert r.status_code == 409 and "SELLER_BLOCKED" in r.text
    audit = (await operator.http.get("/console/audit", params={"target": seller})).text
    assert "refused: SELLER_BLOCKED" in audit


async def test_seller_pages_and_actions_need_a_session(gw, admin_api, shared_psp):
    seller = await registered_seller(admin_api, shared_psp)
    async with httpx.AsyncClient(base_url=gw.url) as http:
        for path in (
            "/console/sellers",
            f"/console/sellers/{seller}",
            f"/console/sellers/{seller}/statement",
            "/console/payout-runs",
            "/console/payout-runs/prun_x",
            "/console/payouts/pyo_x",
            "/console/books",
            "/console/books/account?name=x",
            "/console/books/transactions/1",
        ):
            r = await http.get(path)
            assert (r.status_code, r.headers["location"]) == (303, "/console/sign-in"), path
        for path in (
            f"/console/sellers/{seller}/pause",
            "/console/payout-runs/confirm",
            "/console/payout-runs",
            "/console/books/verify",
            "/console/books/compare",
        ):
            r = await http.post(
                path, data={"csrf": "x", "note": "n", "period": "2026-11", "action_id": "a" * 32}
            )
            assert r.status_code == 403, path
    assert (await admin_api.get(f"/v1/admin/sellers/{seller}")).json()["state"] == "active"
