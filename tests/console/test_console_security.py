"""The console over HTTP: nothing without a session, admin keys only, CSRF on every action, expiry,
sign-out, rate-limited failed sign-ins, cookie attributes, and hostile strings shown escaped."""

from __future__ import annotations

import uuid

import httpx
import pytest
from markupsafe import escape
from sqlalchemy import text

from svckit.devstack.infra import free_port
from tests.console.conftest import csrf_of, paid_order, sign_in

PAGES = ["/console", "/console/payments", "/console/audit", "/console/payments/chk_x_0"]


async def _refunded(client: httpx.AsyncClient, order_id: str) -> str:
    return (await client.get(f"/v1/payments/{order_id}")).json()["refunded"]


async def test_the_root_leads_to_the_console_and_the_console_to_sign_in(gw):
    async with httpx.AsyncClient(base_url=gw.url) as http:
        r = await http.get("/")
        assert (r.status_code, r.headers["location"]) == (307, "/console")
        r = await http.get("/console")
        assert (r.status_code, r.headers["location"]) == (303, "/console/sign-in")
        page = await http.get("/console/sign-in")
        assert page.status_code == 200 and 'for="api_key"' in page.text
        assert "script" not in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"


async def test_no_page_and_no_action_without_a_session(gw, client):
    order_id = await paid_order(client)
    async with httpx.AsyncClient(base_url=gw.url) as http:
        for path in PAGES:
            r = await http.get(path)
            assert (r.status_code, r.headers["location"]) == (303, "/console/sign-in"), path
        http.cookies.set("console_session", "forged-" + uuid.uuid4().hex)
        assert (await http.get("/console/payments")).status_code == 303
        for action in ("refund/confirm", "refund", "review"):
            r = await http.post(
                f"/console/payments/{order_id}/{action}",
                data={"csrf": "x", "amount": "1.00", "reason": "duplicate", "note": "n",
                      "action_id": "a" * 32, "decision": "decline"},
            )  # fmt: skip
            assert r.status_code == 403, action
        assert (await http.post("/console/sign-out", data={"csrf": "x"})).status_code == 403
    assert await _refunded(client, order_id) == "0.00"


async def test_only_an_active_admin_key_signs_in_and_the_key_is_never_shown(gw, keys, client_key):
    _, payments_only = await keys.make("payments")
    revoked, revoked_key = await keys.make("admin")
    await keys.revoke(revoked.id)
    for key in (payments_only, revoked_key, "mpk_" + "A" * 43, "not a key"):
        async with httpx.AsyncClient(base_url=gw.url) as http:
            r = await sign_in(http, key)
            assert r.status_code == 401 and "admin scope" in r.text
            assert "console_session" not in r.cookies
            assert key not in r.text
            assert (await http.get("/console/payments")).status_code == 303
    _, admin = await keys.make("admin", "payments")
    async with httpx.AsyncClient(base_url=gw.url) as http:
        r = await sign_in(http, admin)
        assert (r.status_code, r.headers["location"]) == (303, "/console/payments")
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        page = await http.get("/console/payments")
        assert page.status_code == 200 and admin not in page.text


async def test_the_session_cookie_is_secure_when_buyers_reach_the_gateway_over_https(start_gateway, keys):
    secure_gw = await start_gateway(public_url="https://pay.example.com")
    _, admin = await keys.make("admin")
    async with httpx.AsyncClient(base_url=secure_gw.url) as http:
        form = await http.get("/console/sign-in")
        assert "Secure" in form.headers["set-cookie"]
        # httpx keeps a Secure cookie away from http://, as a browser would; hand it over by hand.
        token = form.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        signin = form.text.split('name="signin" value="')[1].split('"')[0]
        r = await http.post(
            "/console/sign-in",
            data={"signin": signin, "api_key": admin},
            headers={"Cookie": f"console_signin={token}"},
        )
        assert r.status_code == 303
        assert "Secure" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]


