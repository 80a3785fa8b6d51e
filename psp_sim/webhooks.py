"""Outgoing webhooks: signed like Stripe, retried with exponential backoff on the simulator clock.

Deliveries wait in a heap keyed by simulated due time; a background task sends what is due and sleeps
until woken (new event, clock advance) or a short real-time tick, so advancing the clock triggers due
retries at once instead of after real minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import hmac
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import aiohttp

from psp_sim.engine import EventRecord, Simulator
from psp_sim.faults import FaultEngine

log = logging.getLogger("psp_sim.webhooks")


def retry_delay(attempt: int, base_seconds: int, max_attempts: int) -> int | None:
    """Delay before attempt ``attempt + 1`` after ``attempt`` failed; None once attempts are used up."""
    if attempt >= max_attempts:
        return None
    return base_seconds * 2 ** (attempt - 1)


def sign(payload: str, secret: str, timestamp: int) -> str:
    """``Stripe-Signature`` value: HMAC-SHA256 of ``"{t}.{payload}"`` keyed by the whole ``whsec_`` string."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass
class Endpoint:
    id: str
    url: str
    secret: str
    enabled_events: list[str] = field(default_factory=lambda: ["*"])

    def wants(self, event_type: str) -> bool:
        return any(
            p == "*" or p == event_type or (p.endswith(".*") and event_type.startswith(p[:-1]))
            for p in self.enabled_events
        )

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        """As listed: the secret only as its last four characters (Stripe shows it once, at creation)."""
        shown: dict[str, Any] = {"secret": self.secret} if with_secret else {"secret_last4": self.secret[-4:]}
        return {
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            **shown,
            "enabled_events": self.enabled_events,
            "status": "enabled",
        }


@dataclass
class Delivery:
    event: EventRecord
    endpoint: Endpoint
    attempt: int = 0
    duplicate: bool = False
    key: str = ""  # its entry in the saved queue, removed once this attempt has an outcome


