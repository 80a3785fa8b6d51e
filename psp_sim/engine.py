"""The simulator's state: objects, ids, clock, scheduled work, events and balances.

Held in memory; what must survive a restart lives in persisted maps (:mod:`psp_sim.store`), the rest is
derived from them on load.

All mutation happens synchronously on the event loop thread, so a handler runs atomically between
awaits and needs no lock; only the idempotency layer has to think about requests in flight.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import heapq
import hmac
import importlib
import itertools
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from psp_sim.cards import CARDS, CardSpec, spec_for
from psp_sim.config import SimConfig
from psp_sim.errors import invalid, missing
from psp_sim.params import integer, string
from psp_sim.store import Codec, StateStore, TrackedMap

T = TypeVar("T")

API_VERSION = "2026-10-28.endive"


class Clock:
    """Wall time plus an offset that only grows, so simulated deadlines can be reached without sleeping."""

    def __init__(self) -> None:
        self.offset = 0

    def now(self) -> int:
        return int(time.time()) + self.offset

    def advance(self, seconds: int) -> int:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds
        return self.now()


@dataclass(slots=True)
class EventRecord:
    """An event holding a shallow snapshot of its object, encoded only when someone reads it.

    A shallow copy is enough because the engine never mutates a nested value in place: it assigns a new
    dict or list instead (see :meth:`Simulator.emit`). That keeps the hot path free of JSON encoding.
    """

    id: str
    type: str
    created: int
    account: str | None
    data: dict[str, Any]
    previous: dict[str, Any] | None
    request_id: str | None
    idempotency_key: str | None
    delivered: bool = False

    def render(self) -> dict[str, Any]:
        data: dict[str, Any] = {"object": self.data}
        if self.previous is not None:
            data["previous_attributes"] = self.previous
        ev: dict[str, Any] = {
            "id": self.id,
            "object": "event",
            "api_version": API_VERSION,
            "created": self.created,
            "data": data,
            "livemode": False,
            "pending_webhooks": 0 if self.delivered else 1,
            "request": {"id": self.request_id, "idempotency_key": self.idempotency_key},
            "type": self.type,
        }
        if self.account:
            ev["account"] = self.account
        return ev


# Which collection an id belongs to, for retrieve and expand.
PREFIX_KIND = {
    "pi": "payment_intent",
    "ch": "charge",
    "re": "refund",
    "tr": "transfer",
    "trr": "transfer_reversal",
    "po": "payout",
    "txn": "balance_transaction",
    "evt": "event",
    "cs": "checkout.session",
    "acct": "account",
    "pm": "payment_method",
    "frr": "reporting.report_run",
    "file": "file",
    "dp": "dispute",
    "ba": "bank_account",
}


_CLIENT_SECRET = re.compile(r"\b(pi_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+")
_SCRUBBED_SECRET = re.compile(r"\b(pi_[A-Za-z0-9]+)_secret_(?![A-Za-z0-9])")

_EVENT_FIELDS = dataclasses.fields(EventRecord)

# Survive an admin reset: the clock and generation (in meta) never go back.
KEPT_ON_RESET = frozenset({"meta", "webhook_endpoints"})


def _event_to_json(rec: EventRecord) -> dict[str, Any]:
    # Not dataclasses.asdict: it deep-copies the object snapshot just to encode it.
    return {f.name: getattr(rec, f.name) for f in _EVENT_FIELDS}


def _event_from_json(data: dict[str, Any]) -> EventRecord:
    return EventRecord(**data)


def _card_digest(number: str) -> str:
    return hashlib.sha256(number.encode()).hexdigest()[:24]


_TEST_CARD_BY_DIGEST = {_card_digest(n): n for n in CARDS}


def _card_to_json(value: tuple[str, CardSpec]) -> dict[str, Any]:
    # Never the card number on disk: a test card's behaviour is found again from its digest, any other
    # number only ever mattered for its brand.
    number, spec = value
    return {"test_card": _card_digest(number) if number in CARDS else None, "brand": spec.brand}


def _card_from_json(data: dict[str, Any]) -> tuple[str, CardSpec]:
    number = _TEST_CARD_BY_DIGEST.get(data["test_card"] or "")
    return ("", CardSpec(brand=data["brand"])) if number is None else (number, spec_for(number))


def _bytes_to_json(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _bytes_from_json(value: str) -> bytes:
    return base64.b64decode(value)


def _resolve(name: str) -> Callable[..., None]:
    """``module:function`` back to the timer function it names."""
    module, _, qualname = name.partition(":")
    fn: Any = importlib.import_module(module)
    for part in qualname.split("."):
        fn = getattr(fn, part)
    return fn


class Simulator:
    """The state; with ``store`` backed by a file it is loaded from there and written through to it."""

    def __init__(self, config: SimConfig | None = None, state_file: str | None = None) -> None:
        self.config = config or SimConfig()
        # Derived secrets (client secrets, the default webhook secret) come from the seed, not the ids'
        # RNG: the same after a restart, so the state file never has to hold them.
        self._secret_key = hashlib.sha256(f"psp_sim secrets/{self.config.seed}".encode()).digest()
        self.store = StateStore(state_file, self._scrub, self._restore)
        self._stored: dict[str, list[tuple[str, Any]]] = {}
        self.clock = Clock()
        self.event_listeners: list[Callable[[EventRecord], None]] = []
        self._maps: dict[str, TrackedMap] = {}
        # Everything below that is a TrackedMap is saved; the rest is derived from it on load.
        self.meta = self.persistent("meta")
        self.objects = self.persistent("objects")
        self.owner = self.persistent("owner")  # object id -> connected account (None = platform)
        self.events_by_id = self.persistent("events", (_event_to_json, _event_from_json))
        self.pm_cards = self.persistent("pm_cards", (_card_to_json, _card_from_json))  # pm -> (number, spec)
        self.files = self.persistent("files", (_bytes_to_json, _bytes_from_json))
        self.bt_payout = self.persistent("bt_payout")  # balance transaction -> automatic payout that swept it
        self.timers = self.persistent("timers")  # seq -> [due, "module:function", args]
        self.pi_checkout = self.persistent("pi_checkout")  # PaymentIntent -> Checkout Session that owns it
        self.pi_attempts = self.persistent("pi_attempts")  # PaymentIntents waiting for 3-D Secure
        self.cs_private = self.persistent("cs_private")  # Session line items and payment_intent_data
        self.bank_numbers = self.persistent(
            "bank_numbers"
        )  # ba_ id -> account number (kept out of the object)
        self._derive_empty()
        self.current_request: tuple[str | None, str | None] = (None, None)
        self.public_base = self.config.public_url or "http://127.0.0.1:12111"
        generation = self._load()
        # Ids are reproducible for a run of a seed, yet never repeat after a reset (which would confuse a
        # system under test keeping its records) or after a restart on stored state (a new generation).
        self.rng = random.Random(self.config.seed if generation == 0 else f"{self.config.seed}/{generation}")
        if "started_at" not in self.meta:
            self.meta["started_at"] = self.clock.now()
        self.commit()

    def persistent(self, name: str, codec: Codec | None = None) -> TrackedMap:
        """The map saved under ``name`` (created on first use, filled from the store if it has it);
        values are JSON unless ``codec`` says how."""
        if name not in self._maps:
            m = self._maps[name] = TrackedMap(name, codec)
            decode = codec[1] if codec else None
            for key, value in self._stored.pop(name, ()):
                m.load(key, decode(value) if decode else value)
        return self._maps[name]

    def derived_secret(self, purpose: str, length: int = 24) -> str:
        return hmac.new(self._secret_key, purpose.encode(), hashlib.sha256).hexdigest()[:length]

    def client_secret(self, intent_id: str) -> str:
        return f"{intent_id}_secret_{self.derived_secret(intent_id)}"

    def _scrub(self, text: str) -> str:
        return _CLIENT_SECRET.sub(r"\1_secret_", text)

    def _restore(self, text: str) -> str:
        return _SCRUBBED_SECRET.sub(lambda m: self.client_secret(m[1]), text)

    # ---- lifecycle -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every object; keep config, listeners, endpoints and the clock offset (time never goes back)."""
        for name, m in self._maps.items():
            if name not in KEPT_ON_RESET:
                m.clear()
        self._derive_empty()
        self.meta["started_at"] = self.clock.now()
        self.meta.pop("platform_bank", None)

    def _derive_empty(self) -> None:
        self.lists: dict[str, list[str]] = {}
        self.events: list[EventRecord] = []
        # (account, currency) -> [available, pending]
        self.balances: dict[tuple[str | None, str], list[int]] = {}
        self._pending_bt: list[tuple[int, str]] = []
        self._timers: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count(int(self.meta.get("timer_seq", 0)))

    def _load(self) -> int:
        """Fill the maps from the store and rebuild what derives from them; return the new generation."""
        stored = self.store.load()
        if not stored:
            return 0
        for name, rows in stored.items():
            m = self._maps.get(name)
            if m is None:  # registered later (idempotency, webhooks): filled by persistent() then
                self._stored[name] = rows
                continue
            decode = m.codec[1] if m.codec else None
            for key, value in rows:
                m.load(key, decode(value) if decode else value)
        self.clock.offset = int(dict.get(self.meta, "clock_offset", 0))
        for obj_id, obj in dict.items(self.objects):
            self.lists.setdefault(obj["object"], []).append(obj_id)
            if obj["object"] == "balance_transaction":
                bal = self.balances.setdefault((dict.get(self.owner, obj_id), obj["currency"]), [0, 0])
                if obj["status"] == "available":
                    bal[0] += obj["net"]
                else:
                    bal[1] += obj["net"]
                    heapq.heappush(self._pending_bt, (obj["available_on"], obj_id))
        self.events = list(dict.values(self.events_by_id))
        seqs = [int(k) for k in dict.keys(self.timers)]
        for key, (due, fn_name, args) in dict.items(self.timers):
            heapq.heappush(self._timers, (due, int(key), _resolve(fn_name), tuple(args)))
        self._seq = itertools.count(max(seqs, default=-1) + 1)
        generation = int(dict.get(self.meta, "generation", 0)) + 1
        self.meta["generation"] = generation
        return generation

    def stage(self) -> int:
        """Queue every change since the last stage for the next write; see :mod:`psp_sim.store`."""
        if dict.get(self.meta, "clock_offset", 0) != self.clock.offset:
            self.meta["clock_offset"] = self.clock.offset
        return self.store.stage(self._maps.values())

    def commit(self) -> None:
        """Stage and write at once, on this thread (start-up, shutdown, direct use without the app)."""
        self.stage()
        self.store.write(*self.store.take())

    def forget_reads(self) -> None:
        """Drop the record of what a read-only request looked at (it changed nothing)."""
        for m in self._maps.values():
            m.forget_reads()

    @property
    def started_at(self) -> int:
        return int(dict.__getitem__(self.meta, "started_at"))

    @property
    def platform_bank(self) -> str | None:
        return dict.get(self.meta, "platform_bank")

    @platform_bank.setter
    def platform_bank(self, value: str | None) -> None:
        self.meta["platform_bank"] = value

    # ---- ids -------------------------------------------------------------------------------
    def new_id(self, prefix: str, length: int = 24) -> str:
        # 6 random bits per character from one draw; base64's two symbols folded into letters (Stripe ids
        # are alphanumeric). Far cheaper than a per-character choice on the create-and-confirm hot path.
        raw = self.rng.getrandbits(6 * length).to_bytes((6 * length + 7) // 8, "big")
        return prefix + base64.b64encode(raw).decode()[:length].replace("+", "x").replace("/", "z")

    # ---- objects ---------------------------------------------------------------------------
    def add(self, obj: dict[str, Any], account: str | None = None) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        self.lists.setdefault(obj["object"], []).append(obj["id"])
        self.owner[obj["id"]] = account
        return obj

    def get(
        self, kind: str, obj_id: str, noun: str | None = None, account: str | None = None
    ) -> dict[str, Any]:
        obj = self.objects.get(obj_id)
        if obj is None or obj["object"] != kind or dict.get(self.owner, obj_id) != account:
            raise missing(noun or kind, obj_id)
        return obj

    def now(self) -> int:
        return self.clock.now()

    # ---- scheduled work --------------------------------------------------------------------
    def at(self, due: int, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(self, *args)`` once simulated time reaches ``due``."""
        seq = next(self._seq)
        heapq.heappush(self._timers, (due, seq, fn, args))
        # Saved by name: a timer is always a module-level function with JSON arguments.
        self.timers[str(seq)] = [due, f"{fn.__module__}:{fn.__qualname__}", list(args)]
        self.meta["timer_seq"] = seq + 1

    def run_due(self) -> int:
        """Run every timer and balance release whose simulated time has come; return how many ran."""
        now = self.clock.now()
        ran = 0
        pending = self._pending_bt
        while pending and pending[0][0] <= now:
            _, bt_id = heapq.heappop(pending)
            self._release(bt_id)
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, seq, fn, args = heapq.heappop(timers)
            self.timers.pop(str(seq), None)
            fn(self, *args)
            ran += 1
        return ran

    # ---- events ----------------------------------------------------------------------------
    def emit(
        self,
        type_: str,
        obj: dict[str, Any],
        account: str | None = None,
        previous: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Record an event with a snapshot of ``obj`` as it is now.

        Contract for every mutation in the engine: replace nested dicts/lists, never change them in place,
        or earlier snapshots (which share them) would change too.
        """
        req_id, idem = self.current_request
        rec = EventRecord(
            id=self.new_id("evt_"),
            type=type_,
            created=self.clock.now(),
            account=account,
            data=dict(obj),
            previous=previous,
            request_id=req_id,
            idempotency_key=idem,
        )
        self.events.append(rec)
        self.events_by_id[rec.id] = rec
        for listener in self.event_listeners:
            listener(rec)
        return rec

    # ---- balances --------------------------------------------------------------------------
    def add_balance_transaction(
        self,
        *,
        account: str | None,
        amount: int,
        currency: str,
        type_: str,
        category: str,
        source: str,
        description: str | None,
        fee: int = 0,
        fee_description: str = "Stripe processing fees",
        available_on: int | None = None,
    ) -> dict[str, Any]:
        now = self.clock.now()
        available_on = now if available_on is None else available_on
        bt: dict[str, Any] = {
            "id": self.new_id("txn_"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": available_on,
            "balance_type": "payments",
            "created": now,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": (
                [
                    {
                        "amount": fee,
                        "application": None,
                        "currency": currency,
                        "description": fee_description,
                        "type": "stripe_fee",
                    }
                ]
                if fee
                else []
            ),
            "net": amount - fee,
            "reporting_category": category,
            "source": source,
            "status": "available" if available_on <= now else "pending",
            "type": type_,
        }
        self.add(bt, account)
        bal = self.balances.setdefault((account, currency), [0, 0])
        if bt["status"] == "available":
            bal[0] += bt["net"]
        else:
            bal[1] += bt["net"]
            heapq.heappush(self._pending_bt, (available_on, bt["id"]))
        return bt

    def _release(self, bt_id: str) -> None:
        bt = self.objects.get(bt_id)
        if bt is None or bt["status"] != "pending":
            return
        bt["status"] = "available"
        bal = self.balances[(dict.get(self.owner, bt_id), bt["currency"])]
        bal[1] -= bt["net"]
        bal[0] += bt["net"]

    def available(self, account: str | None, currency: str) -> int:
        return self.balances.get((account, currency), [0, 0])[0]

    def balance_object(self, account: str | None) -> dict[str, Any]:
        avail, pend = [], []
        for (acct, cur), (a, p) in sorted(self.balances.items(), key=lambda kv: kv[0][1]):
            if acct == account:
                avail.append({"amount": a, "currency": cur, "source_types": {"card": a}})
                pend.append({"amount": p, "currency": cur, "source_types": {"card": p}})
        return {"object": "balance", "available": avail, "pending": pend, "livemode": False}

    # ---- listing ---------------------------------------------------------------------------
    # Stored objects (dicts) page as they are; anything else names how to find its id and render it.
    @overload
    def paginate(
        self, items: Iterable[dict[str, Any]], params: dict[str, Any], url: str
    ) -> dict[str, Any]: ...

    @overload
    def paginate(
        self,
        items: Iterable[T],
        params: dict[str, Any],
        url: str,
        id_of: Callable[[T], str],
        render: Callable[[T], dict[str, Any]],
    ) -> dict[str, Any]: ...

    def paginate(
        self,
        items: Iterable[Any],
        params: dict[str, Any],
        url: str,
        id_of: Callable[[Any], str] = lambda o: o["id"],
        render: Callable[[Any], dict[str, Any]] = lambda o: o,
    ) -> dict[str, Any]:
        """Stripe list semantics over ``items`` given newest first: limit, starting_after, ending_before."""
        limit = integer(params, "limit")
        limit = 10 if limit is None else limit
        if not 1 <= limit <= 100:
            raise invalid("Limit must be between 1 and 100.", param="limit")
        after = string(params, "starting_after")
        before = string(params, "ending_before")
        seq = list(items)
        ids = [id_of(o) for o in seq]
        if after:
            if after not in ids:
                raise missing("object", after, "starting_after")
            seq = seq[ids.index(after) + 1 :]
            page, has_more = seq[:limit], len(seq) > limit
        elif before:
            if before not in ids:
                raise missing("object", before, "ending_before")
            seq = seq[: ids.index(before)]
            page, has_more = seq[-limit:], len(seq) > limit
        else:
            page, has_more = seq[:limit], len(seq) > limit
        return {"object": "list", "url": url, "has_more": has_more, "data": [render(o) for o in page]}

    def newest_first(self, kind: str, account: str | None = None) -> Iterable[dict[str, Any]]:
        owner = self.owner
        objects = self.objects
        for obj_id in reversed(self.lists.get(kind, [])):
            if dict.get(owner, obj_id) == account:
                yield objects[obj_id]


def created_filter(params: dict[str, Any]) -> Callable[[int], bool]:
    """``created=123`` or ``created[gt|gte|lt|lte]=…`` as a predicate."""
    raw = params.get("created")
    if raw is None:
        return lambda _ts: True
    if isinstance(raw, str):
        exact = integer(params, "created")
        return lambda ts: ts == exact
    bounds = {op: integer(raw, op) for op in ("gt", "gte", "lt", "lte")}

    def ok(ts: int) -> bool:
        return (
            (bounds["gt"] is None or ts > bounds["gt"])
            and (bounds["gte"] is None or ts >= bounds["gte"])
            and (bounds["lt"] is None or ts < bounds["lt"])
            and (bounds["lte"] is None or ts <= bounds["lte"])
        )

    return ok