async def test_sign_in_needs_its_form_token(gw, keys):
    _, admin = await keys.make("admin")
    async with httpx.AsyncClient(base_url=gw.url) as http:
        r = await http.post("/console/sign-in", data={"signin": "guess", "api_key": admin})
        assert r.status_code == 403 and "console_session" not in r.cookies


async def test_every_action_needs_the_sessions_csrf_token(operator, client):
    order_id = await paid_order(client)
    token = await operator.csrf()
    form = {"amount": "1.00", "reason": "duplicate", "note": "customer asked", "action_id": "b" * 32}
    for csrf in (None, "", "wrong", token + "x"):
        data = form | ({"csrf": csrf} if csrf is not None else {})
        for action in ("refund/confirm", "refund"):
            r = await operator.http.post(f"/console/payments/{order_id}/{action}", data=data)
            assert r.status_code == 403 and "Form expired" in r.text, (action, csrf)
        r = await operator.http.post("/console/sign-out", data=data)
        assert r.status_code == 403
    # The right token, but not sent as a form (a cross-site JSON post): refused too.
    r = await operator.http.post(f"/console/payments/{order_id}/refund", json=form | {"csrf": token})
    assert r.status_code == 415
    assert await _refunded(client, order_id) == "0.00"
    assert (await operator.http.get("/console/payments")).status_code == 200  # still signed in


async def test_a_session_ends_when_it_expires(operator, gateway_engine):
    assert (await operator.http.get("/console/payments")).status_code == 200
    async with gateway_engine.begin() as conn:
        await conn.execute(
            text("UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE key_id = :k"),
            {"k": operator.key_id},
        )
    r = await operator.http.get("/console/payments")
    assert (r.status_code, r.headers["location"]) == (303, "/console/sign-in")


async def test_sign_out_ends_the_session_for_good_and_is_audited(operator, keys):
    stolen = operator.http.cookies["console_session"]
    r = await operator.http.post("/console/sign-out", data={"csrf": await operator.csrf()})
    assert (r.status_code, r.headers["location"]) == (303, "/console/sign-in")
    assert (await operator.http.get("/console/audit")).status_code == 303
    operator.http.cookies.set("console_session", stolen)  # a copy kept from before is dead too
    assert (await operator.http.get("/console/audit")).status_code == 303
    _, admin = await keys.make("admin")
    async with httpx.AsyncClient(base_url=operator.http.base_url) as other:
        await sign_in(other, admin)
        audit = (await other.get("/console/audit")).text
    assert f"({operator.key_id})</td><td>console.sign_out" in audit


async def test_revoking_the_key_ends_its_sessions(operator, keys):
    await keys.revoke(operator.key_id)
    assert (await operator.http.get("/console/payments")).status_code == 303