class WebhookDispatcher:
    """Endpoints and the queue of deliveries are saved with the simulator's state: a delivery due
    before a restart is sent after it (at least once, as Stripe promises)."""

    def __init__(self, sim: Simulator, faults: FaultEngine) -> None:
        self.sim = sim
        self.faults = faults
        self._saved_endpoints = sim.persistent("webhook_endpoints")
        self._saved_queue = sim.persistent("webhook_queue")  # seq -> due, event, endpoint, attempt, …
        # From the seed, not stored: no webhook secret rests in the state file.
        self.default_secret = sim.config.webhook_secret or "whsec_" + sim.derived_secret("webhook", 32)
        self.attempts: list[dict[str, Any]] = []
        self._queue: list[tuple[int, int, Delivery]] = []
        self._held: list[tuple[int, Delivery]] = []  # out-of-order: released after the next event
        self._wake = asyncio.Event()
        self._inflight = 0
        self._client: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        # How changes made here reach the state file; the app replaces it with its non-blocking save.
        self.save: Callable[[], None] = sim.commit
        self.endpoints: list[Endpoint] = []
        self._restore(sim.config.webhook_endpoints)
        sim.event_listeners.append(self.on_event)

    def _restore(self, configured: list[dict[str, Any]]) -> None:
        """Saved endpoints and queue back.

        Secrets are not saved: a configured endpoint takes its secret from the config again (and replaces
        what an earlier config made), one added at run time with the default secret gets it again, and
        one added with a secret of its own is gone after a restart (with its queued deliveries).
        """
        wanted = {ep["url"]: ep for ep in configured}
        for ep_id, saved in list(dict.items(self._saved_endpoints)):
            conf = wanted.pop(saved["url"], None) if saved["from_config"] else None
            if (saved["from_config"] and conf is None) or saved["own_secret"]:
                del self._saved_endpoints[ep_id]
                continue
            if conf is not None:
                secret, events = (
                    conf.get("secret") or self.default_secret,
                    conf.get("enabled_events") or ["*"],
                )
                if events != saved["enabled_events"]:
                    self._saved_endpoints[ep_id] = {**saved, "enabled_events": events}
            else:
                secret, events = self.default_secret, saved["enabled_events"]
            self.endpoints.append(Endpoint(ep_id, saved["url"], secret, events))
        for ep in wanted.values():
            self.add_endpoint(ep["url"], ep.get("secret"), ep.get("enabled_events"), from_config=True)
        self._seq = itertools.count(max((int(k) for k in dict.keys(self._saved_queue)), default=-1) + 1)
        by_id = {ep.id: ep for ep in self.endpoints}
        for key, item in list(dict.items(self._saved_queue)):
            event = dict.get(self.sim.events_by_id, item["event"])
            endpoint = by_id.get(item["endpoint"])
            if event is None or endpoint is None:  # its endpoint was removed: no more attempts, as in Stripe
                del self._saved_queue[key]
                continue
            d = Delivery(event, endpoint, item["attempt"], item["duplicate"], key)
            heapq.heappush(self._queue, (item["due"], int(key), d))

    # ---- configuration -------------------------------------------------------------------
    def add_endpoint(
        self,
        url: str,
        secret: str | None = None,
        enabled_events: list[str] | None = None,
        *,
        from_config: bool = False,
    ) -> Endpoint:
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must be http(s)")
        ep = Endpoint(self.sim.new_id("we_"), url, secret or self.default_secret, enabled_events or ["*"])
        self.endpoints.append(ep)
        self._saved_endpoints[ep.id] = {
            "url": ep.url,
            "enabled_events": ep.enabled_events,
            "from_config": from_config,
            "own_secret": bool(secret) and not from_config,
        }
        return ep

    def remove_endpoint(self, ep_id: str) -> bool:
        before = len(self.endpoints)
        self.endpoints = [e for e in self.endpoints if e.id != ep_id]
        self._saved_endpoints.pop(ep_id, None)
        return len(self.endpoints) != before

    def reset(self) -> None:
        self._queue.clear()
        self._held.clear()
        self._saved_queue.clear()
        self.attempts.clear()

    # ---- intake --------------------------------------------------------------------------
    def on_event(self, rec: EventRecord) -> None:
        targets = [ep for ep in self.endpoints if ep.wants(rec.type)]
        if not targets:
            return
        now = self.sim.now()
        due, copies, hold = now, 1, False
        for rule in self.faults.webhook(rec.type) if self.faults.active else ():
            self.faults.record(rule, now, event_id=rec.id, event_type=rec.type)
            if rule.kind == "webhook_drop":
                return
            if rule.kind == "webhook_delay":
                due = now + rule.delay_seconds
            elif rule.kind == "webhook_duplicate":
                copies = 2
            elif rule.kind == "webhook_out_of_order":
                hold = True
        held, self._held = self._held, []
        for ep in targets:
            for i in range(copies):
                d = Delivery(rec, ep, duplicate=i > 0)
                if hold:
                    self._held.append((now + 60, d))
                    self._save_held(now + 60, d)
                else:
                    self._push(due, d)
        # Whatever was held goes out after this event, which is what makes the pair arrive swapped.
        for _, d in held:
            self._push(now, d)
        self._wake.set()

    def _push(self, due: int, d: Delivery) -> None:
        seq = next(self._seq)
        self._done(d)
        d.key = str(seq)
        self._saved_queue[d.key] = {
            "due": due,
            "event": d.event.id,
            "endpoint": d.endpoint.id,
            "attempt": d.attempt,
            "duplicate": d.duplicate,
        }
        heapq.heappush(self._queue, (due, seq, d))

    def _done(self, d: Delivery) -> None:
        if d.key:
            self._saved_queue.pop(d.key, None)
            d.key = ""

    def _save_held(self, release_at: int, d: Delivery) -> None:
        # Saved as a plain delivery at its release time: after a restart it goes out then, unswapped.
        d.key = str(next(self._seq))
        self._saved_queue[d.key] = {
            "due": release_at,
            "event": d.event.id,
            "endpoint": d.endpoint.id,
            "attempt": d.attempt,
            "duplicate": d.duplicate,
        }

    def wake(self) -> None:
        self._wake.set()

    @property
    def idle(self) -> bool:
        now = self.sim.now()
        return self._inflight == 0 and not (self._queue and self._queue[0][0] <= now) and not self._held

    def pending(self) -> int:
        return len(self._queue) + len(self._held)

    # ---- sending -------------------------------------------------------------------------
    async def start(self) -> None:
        # aiohttp: about a third of httpx's CPU per request (a burst of payouts paid at once is
        # thousands of deliveries). Each delivery in flight keeps its connection for the next.
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.sim.config.webhook_timeout_seconds),
            connector=aiohttp.TCPConnector(limit=max(20, self.sim.config.webhook_concurrency)),
        )
        self._task = asyncio.create_task(self._run(), name="psp-sim-webhooks")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client:
            await self._client.close()

    def _take_due(self) -> list[Delivery]:
        now = self.sim.now()
        if self._held:
            keep = []
            for release_at, d in self._held:
                if release_at <= now:
                    self._push(now, d)
                else:
                    keep.append((release_at, d))
            self._held = keep
        due = []
        while self._queue and self._queue[0][0] <= now:
            due.append(heapq.heappop(self._queue)[2])
        return due

    async def _run(self) -> None:
        while True:
            self.sim.run_due()
            self.save()
            batch = self._take_due()
            if batch:
                self._inflight += len(batch)
                by_endpoint: dict[str, list[Delivery]] = {}
                for d in batch:
                    by_endpoint.setdefault(d.endpoint.id, []).append(d)
                await asyncio.gather(*(self._send_in_order(ds) for ds in by_endpoint.values()))
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.2)

    async def _send_in_order(self, deliveries: list[Delivery]) -> None:
        # One endpoint's due deliveries go out sequentially so that injected reordering is what it sees;
        # with ``webhook_concurrency`` above 1 and no fault rule set, they overlap (a burst of payouts
        # paid at once would otherwise reach the receiver at the pace of one round trip).
        width = self.sim.config.webhook_concurrency
        if width > 1 and not self.faults.active and len(deliveries) > 1:
            limit = asyncio.Semaphore(width)

            async def one(d: Delivery) -> None:
                async with limit:
                    await self._send_in_order([d])

            await asyncio.gather(*(one(d) for d in deliveries))
            return
        for d in deliveries:
            try:
                if d.endpoint in self.endpoints:  # a deleted endpoint gets no more attempts, as in Stripe
                    await self._send(d)
                else:
                    self._done(d)
            finally:
                self._inflight -= 1
                try:
                    self.save()
                except Exception:  # a full disk: the delivery stays queued in the file, sent again later
                    log.exception("could not save the webhook queue")

    async def _send(self, d: Delivery) -> None:
        assert self._client is not None
        cfg = self.sim.config
        d.attempt += 1
        now = self.sim.now()
        payload = json.dumps(d.event.render(), indent=2)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            # Wall-clock time, not simulated: receivers check it against their own clock for replay protection.
            "Stripe-Signature": sign(payload, d.endpoint.secret, int(time.time())),
        }
        record: dict[str, Any] = {
            "event_id": d.event.id,
            "type": d.event.type,
            "endpoint_id": d.endpoint.id,
            "url": d.endpoint.url,
            "attempt": d.attempt,
            "sim_time": now,
            "duplicate": d.duplicate,
            "status_code": None,
            "error": None,
            "next_attempt_at": None,
            "delivered": False,
        }
        try:
            async with self._client.post(d.endpoint.url, data=payload.encode(), headers=headers) as resp:
                await resp.read()  # the connection goes back to the pool for the next delivery
                record["status_code"] = resp.status
                ok = 200 <= resp.status < 300
        except TimeoutError:
            record["error"] = "timeout"
            ok = False
        except aiohttp.ClientError as e:
            record["error"] = f"{type(e).__name__}: {e}"
            ok = False
        record["delivered"] = ok
        if ok:
            d.event.delivered = True
            self.sim.events_by_id.touch(d.event.id)
            self._done(d)
        else:
            delay = retry_delay(d.attempt, cfg.webhook_retry_base_seconds, cfg.webhook_max_attempts)
            if delay is not None:
                record["next_attempt_at"] = now + delay
                self._push(now + delay, d)
            else:
                self._done(d)
        self.attempts.append(record)
        log.info(
            "webhook %s %s -> %s attempt=%d",
            d.event.type,
            d.endpoint.url,
            record["status_code"] or record["error"],
            d.attempt,
        )
