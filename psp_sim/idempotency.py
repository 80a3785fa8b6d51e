"""Stripe's idempotency rules for POST (reference §3).

A key is reserved when the handler starts; the stored answer is replayed verbatim (status, body,
``Idempotent-Replayed: true``), including 402s and 500s. Parameter-validation failures and 429s are not
stored, a different request under the same key is a 400 ``idempotency_error``, and a key whose first
request is still running gets 409 ``idempotency_key_in_use``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from psp_sim.errors import StripeError
from psp_sim.store import TrackedMap

KEY_TTL_SECONDS = 24 * 3600


@dataclass(slots=True)
class Entry:
    fingerprint: tuple[str, str, str]  # method, path, SHA-256 of the body (the body may hold card data)
    created: int
    status: int | None = None  # None while the first request is executing
    body: bytes = b""
    answered: int | None = None
    """When the answer was stored (simulated time): the key's 24 h count from here. From ``created``
    instead, a clock moved on a day while the first request ran would expire the key before its
    caller's retry a moment later (chaos seed 139: a refund made twice)."""


def fingerprint(method: str, path: str, body: bytes) -> tuple[str, str, str]:
    return method, path, hashlib.sha256(body).hexdigest()


def _slot(scope: str, key: str) -> str:
    # The scope holds the caller's API key: only its digest is kept (and written to the state file).
    return hashlib.sha256(scope.encode()).hexdigest()[:32] + "|" + key


def _to_json(e: Entry) -> dict[str, Any]:
    return {
        "fp": list(e.fingerprint),
        "created": e.created,
        "status": e.status,
        "body": e.body.decode("latin-1"),
        "answered": e.answered,
    }  # lossless for any bytes


def _from_json(d: dict[str, Any]) -> Entry:
    method, path, digest = d["fp"]
    return Entry(
        (method, path, digest),
        d["created"],
        d["status"],
        d["body"].encode("latin-1"),
        d.get("answered"),  # absent in state saved before it was kept
    )


CODEC = (_to_json, _from_json)


class IdempotencyStore:
    """Keys and their stored answers, in ``entries`` (a persisted map of the simulator, when given)."""

    def __init__(self, entries: TrackedMap | None = None) -> None:
        self._entries = entries if entries is not None else TrackedMap("idempotency", CODEC)
        # A key still executing when the process stopped was never answered: it starts afresh.
        for slot in [s for s, e in dict.items(self._entries) if e.status is None]:
            del self._entries[slot]

    def clear(self) -> None:
        self._entries.clear()

    def begin(self, scope: str, key: str, fingerprint: tuple[str, str, str], now: int) -> Entry | None:
        """Reserve ``key``; return the finished entry to replay, or None if the caller should execute."""
        if len(key) > 255:
            raise StripeError(
                400,
                "invalid_request_error",
                "Idempotency-Key must be at most 255 characters.",
                param="Idempotency-Key",
            )
        slot = _slot(scope, key)
        entry = self._entries.get(slot)
        if entry is not None and entry.status is not None:
            age = now - (entry.answered if entry.answered is not None else entry.created)
            if age >= KEY_TTL_SECONDS:
                entry = None  # pruned: a new request
        if entry is None:
            self._entries[slot] = Entry(fingerprint, now)
            return None
        if entry.status is None:
            raise StripeError(
                409,
                "invalid_request_error",
                "There is currently another in-progress request using this Stripe token (that probably means you "
                "clicked twice, and the other request is still going through): "
                f"{key}. Try the request again later.",
                code="idempotency_key_in_use",
                should_retry=True,
            )
        if entry.fingerprint != fingerprint:
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used "
                f"with. Try using a key other than '{key}' if you meant to execute a different request.",
                should_retry=False,
            )
        return entry

    def finish(self, scope: str, key: str, status: int, body: bytes, now: int | None = None) -> None:
        entry = self._entries.get(_slot(scope, key))
        if entry is not None:
            entry.status = status
            entry.body = body
            entry.answered = now

    def forget(self, scope: str, key: str) -> None:
        slot = _slot(scope, key)
        entry = dict.get(self._entries, slot)
        if entry is not None and entry.status is None:
            del self._entries[slot]

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "key": slot.split("|", 1)[1],
                "method": e.fingerprint[0],
                "path": e.fingerprint[1],
                "status": e.status,
                "created": e.created,
            }
            for slot, e in dict.items(self._entries)
        ]