async def test_failed_sign_ins_are_limited_per_address_like_api_keys(start_gateway, keys):
    limited = await start_gateway(auth_failure_limit=2, auth_failure_window_seconds=3600)
    _, admin = await keys.make("admin")
    _, payments_only = await keys.make("payments")
    # An address of this test's own (the test gateways trust X-Forwarded-For from 127.0.0.1, as a
    # proxy on the same host would be): other tests' failures from 127.0.0.1 share the limiter's key.
    n = uuid.uuid4().int
    address = f"10.{n % 250}.{n // 250 % 250}.{n // 62500 % 250 + 1}"
    async with httpx.AsyncClient(base_url=limited.url, headers={"X-Forwarded-For": address}) as http:
        assert (await sign_in(http, payments_only)).status_code == 401
        assert (await sign_in(http, "mpk_" + "B" * 43)).status_code == 401
        r = await sign_in(http, payments_only)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # Over the budget even the right key is refused, so a hit cannot be told from a miss.
        r = await sign_in(http, admin)
        assert r.status_code == 429 and "console_session" not in r.cookies


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_hostile_strings_are_shown_escaped_everywhere(operator, client):
    order_id = await paid_order(client, buyer_name="Eve " + HOSTILE, item="Lamp " + HOSTILE)
    note = "refund " + HOSTILE
    confirm = await operator.http.post(
        f"/console/payments/{order_id}/refund/confirm",
        data={"csrf": await operator.csrf(), "amount": "1.00", "reason": "duplicate", "note": note},
    )
    assert confirm.status_code == 200
    pages = [confirm.text]
    action = confirm.text.split('name="action_id" value="')[1].split('"')[0]
    r = await operator.http.post(
        f"/console/payments/{order_id}/refund",
        data={"csrf": await operator.csrf(), "amount": "1.00", "reason": "duplicate", "note": note,
              "action_id": action},
    )  # fmt: skip
    assert r.status_code == 303
    pages.append((await operator.http.get(f"/console/payments/{order_id}")).text)
    pages.append((await operator.http.get("/console/audit")).text)
    # Reflected: search parameters come back in the form and the error.
    pages.append((await operator.http.get("/console/payments", params={"checkout_id": HOSTILE})).text)
    pages.append((await operator.http.get("/console/audit", params={"target": HOSTILE})).text)
    # A reviewer's note lands in the order's timeline (the payment service's history) too.
    held = await paid_order(client, amount="6000.00", buyer_name=HOSTILE)
    r = await operator.http.post(
        f"/console/payments/{held}/review",
        data={"csrf": await operator.csrf(), "decision": "decline", "note": "no " + HOSTILE},
    )
    assert r.status_code == 303
    pages.append((await operator.http.get(f"/console/payments/{held}")).text)
    for page in pages:
        assert "<script" not in page and "<img" not in page
    assert pages[-1].count(str(escape("no " + HOSTILE))) >= 2  # timeline and audit
    assert escape("Eve " + HOSTILE) in pages[1]
    assert escape("Lamp " + HOSTILE) in pages[1]
    assert escape(note) in pages[2]


@pytest.mark.parametrize(("amount", "shown"), [("1.00", "1.00 USD"), ("", "25.00 USD")])
async def test_a_refund_is_confirmed_first_and_made_once(operator, client, amount, shown):
    order_id = await paid_order(client)
    form = {"csrf": await operator.csrf(), "amount": amount, "reason": "requested_by_customer",
            "note": "buyer complained"}  # fmt: skip
    confirm = await operator.http.post(f"/console/payments/{order_id}/refund/confirm", data=form)
    assert confirm.status_code == 200 and f"Confirm refund of {shown}" in confirm.text
    assert await _refunded(client, order_id) == "0.00"  # the confirmation page moves nothing
    action = confirm.text.split('name="action_id" value="')[1].split('"')[0]
    for _ in range(2):  # a double click replays the first refund
        r = await operator.http.post(
            f"/console/payments/{order_id}/refund", data=form | {"action_id": action}
        )
        assert r.status_code == 303, r.text
    assert await _refunded(client, order_id) == shown.split()[0]
    refunds = (await client.get(f"/v1/payments/{order_id}/refunds")).json()["refunds"]
    assert len(refunds) == 1
    page = (await operator.http.get(f"/console/payments/{order_id}")).text
    assert "payment.refund" in page and "buyer complained" in page and refunds[0]["refund_id"] in page


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"amount": "1.001"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"note": ""}, "Say why"),
        ({"reason": "because"}, "Choose a refund reason"),
    ],
)
async def test_a_bad_refund_form_is_refused_and_changes_nothing(operator, client, form, message):
    order_id = await paid_order(client)
    data = {"csrf": await operator.csrf(), "amount": "", "reason": "duplicate", "note": "n"} | form
    r = await operator.http.post(f"/console/payments/{order_id}/refund/confirm", data=data)
    assert r.status_code == 400 and message in r.text
    assert await _refunded(client, order_id) == "0.00"


