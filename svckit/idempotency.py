"""Idempotency keys for mutating RPCs: one effect per (scope, key), whatever the retries and races.

The record of a key is written in the same database transaction as the effect, under a primary key
on (scope, key), so a committed effect always has its stored answer and vice versa. While a request
runs it holds a transaction-scoped advisory lock on the key: a concurrent duplicate sees the lock
and is told the key is in use (ABORTED, ``IDEMPOTENCY_KEY_IN_USE``) instead of waiting. A crashed
holder's transaction rolls back, which releases the lock and leaves no half-finished record.

Rules (same as Stripe's API):
- same key, same request       → the stored response, flagged as replayed;
- same key, different request  → ``IDEMPOTENCY_KEY_REUSED`` (HTTP 422);
- same key, first still running → ``IDEMPOTENCY_KEY_IN_USE`` (HTTP 409 with Retry-After, gRPC ABORTED);
- a request that fails rolls back and stores nothing, so it may be retried with the same key.

Three ways to use it, one protocol and one table: ``IdempotencyStore.run`` (one call, one
transaction), ``IdempotencyStore.claim`` (one call spanning several transactions), and for batches
whose items each carry their own key, ``IdempotencyStore.run_many`` with ``probe_many`` and
``RECORD_MANY`` in its transaction. The ledger's posting functions follow the same protocol in SQL
(same table, lock ids from :func:`lock_id`, fingerprints from :func:`fingerprint`); the scenarios in
``tests/test_idempotency_contract.py`` hold every implementation to it.

One module, longer than most, because it is one protocol: the single, claimed and batch forms share
the probe, the records and the refusals, and must be read side by side to see that they agree.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import psycopg
import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svckit.context import REPLAYED_METADATA, idempotency_key_var
from svckit.db import DriverPool, one_row
from svckit.errors import Aborted, DomainError, Internal, InvalidArgument, Unprocessable
from svckit.logging import get_logger
from svckit.metrics import IDEMPOTENCY_CONFLICTS, IDEMPOTENT_REPLAYS

log = get_logger(__name__)

MAX_KEY_LENGTH = 255

idempotency_metadata = sa.MetaData()

idempotency_keys = sa.Table(
    "idempotency_keys",
    idempotency_metadata,
    sa.Column(
        "scope", sa.Text, primary_key=True, comment="Operation the key belongs to, e.g. ledger.CreateAccount"
    ),
    sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
    sa.Column("fingerprint", sa.LargeBinary, nullable=False, comment="SHA-256 of scope and request bytes"),
    sa.Column("response", sa.LargeBinary, nullable=False, comment="Serialized protobuf response"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
sa.Index("ix_idempotency_keys_created_at", idempotency_keys.c.created_at)


def create_table_in_migration() -> None:
    """Create the idempotency table; called from each service's first Alembic revision."""
    from alembic import op

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("key", sa.String(MAX_KEY_LENGTH), primary_key=True),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def fingerprint(scope: str, request: Message) -> bytes:
    return hashlib.sha256(scope.encode() + b"\x00" + request.SerializeToString(deterministic=True)).digest()


