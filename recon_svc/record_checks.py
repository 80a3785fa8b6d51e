"""Per-record internal checks: every successful order, succeeded refund and paid (or in-transit) pay-out of a
window has exactly its ledger transaction and wallet movement, and no ledger transaction or wallet movement of
the window names anything else.

Both sides are streamed, a page at a time, into temporary tables of one recon connection, and PostgreSQL does
the comparison (anti-joins, both directions), so a busy day never sits in this process's memory. The window
is our records' creation time on one side and the books' posting time on the other, so a record created just
before midnight may be booked just after it: each record one side lacks is then looked up by its reference on
the other (one point read per difference, which an agreeing day does not have), and only a difference that
lookup confirms is a mismatch. Reversals (ledger) and undo adjustments (wallet) cancel what they undo. A record
whose book item of the window is there but disagrees with it (amount, currency, seller) is a ``..._DIFFERS``
mismatch, compared in the same temporary tables.

Mismatches are stored in the exceptions queue (``recon_mismatches``) under the run that asked, with the
field-level difference ours vs the book's; all are ``manual`` (classify.py says why).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import CLASSIFICATION, Code, Difference, Mismatch
from svckit.errors import DomainError
from svckit.logging import get_logger

if TYPE_CHECKING:  # recon_svc.service imports this module
    from recon_svc.service import WalletLedgerReport

log = get_logger(__name__)

FAILED = Counter(
    "recon_internal_checks_failed_total", "Per-record internal checks of a settlement day that failed"
)

Kind = Literal["order", "refund", "payout"]
Book = Literal["ledger", "wallet"]

PAGE = 1000
"""Rows inserted per statement and differences read per query: a few hundred KiB at a time."""


@dataclass(frozen=True, slots=True)
class OurRecord:
    """A record of ours that must be in the books."""

    kind: Kind
    ref: str
    """The order, refund or pay-out id (the ledger's ``external_ref``, the wallet's reference id)."""
    seller: str
    currency: str
    amount_minor: int
    wallet_expected: bool = True
    """False when the seller's share is nothing (an order that is all commission): no movement is due."""
    detail: str = ""
    """What our record says beyond its existence (an order's settlement flags), shown in the difference."""
    required: bool = True
    """False for a record that explains book items but need not have any (a pay-out not paid or in transit)."""
    parent: str = ""
    """A refund's order (its seller is the order's)."""
    wallet_amount_minor: int | None = None
    """What its wallet movement moves: an order's seller share (amount less commission). None: at most
    ``amount_minor`` (a refund gives back a share of the commission that depends on the order's earlier
    refunds, and takes only what the wallet holds) or, for a pay-out, not compared (its steps move parts)."""


@dataclass(frozen=True, slots=True)
class BookItem:
    """A ledger transaction or wallet movement that names a record of ours."""

    kind: Kind
    ref: str
    item_id: str
    """The transaction id (ledger) or movement id (wallet)."""
    currency: str
    amount_minor: int
    cancels: str = ""
    """The item this one undoes: a reversal's transaction id, or ``*`` for a wallet undo adjustment (which
    cancels one movement of its reference)."""
    seller: str = ""


class RecordSources(Protocol):
    """Our records and our books, read through the owning services."""

    def records(self, window: tuple[dt.datetime, dt.datetime]) -> AsyncIterator[OurRecord]: ...

    def ledger_items(self, window: tuple[dt.datetime, dt.datetime]) -> AsyncIterator[BookItem]: ...

    def wallet_items(self, window: tuple[dt.datetime, dt.datetime]) -> AsyncIterator[BookItem]: ...

    async def ledger_count(self, record: OurRecord) -> int:
        """How many ledger transactions the record has in all, net of reversals."""
        ...

    async def wallet_count(self, record: OurRecord) -> int:
        """How many wallet movements the record has in all, net of undos (0 when none is due, e.g. a refund
        the wallet could not cover: the seller's debt)."""
        ...

    async def record(self, kind: Kind, ref: str) -> OurRecord | None:
        """Our successful order, succeeded refund or pay-out of that id; None when there is none."""
        ...