async def test_a_refund_the_service_refuses_is_shown_and_audited(operator, client):
    order_id = await paid_order(client, amount="2.00")
    confirm = await operator.http.post(
        f"/console/payments/{order_id}/refund/confirm",
        data={"csrf": await operator.csrf(), "amount": "5.00", "reason": "duplicate", "note": "too much"},
    )
    action = confirm.text.split('name="action_id" value="')[1].split('"')[0]
    r = await operator.http.post(
        f"/console/payments/{order_id}/refund",
        data={"csrf": await operator.csrf(), "amount": "5.00", "reason": "duplicate", "note": "too much",
              "action_id": action},
    )  # fmt: skip
    assert r.status_code == 409 and "REFUND_EXCEEDS_CAPTURED" in r.text, r.text[-1500:]
    assert await _refunded(client, order_id) == "0.00"
    audit = (await operator.http.get("/console/audit", params={"target": order_id})).text
    assert "too much" in audit and "refused: amount=5.00; REFUND_EXCEEDS_CAPTURED" in audit, audit[-1500:]


async def test_payments_are_found_by_checkout_seller_buyer_state_and_order(operator, client):
    order_id = await paid_order(client, amount="1500", currency="JPY")
    order = (await client.get(f"/v1/payments/{order_id}")).json()
    checkout = (await client.get(f"/v1/checkouts/{order['checkout_id']}")).json()
    for params in (
        {"checkout_id": order["checkout_id"]},
        {"seller_account": order["seller_account"], "state": "success"},
        {"buyer_id": checkout["buyer_info"]["buyer_id"], "created_gte": "2020-01-01"},
    ):
        page = await operator.http.get("/console/payments", params=params)
        assert page.status_code == 200 and f">{order_id}</a>" in page.text and "1,500 JPY" not in page.text
        assert "1500 JPY" in page.text
    page = await operator.http.get(
        "/console/payments", params={"seller_account": order["seller_account"], "state": "refunded"}
    )
    assert f">{order_id}</a>" not in page.text
    r = await operator.http.get("/console/payments", params={"payment_order_id": order_id})
    assert r.headers["location"] == f"/console/payments/{order_id}"
    bad = await operator.http.get("/console/payments", params={"created_gte": "yesterday"})
    assert bad.status_code == 400 and "created_gte" in bad.text


@pytest.mark.parametrize(("decision", "state"), [("approve", "success"), ("decline", "failed")])
async def test_an_order_held_for_review_is_approved_or_declined_with_a_reason(
    operator, client, decision, state
):
    order_id = await paid_order(client, amount="6000.00")  # over the risk review threshold
    page = await operator.http.get(f"/console/payments/{order_id}")
    assert "Held for risk review" in page.text
    form = {"csrf": csrf_of(page.text), "decision": decision}
    r = await operator.http.post(f"/console/payments/{order_id}/review", data=form | {"note": "  "})
    assert r.status_code == 400 and "say why" in r.text
    assert (await client.get(f"/v1/payments/{order_id}")).json()["state"] == "pending"
    r = await operator.http.post(
        f"/console/payments/{order_id}/review", data=form | {"note": "called the buyer"}
    )
    assert r.status_code == 303, r.text
    assert (await client.get(f"/v1/payments/{order_id}")).json()["state"] == state
    history = (await client.get(f"/v1/payments/{order_id}/history")).json()["transitions"]
    assert any(t["cause"] == f"review:{decision}" and "called the buyer" in t["detail"] for t in history)
    audit = (await operator.http.get("/console/audit", params={"target": order_id})).text
    assert f"payment.review.{decision}" in audit and "called the buyer" in audit and ">ok</td>" in audit
    # Decided once: a second decision is the service's refusal, shown and audited.
    r = await operator.http.post(f"/console/payments/{order_id}/review", data=form | {"note": "again"})
    assert r.status_code == 409 and "ORDER_NOT_IN_REVIEW" in r.text