def lock_id(scope: str, key: str) -> int:
    """The advisory lock that marks (scope, key) in use; code outside Python (the ledger's posting
    function) must take this same id to share the protocol."""
    digest = hashlib.blake2b(f"{scope}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def validate_key(key: str | None) -> str:
    if not key:
        raise InvalidArgument(
            "IDEMPOTENCY_KEY_MISSING",
            "this call changes state and needs an idempotency-key",
            field="idempotency-key",
        )
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidArgument(
            "IDEMPOTENCY_KEY_TOO_LONG",
            f"idempotency-key is {len(key)} characters; at most {MAX_KEY_LENGTH} are allowed",
            field="idempotency-key",
        )
    return key


R = TypeVar("R", bound=Message)
T = TypeVar("T")


def key_reused() -> Unprocessable:
    return Unprocessable(
        "IDEMPOTENCY_KEY_REUSED",
        "this idempotency-key was already used with a different request; use a new key",
    )


def key_in_use() -> Aborted:
    return Aborted(
        "IDEMPOTENCY_KEY_IN_USE",
        "a request with this idempotency-key is still being processed; retry shortly",
        {"retry_after_seconds": "1"},
    )


@dataclass(frozen=True)
class ItemKey:
    """The key of one item of a batch: the scope, key and request fingerprint a single call with
    this key and request has, so batch items and single calls share keys."""

    scope: str
    key: str
    fingerprint: bytes

    @classmethod
    def of(cls, scope: str, key: str, request: Message) -> ItemKey:
        return cls(scope, key, fingerprint(scope, request))

    @property
    def lock_id(self) -> int:
        return lock_id(self.scope, self.key)


@dataclass(frozen=True)
class StoredAnswer:
    """The answer kept under a key, serialized: a new effect's, or (``replayed``) an earlier one's."""

    data: bytes
    replayed: bool


@dataclass(frozen=True)
class Outcome:
    response: Message
    replayed: bool


@dataclass
class Claim:
    """The right to run one long operation for (scope, key); see :meth:`IdempotencyStore.claim`."""

    scope: str
    key: str
    fingerprint: bytes
    replay_payload: bytes | None = None
    _conn: psycopg.AsyncConnection | None = field(default=None, repr=False)
    _released: bool = field(default=False, repr=False)

    def replay(self, response_type: type[R]) -> R | None:
        if self.replay_payload is None:
            return None
        response = response_type()
        response.ParseFromString(self.replay_payload)
        return response

    async def finish(self, response: R) -> R:
        """Record the final answer and release the key, in one statement on the claim's own connection
        (for an operation whose last transaction is already committed). Returns the answer to give,
        as :meth:`save` does."""
        if self._conn is None:
            raise RuntimeError("finish() needs a claim taken by IdempotencyStore.claim")
        params = {
            "scope": self.scope,
            "key": self.key,
            "fingerprint": self.fingerprint,
            "response": response.SerializeToString(),
            "lock": lock_id(self.scope, self.key),
        }
        stored, _unlocked = one_row(await (await self._conn.execute(_FINISH, params)).fetchone(), "finish")
        self._released = True
        if stored:
            return response
        # Lost a race: the same request finished first; answer with its record.
        found = await (await self._conn.execute(_LOOKUP, params)).fetchone()
        found_fp, found_response = one_row(found, "idempotency record after a conflict")
        return self._winner(found_fp, found_response, type(response))

    async def save(self, conn: AsyncConnection, response: R) -> R:
        """Record the final answer (in the operation's last transaction, or alone on an autocommit
        connection) and return the answer to give: normally ``response``; the stored one if the same
        request finished first in a race (see :meth:`IdempotencyStore.claim`)."""
        stored = await conn.scalar(
            pg_insert(idempotency_keys)
            .values(
                scope=self.scope,
                key=self.key,
                fingerprint=self.fingerprint,
                response=response.SerializeToString(),
            )
            .on_conflict_do_nothing()
            .returning(idempotency_keys.c.key)
        )
        if stored is not None:
            return response
        row = one_row(await _lookup(conn, self.scope, self.key), "idempotency record after a conflict")
        return self._winner(row.fingerprint, row.response, type(response))

    def _winner(self, stored_fp: bytes, payload: bytes, response_type: type[R]) -> R:
        """The stored answer of the same request that finished first (REUSED if it was another)."""
        _check_fingerprint(self.scope, stored_fp, self.fingerprint)
        log.info("idempotency key committed concurrently; replaying", scope=self.scope)
        winner = response_type()
        winner.ParseFromString(bytes(payload))
        return winner


# The unlock runs inside the statement, a moment before its commit: a duplicate that probes in
# between finds the key free and unfinished, re-runs the (resumable) operation and, saving, meets
# this record and answers with it, as in any other race the probe can lose.
_FINISH = (
    "WITH saved AS ("
    " INSERT INTO idempotency_keys (scope, key, fingerprint, response)"
    " VALUES (%(scope)s, %(key)s, %(fingerprint)s, %(response)s) ON CONFLICT DO NOTHING RETURNING key"
    ") SELECT EXISTS (SELECT 1 FROM saved), pg_advisory_unlock(%(lock)s)"
)
_LOOKUP = "SELECT fingerprint, response FROM idempotency_keys WHERE scope = %(scope)s AND key = %(key)s"
# (got, fingerprint, response): the key's session lock tried, and its finished record if any.
_CLAIM_PROBE = (
    "SELECT pg_try_advisory_lock(%(lock)s), k.fingerprint, k.response FROM (SELECT 1) AS one"
    " LEFT JOIN idempotency_keys AS k ON k.scope = %(scope)s AND k.key = %(key)s"
)


async def _release_session_locks(conn: psycopg.AsyncConnection, scope: str) -> None:
    """Drop every session lock of a claim's connection (it serves one claim at a time), or, when that
    cannot be confirmed (cancelled again, statement or connection failed), close the connection:
    its session ends and the server frees its locks; the pool replaces a closed connection."""
    try:
        await conn.execute("SELECT pg_advisory_unlock_all()")
    except BaseException as exc:
        await conn.close()
        if not isinstance(exc, Exception):
            raise  # a cancellation (or exit) must still propagate
        # The request's own outcome (answer or error) is the one to report, not this clean-up's.
        log.warning(
            "could not release an idempotency key; connection closed", scope=scope, error=type(exc).__name__
        )


async def _lookup(conn: AsyncConnection, scope: str, key: str) -> sa.Row | None:
    stmt = sa.select(idempotency_keys.c.fingerprint, idempotency_keys.c.response).where(
        idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
    )
    return (await conn.execute(stmt)).first()


def _probe(scope: str, key: str, try_lock: sa.ColumnElement) -> sa.Select:
    """(got, fingerprint, response): the key's lock tried, and its finished record if any."""
    return (
        sa.select(try_lock.label("got"), idempotency_keys.c.fingerprint, idempotency_keys.c.response)
        .select_from(sa.select(sa.literal(1)).subquery())
        .outerjoin(
            idempotency_keys, sa.and_(idempotency_keys.c.scope == scope, idempotency_keys.c.key == key)
        )
    )


def _check_fingerprint(scope: str, stored: bytes, fp: bytes) -> None:
    if bytes(stored) != fp:
        IDEMPOTENCY_CONFLICTS.labels(scope, "IDEMPOTENCY_KEY_REUSED").inc()
        raise key_reused()


class IdempotencyStore:
    """Runs a unit of work at most once per (scope, key), storing its response with the effect."""

    def __init__(self, engine: AsyncEngine, driver_pool: DriverPool | None = None) -> None:
        self._engine = engine
        # Long claims hold a connection for a whole operation (outside calls included): they take it
        # from their own pool, so they never starve the engine's units of work, and run plain
        # statements on it.
        self._driver_pool = driver_pool

    async def run(
        self,
        scope: str,
        key: str,
        request: Message,
        response_type: type[R],
        work: Callable[[AsyncConnection], Awaitable[R]],
    ) -> tuple[R, bool]:
        """Run ``work`` in one transaction with the key's record; return (response, replayed)."""
        key = validate_key(key)
        fp = fingerprint(scope, request)
        ran_work = False
        try:
            async with self._engine.begin() as conn:
                # One round trip: try the key's lock and read any finished record. A finished key
                # replays even while someone else holds the lock (concurrent replays never block).
                probe = (
                    await conn.execute(
                        _probe(scope, key, sa.func.pg_try_advisory_xact_lock(lock_id(scope, key)))
                    )
                ).one()
                if probe.fingerprint is not None:
                    return self._replay(scope, probe.fingerprint, fp, probe.response, response_type), True
                if not probe.got:
                    IDEMPOTENCY_CONFLICTS.labels(scope, "IDEMPOTENCY_KEY_IN_USE").inc()
                    raise key_in_use()
                ran_work = True
                response = await work(conn)
                await conn.execute(
                    idempotency_keys.insert().values(
                        scope=scope, key=key, fingerprint=fp, response=response.SerializeToString()
                    )
                )
                return response, False
        except Exception:
            if not ran_work:
                raise
            # The probe's snapshot can predate a holder that committed its effect and record and
            # released the lock just before our lock attempt. Our work then collided with that
            # effect (a unique violation, "already exists", or the record's own primary key) and
            # rolled back; the key is finished, so the caller gets its answer. Only failures pay
            # for this look-up.
            try:
                async with self._engine.connect() as conn:
                    row = await _lookup(conn, scope, key)
            except DBAPIError:
                row = None  # the database itself failed: the original error is the one to report
            if row is None:
                raise
            log.info("idempotency key committed concurrently; replaying", scope=scope)
            return self._replay(scope, row.fingerprint, fp, row.response, response_type), True

    @staticmethod
    def _replay(scope: str, stored_fp: bytes, fp: bytes, payload: bytes, response_type: type[R]) -> R:
        _check_fingerprint(scope, stored_fp, fp)
        IDEMPOTENT_REPLAYS.labels(scope).inc()
        response = response_type()
        response.ParseFromString(bytes(payload))
        return response

    @asynccontextmanager
    async def claim(self, scope: str, key: str | None, request: Message) -> AsyncIterator[Claim]:
        """Hold (scope, key) for an operation that spans several transactions and outside calls.

        A session-level advisory lock on a dedicated connection marks the key in use for as long as the
        operation runs (a crash drops the connection and with it the lock). A finished key replays
        without taking the lock. The operation resumes from its own stored state when re-run after a
        crash, and ends with :meth:`Claim.finish` (answer stored and key released in one statement) or
        :meth:`Claim.save` in its last transaction. The connection comes from the store's driver pool,
        which should serve claims only: each holds its connection for the whole operation.
        """
        if self._driver_pool is None:
            raise RuntimeError("IdempotencyStore.claim needs a driver pool (IdempotencyStore(engine, pool))")
        key = validate_key(key)
        fp = fingerprint(scope, request)
        params = {"scope": scope, "key": key, "lock": lock_id(scope, key)}
        async with self._driver_pool.connection() as conn:
            claim = Claim(scope, key, fp, _conn=conn)
            try:
                # One round trip: try the lock and read any finished record. The lock is tried after
                # the statement's snapshot, so a holder that committed and unlocked in between reads as
                # "not finished": the operation is then re-run, which resumes from its stored state,
                # and Claim.finish / Claim.save find the holder's record and answer with it.
                probe = await (await conn.execute(_CLAIM_PROBE, params)).fetchone()
                got, stored_fp, stored_response = one_row(probe, "claim probe")
                if stored_fp is not None:
                    claim._released = True
                    if got:  # a finished key needs no lock: let it go before answering
                        await _release_session_locks(conn, scope)
                    _check_fingerprint(scope, stored_fp, fp)
                    IDEMPOTENT_REPLAYS.labels(scope).inc()
                    yield Claim(scope, key, fp, bytes(stored_response))
                    return
                if not got:
                    claim._released = True  # someone else's lock: nothing of ours to release
                    IDEMPOTENCY_CONFLICTS.labels(scope, "IDEMPOTENCY_KEY_IN_USE").inc()
                    raise key_in_use()
                yield claim
            finally:
                # From the probe on, the lock may be ours (even a cancelled probe may have taken it):
                # the claim ends with the request, so the connection never goes back holding it.
                if not claim._released:
                    await _release_session_locks(conn, scope)

    async def run_many(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run a batch whose items each carry their own key in one transaction: ``work`` probes its
        keys with :func:`probe_many` and writes the new answers with :data:`RECORD_MANY`, both on the
        connection it is given, together with the effects.

        As in :meth:`run`: if a key's holder committed between the probe's snapshot and our taking
        its lock, our record hits the primary key; everything rolls back and the second attempt
        replays that key (and applies the rest as before).
        """
        for attempt in range(2):
            try:
                async with self._engine.begin() as conn:
                    return await work(conn)
            except IntegrityError as exc:
                constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
                if attempt == 1 or constraint != "idempotency_keys_pkey":
                    raise
                log.info("a batch key was committed concurrently; retrying the batch")
        raise AssertionError("unreachable")

    async def purge(self, older_than_hours: int, batch: int = 5000) -> int:
        """Delete keys older than the retention window, in batches so no long lock is held."""
        total = 0
        while True:
            async with self._engine.begin() as conn:
                victims = (
                    sa.select(idempotency_keys.c.scope, idempotency_keys.c.key)
                    .where(
                        idempotency_keys.c.created_at
                        < sa.func.now() - sa.text(f"interval '{int(older_than_hours)} hours'")
                    )
                    .limit(batch)
                    .subquery()
                )
                result = await conn.execute(
                    idempotency_keys.delete().where(
                        sa.tuple_(idempotency_keys.c.scope, idempotency_keys.c.key).in_(sa.select(victims))
                    )
                )
            total += result.rowcount
            if result.rowcount < batch:
                return total

    async def purge_forever(self, older_than_hours: int, interval_seconds: float) -> None:
        while True:
            try:
                deleted = await self.purge(older_than_hours)
                if deleted:
                    log.info("idempotency keys purged", deleted=deleted)
            except Exception:
                log.exception("idempotency purge failed; will retry")
            await asyncio.sleep(interval_seconds)


_PROBE_MANY = sa.text(
    """
    SELECT pg_try_advisory_xact_lock(t.lock_id) AS got, k.fingerprint, k.response
    FROM unnest(CAST(:lock_ids AS bigint[]), CAST(:scopes AS text[]), CAST(:keys AS text[]))
         WITH ORDINALITY AS t(lock_id, scope, key, ord)
    LEFT JOIN idempotency_keys k ON k.scope = t.scope AND k.key = t.key
    ORDER BY t.ord
    """
)


async def probe_many(
    conn: AsyncConnection, keys: Sequence[ItemKey]
) -> list[StoredAnswer | DomainError | None]:
    """Per key, in order, in one round trip (the probe of :meth:`IdempotencyStore.run` for many keys):
    its stored answer (a replay), its refusal (``IDEMPOTENCY_KEY_REUSED``, ``IDEMPOTENCY_KEY_IN_USE``),
    or None: the key is free and its lock is now held by ``conn``'s transaction. The (scope, key)
    pairs must be distinct: inside one transaction the advisory lock is re-entrant."""
    if len({(k.scope, k.key) for k in keys}) != len(keys):
        raise Internal("DUPLICATE_BATCH_KEY", "a batch holds the same idempotency key twice")
    if not keys:
        return []
    params = {
        "lock_ids": [k.lock_id for k in keys],
        "scopes": [k.scope for k in keys],
        "keys": [k.key for k in keys],
    }
    out: list[StoredAnswer | DomainError | None] = []
    for key, probe in zip(keys, (await conn.execute(_PROBE_MANY, params)).all(), strict=True):
        if probe.fingerprint is not None:
            if bytes(probe.fingerprint) != key.fingerprint:
                IDEMPOTENCY_CONFLICTS.labels(key.scope, "IDEMPOTENCY_KEY_REUSED").inc()
                out.append(key_reused())
            else:
                IDEMPOTENT_REPLAYS.labels(key.scope).inc()
                out.append(StoredAnswer(bytes(probe.response), replayed=True))
        elif not probe.got:
            IDEMPOTENCY_CONFLICTS.labels(key.scope, "IDEMPOTENCY_KEY_IN_USE").inc()
            out.append(key_in_use())
        else:
            out.append(None)
    return out


RECORD_MANY = (
    "INSERT INTO idempotency_keys (scope, key, fingerprint, response)"
    " SELECT * FROM unnest(CAST(:idem_scopes AS text[]), CAST(:idem_keys AS text[]),"
    " CAST(:idem_fingerprints AS bytea[]), CAST(:idem_responses AS bytea[]))"
)
"""The records of a batch's new answers, as one INSERT (to run alone or as a CTE of the statement
that writes the effects); its parameters come from :func:`record_many_params`."""


def record_many_params(records: Sequence[tuple[ItemKey, bytes]]) -> dict[str, list]:
    return {
        "idem_scopes": [k.scope for k, _ in records],
        "idem_keys": [k.key for k, _ in records],
        "idem_fingerprints": [k.fingerprint for k, _ in records],
        "idem_responses": [answer for _, answer in records],
    }


async def idempotent_rpc(
    store: IdempotencyStore,
    context: grpc.aio.ServicerContext,
    scope: str,
    request: Message,
    response_type: type[R],
    work: Callable[[AsyncConnection], Awaitable[R]],
) -> R:
    """Servicer helper: take the key from the call's metadata, run once, flag replays in the metadata."""
    response, replayed = await store.run(scope, idempotency_key_var.get() or "", request, response_type, work)
    if replayed:
        await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
    return response