KEPT = 1000
"""Mismatches a report carries in full (all are in the queue): a broken day must not fill memory or an answer."""


@dataclass
class RecordCheckReport:
    records_checked: int = 0
    book_items_checked: int = 0
    mismatches: list[tuple[Mismatch, str]] = field(default_factory=list)
    """The first :data:`KEPT` mismatches with their ids in the queue."""
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    """Every mismatch stored, by (code, classification)."""

    @property
    def mismatch_count(self) -> int:
        return sum(self.counts.values())

    @property
    def by_code(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for (code, _), n in self.counts.items():
            counts[code] = counts.get(code, 0) + n
        return counts

    def add(self, stored: list[tuple[Mismatch, str]]) -> None:
        for m, _ in stored:
            key = (m.code.value, m.classification.value)
            self.counts[key] = self.counts.get(key, 0) + 1
        self.mismatches.extend(stored[: max(0, KEPT - len(self.mismatches))])


def reference(kind: str, ref: str) -> str:
    return f"{kind}:{ref}"


_TABLES = [
    "CREATE TEMPORARY TABLE rc_ours (kind text, ref text, seller text, currency text, amount bigint,"
    " wallet_expected boolean, detail text, required boolean, parent text, wallet_amount bigint,"
    " PRIMARY KEY (kind, ref))",
    "CREATE TEMPORARY TABLE rc_items (book text, kind text, ref text, item_id text, currency text,"
    " amount bigint, cancels text, seller text)",
    "CREATE INDEX ON rc_items (book, cancels)",
]

# A book item counts unless it undoes another (a reversal, an undo) or another item of the window undoes it;
# an undo whose item is outside the window still takes one off its reference. Computed once, after the fill.
_NET = [
    """
    CREATE TEMPORARY TABLE rc_net AS
    SELECT i.book, i.kind, i.ref,
           count(*) FILTER (WHERE i.cancels = '' AND NOT EXISTS (
               SELECT 1 FROM rc_items r WHERE r.book = i.book AND r.cancels = i.item_id))
           - count(*) FILTER (WHERE i.cancels = '*') AS net,
           min(i.item_id) AS item_id, min(i.currency) AS currency, max(i.amount) AS amount,
           min(i.seller) AS seller
    FROM rc_items i GROUP BY i.book, i.kind, i.ref
    """,
    "CREATE UNIQUE INDEX ON rc_net (kind, ref, book)",
    "ANALYZE rc_ours",
    "ANALYZE rc_net",
]

_OURS_LACKING = sa.text(
    """
    SELECT o.kind, o.ref, o.seller, o.currency, o.amount, o.wallet_expected, o.detail, o.parent, b.book
    FROM rc_ours o CROSS JOIN (VALUES ('ledger'), ('wallet')) AS b(book)
    LEFT JOIN rc_net n ON n.book = b.book AND n.kind = o.kind AND n.ref = o.ref
    WHERE o.required AND coalesce(n.net, 0) < 1 AND (b.book = 'ledger' OR o.wallet_expected)
      AND (o.kind, o.ref, b.book) > (:kind, :ref, :book)
    ORDER BY o.kind, o.ref, b.book
    LIMIT :limit
    """
)
"""Our records of the window that a book of the window lacks, a page at a time (keyset on kind, ref, book)."""

_BOOKS_UNEXPLAINED = sa.text(
    """
    SELECT n.book, n.kind, n.ref, n.net, n.item_id, n.currency, n.amount, n.seller,
           (o.ref IS NOT NULL) AS ours
    FROM rc_net n LEFT JOIN rc_ours o ON o.kind = n.kind AND o.ref = n.ref
    WHERE n.net > 0 AND (o.ref IS NULL OR (n.net > 1 AND n.kind <> 'payout'))
      AND (n.book, n.kind, n.ref) > (:book, :kind, :ref)
    ORDER BY n.book, n.kind, n.ref
    LIMIT :limit
    """
)
"""Book items of the window that no record of ours in the window explains, or an order or refund booked more
than once (a pay-out has several transactions and movements: reserve, sent, paid)."""

# Whether a live item (not a reversal or undo, and not reversed) agrees with its record: the currency always; the
# ledger's amount (its debits) for an order or refund; the wallet's seller where we know it, and its amount (the
# seller share exactly, or at most the record's amount; see OurRecord.wallet_amount_minor).
_AGREES = """
    i.currency = o.currency AND CASE
      WHEN o.kind = 'payout' THEN i.book = 'ledger' OR o.seller = '' OR i.seller = o.seller
      WHEN i.book = 'ledger' THEN i.amount = o.amount
      ELSE (o.seller = '' OR i.seller = o.seller)
           AND CASE WHEN o.wallet_amount IS NULL THEN i.amount BETWEEN 0 AND o.amount
                    ELSE i.amount = o.wallet_amount END
    END
"""
# Computed once, set-based (hash joins, no per-record look-ups), then read back in keyset pages.
_DIFFERING = [
    "ANALYZE rc_items",
    f"""
    CREATE TEMPORARY TABLE rc_differ AS
    WITH judged AS (
        SELECT o.kind, o.ref, o.seller, o.currency, o.amount, o.wallet_amount, i.book, i.item_id,
               i.currency AS their_currency, i.amount AS their_amount, i.seller AS their_seller,
               ({_AGREES}) AS agrees
        FROM rc_ours o
        JOIN rc_net n ON n.kind = o.kind AND n.ref = o.ref AND n.net >= 1 AND (n.net = 1 OR o.kind = 'payout')
        JOIN rc_items i ON i.book = n.book AND i.kind = o.kind AND i.ref = o.ref AND i.cancels = ''
        WHERE NOT EXISTS (SELECT 1 FROM rc_items r WHERE r.book = i.book AND r.cancels = i.item_id)
    ), verdict AS (
        SELECT kind, ref, book, bool_or(agrees) AS any_agrees FROM judged GROUP BY kind, ref, book
    )
    SELECT DISTINCT ON (j.kind, j.ref, j.book) j.*
    FROM judged j JOIN verdict v USING (kind, ref, book)
    WHERE NOT j.agrees AND (j.kind = 'payout' OR NOT v.any_agrees)
    ORDER BY j.kind, j.ref, j.book, j.item_id
    """,
    "CREATE UNIQUE INDEX ON rc_differ (kind, ref, book)",
]
"""Our records whose book item of the window has another amount, currency or seller (the first such item): an
order or refund when none of its live items agrees (an undone attempt and its retry leave two), a pay-out when any
of its steps disagrees. Records a book lacks, or has twice, are the two queries above's."""

_BOOKS_DIFFERING = sa.text(
    """
    SELECT * FROM rc_differ WHERE (kind, ref, book) > (:kind, :ref, :book) ORDER BY kind, ref, book LIMIT :limit
    """
)


_INSERT_OURS = sa.text(
    "INSERT INTO rc_ours SELECT * FROM unnest(CAST(:kind AS text[]), CAST(:ref AS text[]), CAST(:seller AS text[]),"
    " CAST(:currency AS text[]), CAST(:amount AS bigint[]), CAST(:wallet_expected AS boolean[]),"
    " CAST(:detail AS text[]), CAST(:required AS boolean[]), CAST(:parent AS text[]), CAST(:wallet_amount AS bigint[]))"
    " ON CONFLICT DO NOTHING"
)
_INSERT_ITEMS = sa.text(
    "INSERT INTO rc_items SELECT * FROM unnest(CAST(:book AS text[]), CAST(:kind AS text[]), CAST(:ref AS text[]),"
    " CAST(:item_id AS text[]), CAST(:currency AS text[]), CAST(:amount AS bigint[]), CAST(:cancels AS text[]),"
    " CAST(:seller AS text[]))"
)
"""A page of rows in one statement, each column an array (one round trip, not one per row)."""


async def _fill(conn: AsyncConnection, statement: sa.TextClause, rows: AsyncIterator[dict[str, Any]]) -> int:
    n = 0
    page: list[dict[str, Any]] = []

    async def flush() -> None:
        await conn.execute(statement, {name: [r[name] for r in page] for name in page[0]})
        await conn.commit()
        page.clear()

    async for row in rows:
        n += 1
        page.append(row)
        if len(page) >= PAGE:
            await flush()
    if page:
        await flush()
    return n


async def _our_rows(records: AsyncIterator[OurRecord]) -> AsyncIterator[dict[str, Any]]:
    async for r in records:
        yield {"kind": r.kind, "ref": r.ref, "seller": r.seller, "currency": r.currency, "amount": r.amount_minor,
               "wallet_expected": r.wallet_expected, "detail": r.detail, "required": r.required,
               "parent": r.parent, "wallet_amount": r.wallet_amount_minor}  # fmt: skip


async def _item_rows(book: Book, items: AsyncIterator[BookItem]) -> AsyncIterator[dict[str, Any]]:
    async for i in items:
        yield {"book": book, "kind": i.kind, "ref": i.ref, "item_id": i.item_id, "currency": i.currency,
               "amount": i.amount_minor, "cancels": i.cancels, "seller": i.seller}  # fmt: skip


def _mismatch(code: Code, ref: str, currency: str, amount: int, diffs: list[Difference]) -> Mismatch:
    return Mismatch(code, CLASSIFICATION[code], "", ref, currency, amount, tuple(diffs))


async def _ours_lacking(conn: AsyncConnection, sources: RecordSources) -> AsyncIterator[Mismatch]:
    """Our records a book lacks, each confirmed by a look-up of its reference in that book."""
    position = ("", "", "")
    while True:
        page = (
            await conn.execute(
                _OURS_LACKING,
                {"kind": position[0], "ref": position[1], "book": position[2], "limit": PAGE},
            )
        ).all()
        await conn.commit()  # no transaction stays open while the other services answer
        for row in page:
            record = OurRecord(row.kind, row.ref, row.seller, row.currency, row.amount, row.wallet_expected,
                               row.detail, parent=row.parent)  # fmt: skip
            if row.book == "ledger":
                if await sources.ledger_count(record) >= 1:
                    continue  # booked outside the window (a record created just before midnight)
                code, theirs = Code.LEDGER_TRANSACTION_MISSING, "no transaction"
            else:
                if await sources.wallet_count(record) >= 1:
                    continue
                code, theirs = Code.WALLET_MOVEMENT_MISSING, "no movement"
            ours = f"{row.kind} {row.ref}" + (f" ({row.detail})" if row.detail else "")
            yield _mismatch(code, reference(row.kind, row.ref), row.currency, row.amount,
                            [Difference(f"{row.book}_{'transaction' if row.book == 'ledger' else 'movement'}",
                                        ours, theirs)])  # fmt: skip
        if len(page) < PAGE:
            return
        last = page[-1]
        position = (last.kind, last.ref, last.book)


async def _books_unexplained(conn: AsyncConnection, sources: RecordSources) -> AsyncIterator[Mismatch]:
    """Book items naming nothing of ours (confirmed by a look-up of the record), or one record's extra ones."""
    position = ("", "", "")
    while True:
        page = (
            await conn.execute(
                _BOOKS_UNEXPLAINED,
                {"book": position[0], "kind": position[1], "ref": position[2], "limit": PAGE},
            )
        ).all()
        await conn.commit()
        for row in page:
            code = (
                Code.LEDGER_TRANSACTION_UNEXPECTED
                if row.book == "ledger"
                else Code.WALLET_MOVEMENT_UNEXPECTED
            )
            what = "transaction" if row.book == "ledger" else "movement"
            if row.ours:
                diff = Difference(f"{row.book}_{what}s", "1", str(row.net))
            else:
                if await sources.record(row.kind, row.ref) is not None:
                    continue  # a record of ours created outside the window
                diff = Difference(row.kind, "absent", f"{row.book} {what} {row.item_id}")
            yield _mismatch(code, reference(row.kind, row.ref), row.currency, row.amount, [diff])
        if len(page) < PAGE:
            return
        last = page[-1]
        position = (last.book, last.kind, last.ref)


async def _books_differing(conn: AsyncConnection) -> AsyncIterator[Mismatch]:
    """Our records whose book item has another amount, currency or seller than the record: one mismatch per
    record and book, with a difference per field, the amount theirs less ours when the amount differs."""
    position = ("", "", "")
    while True:
        page = (
            await conn.execute(
                _BOOKS_DIFFERING,
                {"kind": position[0], "ref": position[1], "book": position[2], "limit": PAGE},
            )
        ).all()
        await conn.commit()
        for row in page:
            what = "transaction" if row.book == "ledger" else "movement"
            diffs = [
                Difference(f"{row.book}_{what}", f"{row.kind} {row.ref}", f"{row.book} {what} {row.item_id}")
            ]
            if row.their_currency != row.currency:
                diffs.append(Difference("currency", row.currency, row.their_currency))
            expected = row.amount if row.book == "ledger" else row.wallet_amount
            amount = row.amount
            if row.kind != "payout" and row.their_currency == row.currency:
                if expected is not None and row.their_amount != expected:
                    diffs.append(Difference("amount_minor", str(expected), str(row.their_amount)))
                    amount = row.their_amount - expected
                elif expected is None and not 0 <= row.their_amount <= row.amount:
                    diffs.append(Difference("amount_minor", f"at most {row.amount}", str(row.their_amount)))
                    amount = row.their_amount - row.amount
            if row.book == "wallet" and row.seller and row.their_seller != row.seller:
                diffs.append(Difference("seller", row.seller, row.their_seller))
            code = Code.LEDGER_TRANSACTION_DIFFERS if row.book == "ledger" else Code.WALLET_MOVEMENT_DIFFERS
            yield _mismatch(code, reference(row.kind, row.ref), row.currency, amount, diffs)
        if len(page) < PAGE:
            return
        last = page[-1]
        position = (last.kind, last.ref, last.book)


async def _store(conn: AsyncConnection, run_id: str, found: list[Mismatch]) -> list[tuple[Mismatch, str]]:
    """Queue the mismatches under ``run_id``; each with its id. One the run queued already (an earlier attempt of
    its checks that failed later on, then retried) keeps its first id and is not queued again: a record has at
    most one mismatch per code in a run, so (code, reference) names it."""
    if not found:
        return []
    earlier = {
        (r.code, r.our_reference): r.mismatch_id
        for r in await conn.execute(
            sa.select(t.mismatches.c.code, t.mismatches.c.our_reference, t.mismatches.c.mismatch_id).where(
                t.mismatches.c.run_id == run_id,
                t.mismatches.c.balance_transaction_id == "",
                t.mismatches.c.our_reference.in_({m.our_reference for m in found}),
            )
        )
    }
    kept = [(m, earlier.get((m.code.value, m.our_reference))) for m in found]
    stored = [(m, mid or f"mm_{uuid.uuid4().hex}") for m, mid in kept]
    new = [(m, mid) for (m, mid), (_, was) in zip(stored, kept, strict=True) if was is None]
    if not new:
        await conn.commit()
        return stored
    await conn.execute(
        t.mismatches.insert(),
        [
            {"mismatch_id": mid, "run_id": run_id, "code": m.code.value, "classification": m.classification.value,
             "state": "open", "balance_transaction_id": "", "our_reference": m.our_reference,
             "currency": m.currency, "amount_minor": m.amount_minor,
             "differences": [{"field": d.field, "ours": d.ours, "theirs": d.theirs} for d in m.differences],
             "line": 0}
            for m, mid in new
        ],
    )  # fmt: skip
    await conn.execute(
        t.actions.insert(),
        [
            {"mismatch_id": mid, "actor": "recon", "action": "opened",
             "detail": f"{m.code.value} in run {run_id} (internal check)"}
            for m, mid in new
        ],
    )  # fmt: skip
    await conn.commit()
    return stored


async def check_records(
    engine: AsyncEngine, sources: RecordSources, window: tuple[dt.datetime, dt.datetime], run_id: str
) -> RecordCheckReport:
    """Compare the window's records of ours with the window's books, both directions, and store each confirmed
    difference as a mismatch of ``run_id``.

    One recon connection holds the temporary tables for the check (dropped at its end); each statement commits
    at once, so no transaction stays open while the other services are read.
    """
    report = RecordCheckReport()
    async with engine.connect() as conn:
        for ddl in _TABLES:
            await conn.execute(sa.text(ddl))
        await conn.commit()
        try:
            report.records_checked = await _fill(conn, _INSERT_OURS, _our_rows(sources.records(window)))
            books: list[tuple[Book, AsyncIterator[BookItem]]] = [
                ("ledger", sources.ledger_items(window)),
                ("wallet", sources.wallet_items(window)),
            ]
            for book, items in books:
                report.book_items_checked += await _fill(conn, _INSERT_ITEMS, _item_rows(book, items))
            for statement in (*_NET, *_DIFFERING):
                await conn.execute(sa.text(statement))
            await conn.commit()
            found: list[Mismatch] = []
            for differences in (
                _ours_lacking(conn, sources),
                _books_unexplained(conn, sources),
                _books_differing(conn),
            ):
                async for m in differences:
                    found.append(m)
                    if len(found) >= PAGE:
                        report.add(await _store(conn, run_id, found))
                        found = []
            report.add(await _store(conn, run_id, found))
        finally:
            await conn.rollback()
            await conn.execute(sa.text("DROP TABLE IF EXISTS rc_ours, rc_items, rc_net, rc_differ"))
            await conn.commit()
    if report.counts:
        log.warning("internal checks found differences", run_id=run_id, by_code=report.by_code)
    return report


class RecordChecker:
    """The per-record checks with their recon database and sources (built by the composition root), and the
    wallets-against-ledger comparison a day's run adds (``totals``; None: not run)."""

    def __init__(
        self,
        engine: AsyncEngine,
        sources: RecordSources,
        totals: Callable[[], Awaitable[WalletLedgerReport]] | None = None,
    ) -> None:
        self._engine = engine
        self._sources = sources
        self.totals = totals

    async def check(self, window: tuple[dt.datetime, dt.datetime], run_id: str) -> RecordCheckReport:
        return await check_records(self._engine, self._sources, window, run_id)


def _totals_mismatch(m: Any) -> Mismatch:
    """A wallet-against-ledger difference (recon_svc.service.Mismatch) for the queue: ours is the wallet, theirs
    the ledger's payable account, the amount what the wallet holds beyond the ledger."""
    return _mismatch(
        Code.WALLET_LEDGER_DIFFERS,
        f"seller:{m.seller_id}/{m.currency}",
        m.currency,
        m.wallet_minor - m.ledger_minor,
        [Difference(f"balance_minor ({m.kind.value.lower()})", str(m.wallet_minor), str(m.ledger_minor))],
    )


class _SettlementReport(Protocol):
    run_id: str
    mismatches_by_code: dict[str, int]
    open_by_classification: dict[str, int]

    def as_dict(self) -> dict[str, object]: ...


async def run_day_checks(
    engine: AsyncEngine,
    checker: RecordChecker,
    report: _SettlementReport,
    window: tuple[dt.datetime, dt.datetime],
) -> tuple[RecordCheckReport, dict[str, object]]:
    """The per-record checks and the wallets-against-ledger comparison of ``window``'s day, their mismatches
    queued under the run and counted in ``report`` (by code and classification); the summary its stored report
    carries as ``internal_checks``. Raises whatever stopped them (nothing is counted then; what they had queued
    stays, and a retry queues it no second time)."""
    checks = await checker.check(window, report.run_id)
    totals = await checker.totals() if checker.totals is not None else None
    if totals is not None:
        async with engine.connect() as conn:
            checks.add(await _store(conn, report.run_id, [_totals_mismatch(m) for m in totals.mismatches]))
    for (code, classification), n in checks.counts.items():
        report.mismatches_by_code[code] = report.mismatches_by_code.get(code, 0) + n
        report.open_by_classification[classification] = (
            report.open_by_classification.get(classification, 0) + n
        )
    summary: dict[str, object] = {
        "records_checked": checks.records_checked,
        "book_items_checked": checks.book_items_checked,
        "mismatches": checks.mismatch_count,
    }
    if totals is not None:
        summary |= {"wallets_checked": totals.wallets_checked, "accounts_checked": totals.accounts_checked}
    return checks, summary


def failure_reason(exc: Exception) -> str:
    """What stopped the checks, for the report and the log: a domain reason, else the error's type (never its
    text, which may quote a connection string)."""
    return exc.reason if isinstance(exc, DomainError) else type(exc).__name__


async def save_internal_checks(
    engine: AsyncEngine, report: _SettlementReport, summary: dict[str, object]
) -> None:
    stored = report.as_dict() | {"internal_checks": summary}
    async with engine.begin() as conn:
        await conn.execute(t.runs.update().where(t.runs.c.run_id == report.run_id).values(report=stored))


async def check_settlement_day(
    engine: AsyncEngine,
    checker: RecordChecker,
    report: _SettlementReport,
    window: tuple[dt.datetime, dt.datetime],
) -> RecordCheckReport | None:
    """The per-record checks at the end of a settlement run of ``window``'s day: their mismatches join the run's
    (same run id, counted in its report by code and classification), and the stored report says what they
    read (``internal_checks``).

    A check that fails (a service unreachable) leaves the settlement run as it is: its reason is stored in
    ``internal_checks.error``, logged as an error, counted (``recon_internal_checks_failed_total``) and queued for
    a retry after a back-off (recon_svc/check_retries.py, which reports when they pass or alerts when they still
    fail at the back-off's cap); None is returned."""
    checks: RecordCheckReport | None
    try:
        checks, summary = await run_day_checks(engine, checker, report, window)
    except Exception as exc:  # the settlement run stands whatever stopped the checks
        reason = failure_reason(exc)
        FAILED.inc()
        log.error("internal checks failed; the settlement run stands, the checks are retried",
                  run_id=report.run_id, reason=reason)  # fmt: skip
        await queue_retry(engine, report.run_id, window, reason)
        checks, summary = None, {"error": reason, "attempts": 1, "retry": "scheduled"}
    await save_internal_checks(engine, report, summary)
    return checks


async def queue_retry(
    engine: AsyncEngine, run_id: str, window: tuple[dt.datetime, dt.datetime], reason: str
) -> None:
    """The run's checks failed at the end of its run (attempt 1): retried by check_retries.CheckRetrier."""
    insert = postgresql.insert(t.check_retries).values(
        run_id=run_id,
        window_start=window[0],
        window_end=window[1],
        state="failed",
        attempts=1,
        last_error=reason,
    )
    async with engine.begin() as conn:
        await conn.execute(insert.on_conflict_do_nothing(index_elements=["run_id"]))
