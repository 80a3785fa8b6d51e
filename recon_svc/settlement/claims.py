"""Claims of balance transactions in ``settlement_rows``: a row is claimed once, by the run whose transaction
also writes the booking that carries its money, so nothing is booked twice whatever happens afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from recon_svc.settlement import tables as t
from recon_svc.settlement.parse import SettlementRow


def digest(row: SettlementRow) -> str:
    """What makes two rows of one balance transaction the same content (overlapping days) or not (a duplicate).

    The claim statement computes the same value in PostgreSQL (:data:`_CLAIM`), so a row claimed by an older
    version of this code compares equal; a test keeps the two identical."""
    return _digest(row.balance_transaction_id, row.currency, row.gross_minor, row.fee_minor, row.reporting_category,
                   row.source_id)  # fmt: skip


def _digest(bt: str, currency: str, gross: int, fee: int, category: str, source: str) -> str:
    return hashlib.sha256(repr((bt, currency, gross, fee, category, source)).encode()).hexdigest()


ClaimRow = tuple[str, str, str, int, int, str, str, str]
"""One row to claim as plain values (a chunk's clean rows stay their spooled records, no object): balance
transaction id, reporting category, currency, gross, fee, source id, our reference, booking id ("" for none)."""


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a run builds one per row.
@dataclass(slots=True)
class Claim:
    """One row to claim: the reference of ours it belongs to, and the booking that carries its money ("" for
    none: a row that matches but books nothing keeps its record, e.g. a pay-out's transfer for the
    missing-pay-out check)."""

    row: SettlementRow
    reference: str
    booking_id: str


@dataclass(frozen=True, slots=True)
class Taken:
    """A row claimed before this chunk: whether it had the same content, and by which run."""

    same_content: bool
    run_id: str


_CLAIM = sa.text(
    """
    WITH u AS (
        SELECT u.id, u.category, u.currency, u.gross::bigint AS gross, u.fee::bigint AS fee,
               COALESCE(u.source, '') AS source, COALESCE(u.ref, '') AS ref, NULLIF(u.booking, '') AS booking
        FROM unnest(string_to_array(:ids, ','), string_to_array(:categories, ','),
                    string_to_array(:currencies, ','), string_to_array(:gross, ','), string_to_array(:fees, ','),
                    string_to_array(:sources, ','), string_to_array(:refs, ','), string_to_array(:bookings, ','))
             AS u(id, category, currency, gross, fee, source, ref, booking)
    ), d AS (
        SELECT u.*, encode(sha256(convert_to(format('(%L, %L, %s, %s, %L, %L)', u.id, u.currency, u.gross, u.fee,
                                                    u.category, u.source), 'UTF8')), 'hex') AS digest
        FROM u
    ), ins AS (
        INSERT INTO settlement_rows (balance_transaction_id, row_digest, run_id, reporting_category, currency,
                                     gross_minor, fee_minor, our_reference, booking_id)
        SELECT d.id, d.digest, :run_id, d.category, d.currency, d.gross, d.fee, d.ref, d.booking FROM d
        ON CONFLICT (balance_transaction_id) DO NOTHING
        RETURNING balance_transaction_id
    )
    SELECT d.id, r.row_digest = d.digest AS same_content, r.run_id
    FROM d LEFT JOIN settlement_rows r ON r.balance_transaction_id = d.id
    WHERE d.id NOT IN (SELECT balance_transaction_id FROM ins)
    """
)
"""The chunk's claims in one statement, answering only the rows that were taken already (usually none), each
with whether its earlier claim had the same content and by which run.

The columns travel as comma-joined text (ids, categories, currencies and references never contain a comma: the
parser allows ``[A-Za-z0-9_]`` ids, and our ids never have one; one-element lists of an empty string split to no
element, hence the COALESCEs), which PostgreSQL splits itself: the driver's per-element array encoding cost more
than the insert. The digest is :func:`digest`'s, computed here: ``format``'s ``%L`` quotes a text like Python's
``repr`` does for the characters these columns may hold. The final SELECT sees the table as it was before the
statement (a data-modifying CTE's rule), so each taken row shows its earlier claim; one a concurrent transaction
committed meanwhile is not in that snapshot (NULL run) and is read again by a statement of its own."""


async def claim(conn: AsyncConnection, run_id: str, claims: Sequence[Claim]) -> dict[str, Taken | None]:
    """:func:`claim_rows` of :class:`Claim` objects."""
    rows: list[ClaimRow] = []
    for c in claims:
        r = c.row
        rows.append((r.balance_transaction_id, r.reporting_category, r.currency, r.gross_minor, r.fee_minor,
                     r.source_id, c.reference, c.booking_id))  # fmt: skip
    return await claim_rows(conn, run_id, rows)


async def claim_rows(conn: AsyncConnection, run_id: str, rows: Sequence[ClaimRow]) -> dict[str, Taken | None]:
    """Claim the rows in the caller's transaction; the rows claimed before (by any run), by id, with their
    earlier claim (None when it cannot be read: counted as a duplicate). Every other row is this run's now."""
    if not rows:
        return {}
    ids, categories, currencies, gross, fees, sources, refs, bookings = zip(*rows, strict=True)
    joined_refs = ",".join(refs)
    if joined_refs.count(",") != len(rows) - 1:  # our ids have no comma; never split one wrongly
        raise RuntimeError("a reference of ours contains a comma")
    params = {
        "run_id": run_id,
        "ids": ",".join(ids),
        "categories": ",".join(categories),
        "currencies": ",".join(currencies),
        "gross": ",".join(map(str, gross)),
        "fees": ",".join(map(str, fees)),
        "sources": ",".join(sources),
        "refs": joined_refs,
        "bookings": ",".join(bookings),
    }
    taken: dict[str, Taken | None] = {}
    unseen: list[str] = []
    for bt, same, earlier_run in await conn.execute(_CLAIM, params):
        if earlier_run is None:
            unseen.append(bt)
        else:
            taken[bt] = Taken(bool(same), earlier_run)
    if unseen:
        by_id = {r[0]: r for r in rows}
        result = await conn.execute(
            sa.select(t.rows.c.balance_transaction_id, t.rows.c.row_digest, t.rows.c.run_id).where(
                t.rows.c.balance_transaction_id.in_(unseen)
            )
        )
        for r in result:
            bt, category, currency, gross_minor, fee_minor, source, _, _ = by_id[r.balance_transaction_id]
            same_digest = r.row_digest == _digest(bt, currency, gross_minor, fee_minor, category, source)
            taken[r.balance_transaction_id] = Taken(same_digest, r.run_id)
        for bt in unseen:
            taken.setdefault(bt, None)
    return taken
