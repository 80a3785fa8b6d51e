"""API keys: generation, storage (hashed) and look-up with a short in-process cache.

A key is ``mpk_`` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored. Look-up is by that
hash through a unique index, so no constant-time comparison is needed: an attacker timing the index
probe learns at most something about the *hash* of a guess, which gives no handle on a 256-bit key
(finding a key from its hash is a preimage attack), and guessing is bounded by the key space, not time.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import API_KEY_RE
from gateway.models import api_keys

KEY_PREFIX = "mpk_"
SCOPES = ("payments", "admin")
"""``payments``: the client routes (pay, read, list, refund). ``admin``: operator routes (review, ledger,
sellers' wallets)."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    key_prefix: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(key: str) -> bool:
    """Cheap syntactic check, so garbage never reaches the database."""
    return bool(API_KEY_RE.match(key))


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    out = sorted(set(scopes))
    unknown = [s for s in out if s not in SCOPES]
    if unknown or not out:
        raise ValueError(f"scopes must be a non-empty subset of {list(SCOPES)}, got {out}")
    return out


def _row(row: sa.Row) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        key_prefix=row.key_prefix,
        scopes=frozenset(row.scopes),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


# -- repository --------------------------------------------------------------------------------------


async def create(conn: AsyncConnection, name: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
    """Store a new key; return it with the plaintext, which exists only in this return value."""
    if not name or len(name) > 200:
        raise ValueError("name must be 1-200 characters")
    key = generate_key()
    row = (
        await conn.execute(
            api_keys.insert()
            .values(
                id="key_" + secrets.token_hex(6),
                name=name,
                key_hash=hash_key(key),
                key_prefix=key[: len(KEY_PREFIX) + 6],
                scopes=_check_scopes(scopes),
            )
            .returning(*api_keys.c)
        )
    ).one()
    return _row(row), key


async def upsert(conn: AsyncConnection, key: str, name: str, scopes: Iterable[str]) -> ApiKey:
    """Make sure ``key`` exists, active, with these scopes (the development key; idempotent)."""
    scope_list = _check_scopes(scopes)
    stmt = insert(api_keys).values(
        id="key_" + hash_key(key)[:12],
        name=name,
        key_hash=hash_key(key),
        key_prefix=key[: len(KEY_PREFIX) + 6],
        scopes=scope_list,
    )
    upsert_stmt = stmt.on_conflict_do_update(
        index_elements=[api_keys.c.key_hash],
        set_={"name": name, "scopes": scope_list, "revoked_at": None},
    ).returning(*api_keys.c)
    return _row((await conn.execute(upsert_stmt)).one())


async def find_by_hash(conn: AsyncConnection, key_hash: str) -> ApiKey | None:
    row = (await conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == key_hash))).one_or_none()
    return _row(row) if row else None


async def list_all(conn: AsyncConnection) -> list[ApiKey]:
    rows = await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
    return [_row(r) for r in rows]


async def revoke(conn: AsyncConnection, key_id: str) -> ApiKey | None:
    """Revoke a key (keeping the first revocation time). None when no such key."""
    row = (
        await conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id)
            .values(revoked_at=sa.func.coalesce(api_keys.c.revoked_at, sa.func.now()))
            .returning(*api_keys.c)
        )
    ).one_or_none()
    return _row(row) if row else None


# -- look-up on the hot path -------------------------------------------------------------------------


class KeyAuthenticator:
    """Resolves a presented key to an active :class:`ApiKey`, caching hits for ``ttl_seconds``.

    Only active keys are cached, so a new key works at once; a revoked one keeps working in this
    process until its cache entry expires (at most ``ttl_seconds``). Misses are not cached: they
    cost one indexed read, and keys that are not even well-formed never reach the database.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()

    async def authenticate(self, presented: str) -> ApiKey | None:
        if not looks_like_key(presented):
            return None
        digest = hash_key(presented)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._cache[digest]
        async with self._engine.connect() as conn:
            found = await find_by_hash(conn, digest)
        if found is None or not found.active:
            return None
        if self._ttl > 0:
            self._cache[digest] = (now + self._ttl, found)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return found