async def test_a_refund_whose_outcome_is_unknown_is_audited_as_unknown(start_gateway, keys, gateway_engine):
    """The payment service cannot be reached: the refund may or may not have happened, and the audit
    log says so rather than 'refused'."""
    cut_off = await start_gateway(payment_addr=f"127.0.0.1:{free_port()}", upstream_timeout_seconds=2)
    key, admin = await keys.make("admin")
    order_id = f"chk_{uuid.uuid4().hex[:12]}_0"
    async with httpx.AsyncClient(base_url=cut_off.url, timeout=10) as http:
        assert (await sign_in(http, admin)).status_code == 303
        csrf = csrf_of((await http.get("/console/audit")).text)
        r = await http.post(
            f"/console/payments/{order_id}/refund",
            data={"csrf": csrf, "amount": "", "reason": "duplicate", "note": "network trouble",
                  "action_id": uuid.uuid4().hex},
        )  # fmt: skip
        assert r.status_code == 503 and "Check the order" in r.text
    async with gateway_engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT outcome, reason FROM console_audit WHERE target = :t AND key_id = :k"),
                {"t": order_id, "k": key.id},
            )
        ).one()
    assert tuple(row) == ("unknown", "network trouble")


async def test_a_sign_in_purges_sessions_that_ended_more_than_a_day_ago(operator, keys, gateway_engine):
    long_gone, just_ended = await keys.make("admin"), await keys.make("admin")
    for (key, plaintext), age in ((long_gone, "25 hours"), (just_ended, "1 hour")):
        async with httpx.AsyncClient(base_url=operator.http.base_url) as other:
            assert (await sign_in(other, plaintext)).status_code == 303
        async with gateway_engine.begin() as conn:
            await conn.execute(
                text(f"UPDATE console_sessions SET expires_at = now() - interval '{age}' WHERE key_id = :k"),
                {"k": key.id},
            )

    async def sessions_of(key_id: str) -> int:
        async with gateway_engine.connect() as conn:
            return (
                await conn.execute(
                    text("SELECT count(*) FROM console_sessions WHERE key_id = :k"), {"k": key_id}
                )
            ).scalar_one()

    _, admin = await keys.make("admin")
    async with httpx.AsyncClient(base_url=operator.http.base_url) as other:
        assert (await sign_in(other, admin)).status_code == 303
    assert await sessions_of(long_gone[0].id) == 0
    assert await sessions_of(just_ended[0].id) == 1  # kept a while after it ended
    assert await sessions_of(operator.key_id) == 1  # a live session is never touched


async def test_an_order_is_found_by_the_psp_payment_id_a_buyer_quotes(operator, client):
    order_id = await paid_order(client, buyer_name="Quotes their bank statement")
    psp_id = (await client.get(f"/v1/payments/{order_id}")).json()["psp_reference"]
    assert psp_id.startswith("pi_")
    found = await operator.http.get("/console/payments", params={"psp_id": psp_id})
    assert found.status_code == 200 and f"/console/payments/{order_id}" in found.text
    unknown = await operator.http.get("/console/payments", params={"psp_id": "pi_" + "0" * 24})
    assert unknown.status_code == 400 and "no checkout of ours" in unknown.text
    hostile = await operator.http.get("/console/payments", params={"psp_id": "<script>x</script>"})
    assert hostile.status_code == 400 and "<script>x" not in hostile.text


async def test_no_page_renders_a_card_number_or_a_secret(gw, keys, client):
    """Every screen, after real payments (a card, a refund, a held order), scanned with the session's
    secret scanner: the API key used to sign in, the test cards, webhook secrets, PSP keys, client
    secrets and any key-shaped string."""
    from tests.secret_scan import SecretScanner, session_secrets

    key, plaintext = await keys.make("admin")
    order_id = await paid_order(client, buyer_name="Card Holder")
    held = await paid_order(client, amount="6000.00")
    scanner = SecretScanner(session_secrets())
    scanner.add("the operator's API key", plaintext)
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        assert (await sign_in(http, plaintext)).status_code == 303
        pages = [
            "/console/overview", "/console/payments", f"/console/payments/{order_id}",
            f"/console/payments/{held}", "/console/sellers", "/console/payout-runs", "/console/books",
            "/console/reconciliation", "/console/reconciliation/mismatches", "/console/events",
            "/console/audit",
        ]  # fmt: skip
        for path in pages:
            page = await http.get(path)
            assert page.status_code == 200, (path, page.status_code)
            assert scanner.scan_text(path, page.text) == [], path
    assert key.id  # the key exists; only its id may appear (as the signed-in operator)
