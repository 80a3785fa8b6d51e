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
    key = (row.balance_transaction_id, row.currency, row.gross_minor, row.fee_minor, row.reporting_category,
           row.source_id)  # fmt: skip
    return hashlib.sha256(repr(key).encode()).hexdigest()


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
    """Claim the rows in the caller's transaction; the rows claimed before (by any run), by id, with their
    earlier claim (None when it cannot be read: counted as a duplicate). Every other row is this run's now."""
    refs = ",".join(c.reference for c in claims)
    if refs.count(",") != len(claims) - 1:  # our ids have no comma; never split one wrongly
        raise RuntimeError("a reference of ours contains a comma")
    params = {
        "run_id": run_id,
        "ids": ",".join([c.row.balance_transaction_id for c in claims]),
        "categories": ",".join([c.row.reporting_category for c in claims]),
        "currencies": ",".join([c.row.currency for c in claims]),
        "gross": ",".join([str(c.row.gross_minor) for c in claims]),
        "fees": ",".join([str(c.row.fee_minor) for c in claims]),
        "sources": ",".join([c.row.source_id for c in claims]),
        "refs": refs,
        "bookings": ",".join([c.booking_id for c in claims]),
    }
    taken: dict[str, Taken | None] = {}
    unseen: list[str] = []
    for bt, same, earlier_run in await conn.execute(_CLAIM, params):
        if earlier_run is None:
            unseen.append(bt)
        else:
            taken[bt] = Taken(bool(same), earlier_run)
    if unseen:
        by_id = {c.row.balance_transaction_id: c.row for c in claims}
        result = await conn.execute(
            sa.select(t.rows.c.balance_transaction_id, t.rows.c.row_digest, t.rows.c.run_id).where(
                t.rows.c.balance_transaction_id.in_(unseen)
            )
        )
        for r in result:
            taken[r.balance_transaction_id] = Taken(
                r.row_digest == digest(by_id[r.balance_transaction_id]), r.run_id
            )
        for bt in unseen:
            taken.setdefault(bt, None)
    return taken
