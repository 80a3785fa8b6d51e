"""The console's events screen over HTTP: streams and dead letters listed, a dead letter with its attempts,
replay and discard through the payment service's EventsAdminService with a required reason, audited; no
action without a session and its CSRF token; hostile strings in an event shown escaped.

Each test puts its own dead letter in the payment service's dead-letter stream, for a consumer group of its
own: a replayed copy goes back to the live stream for that group only, which no real consumer is, so the
real consumers acknowledge it without running a handler."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest_asyncio
from markupsafe import escape
from redis.asyncio import Redis

from svckit.events.channels import Channels, utc_now_iso
from svckit.events.config import Keys
from svckit.events.message import Attempt, Event
from tests.console.conftest import csrf_of

BASE = "/console/events"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest_asyncio.fixture
async def bus(services):
    settings = services["payment"].settings
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    yield redis, Keys(settings.events_namespace)
    await redis.aclose()


async def dead_letter(bus, error: str = "ledger said no", payload_note: str = "") -> str:
    """A dead letter of an event that failed three times; its entry id."""
    redis, keys = bus
    event = Event(
        event_id=str(uuid.uuid4()),
        type="payment.order.succeeded",
        aggregate_id=f"chk_{uuid.uuid4().hex[:12]}_0",
        payload={"amount_minor": 2500, "currency": "USD", "note": payload_note},
        occurred_at=utc_now_iso(),
        attempt=3,
        history=(Attempt(1, utc_now_iso(), "timeout"), Attempt(2, utc_now_iso(), "timeout")),
    )
    async with redis.pipeline(transaction=True) as pipe:
        Channels(redis, keys).dead_letter(
            pipe, keys.events, f"console-test-{uuid.uuid4().hex[:8]}", event,
            Attempt(3, utc_now_iso(), error), "attempts_exhausted",
        )  # fmt: skip
        [entry_id] = await pipe.execute()
    return str(entry_id)


async def _exists(bus, entry_id: str) -> bool:
    redis, keys = bus
    return bool(await redis.xrange(keys.dlq, entry_id, entry_id))


async def test_a_dead_letter_is_listed_shown_and_replayed_with_a_reason(operator, bus):
    entry_id = await dead_letter(bus)
    overview = await operator.http.get(BASE)
    assert overview.status_code == 200, overview.text
    assert "Streams and consumer groups" in overview.text and "Dead letters" in overview.text
    page = await operator.http.get(f"{BASE}/dead-letters/{entry_id}")
    assert page.status_code == 200, page.text
    assert "ledger said no" in page.text and "attempts_exhausted" in page.text
    assert page.text.count("timeout") == 2 and "&#34;amount_minor&#34;: 2500" in page.text
    url = f"{BASE}/dead-letters/{entry_id}/replay"
    r = await operator.http.post(url, data={"csrf": csrf_of(page.text), "note": "  "})
    assert r.status_code == 400 and "Say why" in r.text and await _exists(bus, entry_id)

    r = await operator.http.post(url, data={"csrf": csrf_of(page.text), "note": "ledger fixed in 1.4.2"})
    assert (r.status_code, r.headers["location"]) == (303, f"{BASE}?done=replay")
    assert not await _exists(bus, entry_id)
    redis, keys = bus
    copies = [
        f for _, f in await redis.xrevrange(keys.events, count=200) if f.get("replayed_from") == entry_id
    ]
    assert len(copies) == 1 and copies[0]["attempt"] == "1"
    audit = (await operator.http.get("/console/audit", params={"target": entry_id})).text
    assert "events.replay" in audit and "ledger fixed in 1.4.2" in audit and "re-published as" in audit
    assert f'href="/console/events/dead-letters/{entry_id}"' in audit
    # Handled once: a second replay is refused by the service and changes nothing.
    again = await operator.http.post(url, data={"csrf": csrf_of(page.text), "note": "again"})
    assert again.status_code == 409 and "DEAD_LETTER_NOT_FOUND" in again.text


async def test_a_dead_letter_is_discarded_with_the_reason_and_operator_kept(operator, bus):
    entry_id = await dead_letter(bus)
    csrf = await operator.csrf()
    r = await operator.http.post(
        f"{BASE}/dead-letters/{entry_id}/discard", data={"csrf": csrf, "note": "refunded by hand, OPS-12"}
    )
    assert r.status_code == 303, r.text
    assert not await _exists(bus, entry_id)
    redis, keys = bus
    trail = [f for _, f in await redis.xrevrange(keys.discarded, count=200) if entry_id in json.dumps(f)]
    assert len(trail) == 1
    assert trail[0]["reason"] == "refunded by hand, OPS-12" and operator.key_id in trail[0]["operator"]
    assert (await operator.http.get(f"{BASE}/dead-letters/{entry_id}")).status_code == 404


async def test_no_events_page_or_action_without_a_session_and_its_csrf_token(gw, operator, bus):
    entry_id = await dead_letter(bus)
    actions = [f"{BASE}/dead-letters/{entry_id}/{a}" for a in ("replay", "discard")]
    async with httpx.AsyncClient(base_url=gw.url) as http:
        for path in (BASE, f"{BASE}/dead-letters/{entry_id}"):
            r = await http.get(path)
            assert (r.status_code, r.headers["location"]) == (303, "/console/sign-in"), path
        for path in actions:
            assert (await http.post(path, data={"csrf": "x", "note": "n"})).status_code == 403
    for path in actions:
        r = await operator.http.post(path, data={"csrf": "wrong", "note": "n"})
        assert r.status_code == 403 and "Form expired" in r.text
    assert await _exists(bus, entry_id)
    assert (await operator.http.get(f"{BASE}/dead-letters/not-an-id")).status_code == 404


async def test_hostile_strings_in_a_dead_letter_are_escaped(operator, bus):
    entry_id = await dead_letter(bus, error="boom " + HOSTILE, payload_note=HOSTILE)
    pages = [
        (await operator.http.get(BASE)).text,
        (await operator.http.get(f"{BASE}/dead-letters/{entry_id}")).text,
    ]
    r = await operator.http.post(
        f"{BASE}/dead-letters/{entry_id}/replay",
        data={"csrf": await operator.csrf(), "note": "why " + HOSTILE},
    )
    assert r.status_code == 303
    pages.append((await operator.http.get("/console/audit", params={"target": entry_id})).text)
    for page in pages:
        assert "<script" not in page and "<img" not in page
    assert str(escape("boom " + HOSTILE)) in pages[1]
    assert str(escape("why " + HOSTILE)) in pages[2]
