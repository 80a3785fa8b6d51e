"""Every query of the ledger; functions take the unit of work's connection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:
    from ledger_svc.uow import Record

from ledger_svc.domain import Posting
from ledger_svc.models import (
    accounts,
    chain_head,
    chain_queue,
    chain_queue_batches,
    entries,
    transaction_chain,
    transactions,
)


async def insert_account(
    conn: AsyncConnection, name: str, type_: str, currency: str, non_negative: bool = False
) -> sa.Row | None:
    """Insert an account; None when the name is taken."""
    stmt = (
        insert(accounts)
        .values(name=name, type=type_, currency=currency, non_negative=non_negative)
        .on_conflict_do_nothing(index_elements=[accounts.c.name])
        .returning(accounts)
    )
    return (await conn.execute(stmt)).first()


async def get_account(conn: AsyncConnection, name: str) -> sa.Row | None:
    return (await conn.execute(sa.select(accounts).where(accounts.c.name == name))).first()


async def get_accounts(conn: AsyncConnection, names: Sequence[str]) -> Sequence[sa.Row]:
    """The accounts of those names that exist (any order)."""
    return (await conn.execute(sa.select(accounts).where(accounts.c.name.in_(list(names))))).all()


async def list_accounts(conn: AsyncConnection, prefix: str, after: str, limit: int) -> Sequence[sa.Row]:
    stmt = sa.select(accounts).order_by(accounts.c.name).limit(limit)
    if prefix:
        stmt = stmt.where(sa.func.starts_with(accounts.c.name, prefix))
    if after:
        stmt = stmt.where(accounts.c.name > after)
    return (await conn.execute(stmt)).all()


async def close_account(conn: AsyncConnection, name: str) -> sa.Row | None:
    """Close an open account; None when unknown or already closed.

    The row lock orders the close with postings: postings in flight hold their accounts until commit,
    and postings that start later wait for the close, then see the account closed.
    """
    await conn.execute(sa.select(accounts.c.id).where(accounts.c.name == name).with_for_update())
    stmt = (
        accounts.update()
        .where(accounts.c.name == name, accounts.c.closed_at.is_(None))
        .values(closed_at=sa.func.now())
        .returning(accounts)
    )
    return (await conn.execute(stmt)).first()


def item_json(posting: Posting, record: Record | None = None, reverses: int | None = None) -> dict:
    """One item of ``ledger_post``'s argument: a (validated) posting, or a reversal, with the
    idempotency record to keep under its key, if any."""
    item: dict = {
        "a": [e.account for e in posting.entries],
        "d": [e.direction.value for e in posting.entries],
        "m": [e.amount_minor for e in posting.entries],
        "c": [e.currency for e in posting.entries],
        "desc": posting.description,
        "ref": posting.external_ref,
        "meta": dict(posting.metadata),
    }
    if reverses is not None:
        item["rev"] = reverses
    if record is not None:
        key = record.key
        item["key"] = {
            "scope": key.scope,
            "key": key.key,
            "lock": key.lock_id,
            "fp": key.fingerprint.hex(),
            "tpl": record.template.hex(),
        }
    return item


_POST = sa.text(
    "SELECT o_item, o_reason, o_message, o_tx_id, o_posted_at, o_entries, o_stored "
    "FROM ledger_post(CAST(:items AS jsonb), CAST(:prefixes AS text[]))"
)


async def post(
    conn: AsyncConnection, items: list[dict], non_negative_prefixes: Sequence[str]
) -> list[sa.Row]:
    """One round trip: post every item through the ``ledger_post`` function, one result row per item."""
    result = await conn.execute(
        _POST, {"items": json.dumps(items, separators=(",", ":")), "prefixes": list(non_negative_prefixes)}
    )
    return list(result.all())


# The hot statement of the batch and coalesced paths, sent on the plain psycopg connection (no
# SQLAlchemy in between; psycopg prepares it after a few runs). Its arguments arrive as ready array
# literals (see ``array_literal``), so psycopg's per-element list adaptation is skipped too. Only the
# columns the caller reads are selected, in binary: bytea and text come back as they are stored,
# without hex encoding on the server and decoding here.
_POST_BATCH = (
    "SELECT o_stored, o_reason, o_message, o_answer FROM ledger_post_batch("
    "%(first)s::int[], %(count)s::int[], %(names)s::text[], %(dirs)s::text[], %(amts)s::bigint[], "
    "%(curs)s::text[], %(descs)s::text[], %(refs)s::text[], %(metas)s::jsonb[], %(scope)s::text, "
    "%(keys)s::text[], %(locks)s::bigint[], %(fps)s::bytea[], %(tpls)s::bytea[], %(prefixes)s::text[])"
)


def array_literal(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of quoted text elements (``{"a","b\\"c"}``)."""
    return "{" + ",".join(['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]) + "}"


def int_array_literal(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def bytea_array_literal(values: Iterable[bytes]) -> str:
    # hex input format, its backslash escaped for the array literal
    return "{" + ",".join(['"\\\\x' + v.hex() + '"' for v in values]) + "}"


def batch_columns(
    items: list[tuple[Posting, Record]], non_negative_prefixes: Sequence[str]
) -> dict[str, str]:
    """``ledger_post_batch``'s arguments for validated postings and their records (one scope), each
    an array literal: entries flattened, with each posting's first line and count."""
    first: list[int] = []
    count: list[int] = []
    lines: list = []
    for posting, _ in items:
        first.append(len(lines) + 1)
        count.append(len(posting.entries))
        lines.extend(posting.entries)
    names = [e.account for e in lines]
    dirs = [e.direction for e in lines]  # a StrEnum: its members are the strings "D" and "C" themselves
    amts = [e.amount_minor for e in lines]
    curs = [e.currency for e in lines]
    text, ints, blobs = array_literal, int_array_literal, bytea_array_literal
    return {
        "first": ints(first),
        "count": ints(count),
        "names": text(names),
        "dirs": text(dirs),
        "amts": ints(amts),
        "curs": text(curs),
        "descs": text([p.description for p, _ in items]),
        "refs": text([p.external_ref for p, _ in items]),
        "metas": text([json.dumps(dict(p.metadata)) if p.metadata else "{}" for p, _ in items]),
        "scope": items[0][1].key.scope,
        "keys": text([r.key.key for _, r in items]),
        "locks": ints([r.key.lock_id for _, r in items]),
        "fps": blobs([r.key.fingerprint for _, r in items]),
        "tpls": blobs([r.template for _, r in items]),
        "prefixes": text(non_negative_prefixes),
    }


BatchRow = tuple[bytes | None, str | None, str | None, bytes | None]
"""One item's result: (stored answer of an earlier use of the key, refusal reason, refusal message,
the answer stored for the new transaction)."""


async def post_batch(conn: psycopg.AsyncConnection, columns: dict[str, str]) -> list[BatchRow]:
    """One round trip, set-based: the ``ledger_post_batch`` function; one row per item, in order.

    ``columns`` holds each argument as an array literal (``batch_columns``). ``conn`` is a plain
    psycopg connection in autocommit mode (``LedgerUnitOfWork.batch_statement``): the statement is its
    own unit of work.
    """
    cursor = await conn.execute(_POST_BATCH, columns, binary=True)
    return await cursor.fetchall()


async def get_transaction(conn: AsyncConnection, tx_id: int) -> sa.Row | None:
    stmt = (
        sa.select(
            transactions, transaction_chain.c.seq, transaction_chain.c.prev_hash, transaction_chain.c.hash
        )
        .select_from(transactions.outerjoin(transaction_chain))
        .where(transactions.c.id == tx_id)
    )
    return (await conn.execute(stmt)).first()


async def transaction_entries(conn: AsyncConnection, tx_id: int) -> Sequence[sa.Row]:
    stmt = (
        sa.select(accounts.c.name, entries.c.direction, entries.c.amount, entries.c.currency)
        .select_from(entries.join(accounts))
        .where(entries.c.transaction_id == tx_id)
        .order_by(entries.c.position)
    )
    return (await conn.execute(stmt)).all()


async def transactions_by_ref(
    conn: AsyncConnection, external_ref: str, after_id: int, limit: int
) -> Sequence[sa.Row]:
    """Transactions of one external reference, oldest first, after ``after_id``, with their chain link.

    Uses the partial index ``ix_transactions_external_ref``: a business event has a handful of
    transactions, so the rows of the reference are fetched and sorted, whatever the ledger's size.
    """
    stmt = (
        sa.select(
            transactions, transaction_chain.c.seq, transaction_chain.c.prev_hash, transaction_chain.c.hash
        )
        .select_from(transactions.outerjoin(transaction_chain))
        # The partial index's own predicate, stated so the planner need not prove it.
        .where(transactions.c.external_ref == external_ref, transactions.c.external_ref != "")
        .where(transactions.c.id > after_id)
        .order_by(transactions.c.id)
        .limit(limit)
    )
    return (await conn.execute(stmt)).all()


async def transactions_posted(
    conn: AsyncConnection,
    window: tuple[datetime, datetime],
    external_ref: str,
    after: tuple[datetime, int] | None,
    limit: int,
) -> Sequence[sa.Row]:
    """Transactions posted in [start, end), oldest first by (posted_at, id), after the keyset ``after``
    (index ``ix_transactions_posted_at_id``); only those of ``external_ref`` when given."""
    t = transactions
    stmt = (
        sa.select(t, transaction_chain.c.seq, transaction_chain.c.prev_hash, transaction_chain.c.hash)
        .select_from(t.outerjoin(transaction_chain))
        .where(t.c.posted_at >= window[0], t.c.posted_at < window[1])
        .order_by(t.c.posted_at, t.c.id)
        .limit(limit)
    )
    if external_ref:
        stmt = stmt.where(t.c.external_ref == external_ref)
    if after is not None:
        stmt = stmt.where(sa.tuple_(t.c.posted_at, t.c.id) > sa.tuple_(*after))
    return (await conn.execute(stmt)).all()


async def entries_of(conn: AsyncConnection, tx_ids: Sequence[int]) -> Sequence[sa.Row]:
    """The entries of several transactions (one statement), by transaction then position."""
    stmt = (
        sa.select(
            entries.c.transaction_id,
            accounts.c.name,
            entries.c.direction,
            entries.c.amount,
            entries.c.currency,
        )
        .select_from(entries.join(accounts))
        .where(entries.c.transaction_id.in_(tx_ids))
        .order_by(entries.c.transaction_id, entries.c.position)
    )
    return (await conn.execute(stmt)).all()


async def totals_as_of(conn: AsyncConnection, account_id: int, as_of: datetime) -> sa.Row:
    """Debit and credit totals and the last transaction of an account's entries posted up to ``as_of``."""
    stmt = sa.select(
        sa.func.coalesce(sa.func.sum(entries.c.amount).filter(entries.c.direction == "D"), 0).label("debits"),
        sa.func.coalesce(sa.func.sum(entries.c.amount).filter(entries.c.direction == "C"), 0).label(
            "credits"
        ),
        sa.func.coalesce(sa.func.max(entries.c.transaction_id), 0).label("last_tx"),
    ).where(entries.c.account_id == account_id, entries.c.posted_at <= as_of)
    return (await conn.execute(stmt)).one()


async def list_entries(conn: AsyncConnection, account_id: int, after_id: int, limit: int) -> Sequence[sa.Row]:
    stmt = (
        sa.select(entries)
        .where(entries.c.account_id == account_id, entries.c.id > after_id)
        .order_by(entries.c.id)
        .limit(limit)
    )
    return (await conn.execute(stmt)).all()


# --- verification -------------------------------------------------------------------------------

_CHAIN_WALK = sa.text(
    """
    SELECT c.seq, c.transaction_id, c.prev_hash, c.hash,
           t.id AS tx_id, t.posted_at, t.reverses_id, t.description, t.external_ref, t.metadata,
           e.names, e.directions, e.amounts, e.currencies, e.account_currencies
    FROM transaction_chain c
    LEFT JOIN transactions t ON t.id = c.transaction_id
    LEFT JOIN LATERAL (
        SELECT array_agg(a.name ORDER BY x.position) AS names,
               array_agg(x.direction::text ORDER BY x.position) AS directions,
               array_agg(x.amount ORDER BY x.position) AS amounts,
               array_agg(x.currency::text ORDER BY x.position) AS currencies,
               array_agg(a.currency::text ORDER BY x.position) AS account_currencies
        FROM entries x JOIN accounts a ON a.id = x.account_id
        WHERE x.transaction_id = c.transaction_id
    ) e ON true
    ORDER BY c.seq
    """
)


async def walk_chain(conn: AsyncConnection) -> AsyncIterator[sa.Row]:
    """Every chain link with its transaction and entries, in chain order, streamed."""
    result = await conn.stream(_CHAIN_WALK.execution_options(yield_per=2000))
    async for row in result:
        yield row


_LINK_PENDING = "SELECT ledger_chain_pending(%(limit)s)"


async def link_pending(conn: AsyncConnection, limit: int) -> int:
    """Link up to ``limit`` queued transactions into the hash chain; how many were linked.

    The function is one transaction's worth of work: on an autocommit connection the statement is
    that transaction (the chainer's case, one round trip per pass).
    """
    return int((await conn.exec_driver_sql(_LINK_PENDING, {"limit": limit})).scalar_one())


async def unchained_transactions(conn: AsyncConnection) -> Sequence[sa.Row]:
    """Transactions without a chain link, and whether each is still queued for the chainer."""
    queued = sa.or_(
        sa.exists().where(chain_queue.c.transaction_id == transactions.c.id),
        sa.exists().where(transactions.c.id == sa.func.any_(chain_queue_batches.c.transaction_ids)),
    )
    stmt = (
        sa.select(transactions.c.id, queued.label("queued"))
        .where(~sa.exists().where(transaction_chain.c.transaction_id == transactions.c.id))
        .order_by(transactions.c.id)
    )
    return (await conn.execute(stmt)).all()


async def get_chain_head(conn: AsyncConnection) -> sa.Row:
    return (await conn.execute(sa.select(chain_head.c.last_seq, chain_head.c.last_hash))).one()


_ACCOUNT_SUMS = sa.text(
    """
    SELECT a.name, a.type, a.non_negative, a.debits_posted, a.credits_posted,
           coalesce(s.debits, 0) AS entry_debits, coalesce(s.credits, 0) AS entry_credits
    FROM accounts a
    LEFT JOIN (
        SELECT account_id,
               sum(amount) FILTER (WHERE direction = 'D') AS debits,
               sum(amount) FILTER (WHERE direction = 'C') AS credits
        FROM entries GROUP BY account_id
    ) s ON s.account_id = a.id
    ORDER BY a.name
    """
)


async def account_sums(conn: AsyncConnection) -> AsyncIterator[sa.Row]:
    """Each account's stored totals next to the sums of its entries."""
    result = await conn.stream(_ACCOUNT_SUMS.execution_options(yield_per=2000))
    async for row in result:
        yield row
