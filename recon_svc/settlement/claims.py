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
    """What makes two rows of one balance transaction the same content (overlapping days) or not (a duplicate)."""
    key = (row.balance_transaction_id, row.currency, row.gross_minor, row.fee_minor, row.reporting_category,
           row.source_id)  # fmt: skip
    return hashlib.sha256(repr(key).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    """One row to claim: the reference of ours it belongs to, and the booking that carries its money ("" for
    none: a row that matches but books nothing keeps its record, e.g. a pay-out's transfer for the
    missing-pay-out check)."""

    row: SettlementRow
    digest: str
    reference: str
    booking_id: str


_CLAIM = sa.text(
    """
    INSERT INTO settlement_rows (balance_transaction_id, row_digest, run_id, reporting_category, currency,
                                 gross_minor, fee_minor, our_reference, booking_id)
    SELECT u.id, u.digest, :run_id, u.category, u.currency, u.gross::bigint, u.fee::bigint,
           COALESCE(u.ref, ''), NULLIF(u.booking, '')
    FROM unnest(string_to_array(:ids, ','), string_to_array(:digests, ','), string_to_array(:categories, ','),
                string_to_array(:currencies, ','), string_to_array(:gross, ','), string_to_array(:fees, ','),
                string_to_array(:refs, ','), string_to_array(:bookings, ','))
         AS u(id, digest, category, currency, gross, fee, ref, booking)
    ON CONFLICT (balance_transaction_id) DO NOTHING
    RETURNING balance_transaction_id
    """
)
"""The chunk's claims in one statement. The columns travel as comma-joined text (ids, categories, currencies
and references never contain a comma: the parser allows ``[A-Za-z0-9_]`` ids, and our ids never have one;
one-element lists of an empty string split to no element, hence the COALESCE), which PostgreSQL splits itself:
the driver's per-element array encoding cost more than the insert."""


async def claim(
    conn: AsyncConnection, run_id: str, claims: Sequence[Claim]
) -> tuple[set[str], dict[str, tuple[str, str]]]:
    """Claim the rows in the caller's transaction: the ids this run claimed, and for each id claimed before
    (by any run) its earlier (digest, run id)."""
    refs = ",".join(c.reference for c in claims)
    if refs.count(",") != len(claims) - 1:  # our ids have no comma; never split one wrongly
        raise RuntimeError("a reference of ours contains a comma")
    params = {
        "run_id": run_id,
        "ids": ",".join(c.row.balance_transaction_id for c in claims),
        "digests": ",".join(c.digest for c in claims),
        "categories": ",".join(c.row.reporting_category for c in claims),
        "currencies": ",".join(c.row.currency for c in claims),
        "gross": ",".join(str(c.row.gross_minor) for c in claims),
        "fees": ",".join(str(c.row.fee_minor) for c in claims),
        "refs": refs,
        "bookings": ",".join(c.booking_id for c in claims),
    }
    new = set((await conn.execute(_CLAIM, params)).scalars())
    taken = [c.row.balance_transaction_id for c in claims if c.row.balance_transaction_id not in new]
    earlier: dict[str, tuple[str, str]] = {}
    if taken:
        result = await conn.execute(
            sa.select(t.rows.c.balance_transaction_id, t.rows.c.row_digest, t.rows.c.run_id).where(
                t.rows.c.balance_transaction_id.in_(taken)
            )
        )
        earlier = {r.balance_transaction_id: (r.row_digest, r.run_id) for r in result}
    return new, earlier
