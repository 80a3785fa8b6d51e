"""Stripe's idempotency rules for POST (reference §3).

A key is reserved when the handler starts; the stored answer is replayed verbatim (status, body,
``Idempotent-Replayed: true``), including 402s and 500s. Parameter-validation failures and 429s are not
stored, a different request under the same key is a 400 ``idempotency_error``, and a key whose first
request is still running gets 409 ``idempotency_key_in_use``.
"""

from __future__ import annotations

from dataclasses import dataclass

from psp_sim.errors import StripeError

KEY_TTL_SECONDS = 24 * 3600


@dataclass(slots=True)
class Entry:
    fingerprint: tuple[str, str, bytes]
    created: int
    status: int | None = None  # None while the first request is executing
    body: bytes = b""


class IdempotencyStore:
    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}

    def clear(self) -> None:
        self._entries.clear()

    def begin(self, scope: str, key: str, fingerprint: tuple[str, str, bytes], now: int) -> Entry | None:
        """Reserve ``key``; return the finished entry to replay, or None if the caller should execute."""
        if len(key) > 255:
            raise StripeError(
                400,
                "invalid_request_error",
                "Idempotency-Key must be at most 255 characters.",
                param="Idempotency-Key",
            )
        slot = (scope, key)
        entry = self._entries.get(slot)
        if entry is not None and now - entry.created >= KEY_TTL_SECONDS and entry.status is not None:
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

    def finish(self, scope: str, key: str, status: int, body: bytes) -> None:
        entry = self._entries.get((scope, key))
        if entry is not None:
            entry.status = status
            entry.body = body

    def forget(self, scope: str, key: str) -> None:
        entry = self._entries.get((scope, key))
        if entry is not None and entry.status is None:
            del self._entries[(scope, key)]

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {
                "scope": scope,
                "key": key,
                "method": e.fingerprint[0],
                "path": e.fingerprint[1],
                "status": e.status,
                "created": e.created,
            }
            for (scope, key), e in self._entries.items()
        ]
