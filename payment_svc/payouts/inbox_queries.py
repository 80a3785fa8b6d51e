"""The pay-out inbox's queries: the part of ``PayoutRepo`` (``.repository``) that records the PSP's
pay-out facts and hands them to the worker that applies them (``.inbox``). One unit of work holds
these and the pay-out queries (``PayoutRepo`` inherits them), so a group's state changes and its
facts' outcomes commit together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc.payouts.domain import STATUS_RANK, InboxFact
from svckit.redaction import redact

_T = sa.text

RECORD_FACT = (
    "INSERT INTO payout_inbox (event_id, psp_payout_id, payout_id, psp_account, status, status_rank,"
    " failure_code, failure_message, psp_created_at, cause)"
    " VALUES (%(event_id)s, %(psp_payout_id)s, %(payout_id)s, %(psp_account)s, %(status)s, %(rank)s,"
    " %(failure_code)s, %(failure_message)s, %(psp_created_at)s, %(cause)s)"
    " ON CONFLICT (event_id) DO NOTHING"
)
"""One statement, idempotent on the event id (psycopg's parameter style: it runs on the driver pool)."""


def record_params(fact: InboxFact) -> dict[str, Any]:
    return {
        "event_id": fact.event_id,
        "psp_payout_id": fact.psp_payout_id,
        "payout_id": fact.payout_id,
        "psp_account": fact.psp_account,
        "status": fact.status,
        "rank": STATUS_RANK[fact.status],
        "failure_code": fact.failure_code,
        # The PSP's words may quote a card or account number.
        "failure_message": redact(fact.failure_message)[:500] if fact.failure_message else None,
        "psp_created_at": fact.psp_created_at,
        "cause": fact.cause[:300],
    }


def _fact(r: Any) -> InboxFact:
    return InboxFact(
        event_id=r.event_id,
        psp_payout_id=r.psp_payout_id,
        payout_id=r.payout_id,
        psp_account=r.psp_account,
        status=r.status,
        failure_code=r.failure_code,
        failure_message=r.failure_message,
        psp_created_at=r.psp_created_at,
        cause=r.cause,
        attempts=r.attempts,
    )


class InboxQueries:
    conn: AsyncConnection

    async def record_fact(self, fact: InboxFact) -> None:
        """:data:`RECORD_FACT` inside this unit of work (the janitor's facts, the full event path)."""
        sql = RECORD_FACT.replace("%(", ":").replace(")s", "")
        await self.conn.execute(_T(sql), record_params(fact))

    async def claim_facts(self, limit: int) -> list[InboxFact]:
        """Facts due to apply, in the PSP's order, locked for this transaction; another worker's are
        skipped. A fact waits while an earlier one of the same payout is unapplied (another worker's
        group, or one backing off after an error), so one payout's facts apply one after the other in
        the PSP's order across replicas."""
        rows = (
            await self.conn.execute(
                _T(
                    "SELECT * FROM payout_inbox i WHERE i.outcome IS NULL AND i.next_try_at <= now()"
                    " AND NOT EXISTS (SELECT 1 FROM payout_inbox e WHERE e.outcome IS NULL"
                    " AND e.psp_payout_id = i.psp_payout_id"
                    " AND (e.psp_created_at, e.status_rank, e.seq) < (i.psp_created_at, i.status_rank, i.seq))"
                    " ORDER BY i.psp_created_at, i.status_rank, i.seq LIMIT :n FOR UPDATE OF i SKIP LOCKED"
                ),
                {"n": limit},
            )
        ).all()
        return [_fact(r) for r in rows]

    async def settle_facts(self, outcomes: Sequence[tuple[str, str]]) -> None:
        """Each (event id, outcome): applied, now."""
        if not outcomes:
            return
        await self.conn.execute(
            _T(
                "UPDATE payout_inbox i SET outcome = x.o, applied_at = now(), last_error = NULL"
                " FROM unnest(CAST(:ids AS text[]), CAST(:os AS text[])) AS x(id, o) WHERE i.event_id = x.id"
            ),
            {"ids": [e for e, _ in outcomes], "os": [o for _, o in outcomes]},
        )

    async def defer_facts(self, errors: Sequence[tuple[str, str]], retry_seconds: float) -> None:
        """Each (event id, error): not applied; tried again ``retry_seconds`` later (doubling per attempt,
        at most an hour)."""
        if not errors:
            return
        await self.conn.execute(
            _T(
                "UPDATE payout_inbox i SET attempts = attempts + 1, last_error = x.e,"
                " next_try_at = now() + make_interval(secs => least(3600, :d * 2 ^ least(attempts, 10)))"
                " FROM unnest(CAST(:ids AS text[]), CAST(:es AS text[])) AS x(id, e) WHERE i.event_id = x.id"
            ),
            {"ids": [e for e, _ in errors], "es": [redact(m)[:500] for _, m in errors], "d": retry_seconds},
        )

    async def inbox_depth(self) -> tuple[int, float]:
        """Facts not applied yet, and the age in seconds of the oldest (0 when none)."""
        row = (
            await self.conn.execute(
                _T(
                    "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(received_at)), 0) AS age"
                    " FROM payout_inbox WHERE outcome IS NULL"
                )
            )
        ).one()
        return int(row.n), float(row.age)

    async def purge_facts(self, older_than_days: int, batch: int) -> int:
        """Delete up to ``batch`` facts applied (``APPLIED`` or ``NO_CHANGE``) more than
        ``older_than_days`` ago; the rows deleted. Unapplied facts and those kept for an operator
        (``UNKNOWN_PAYOUT``, ``MISMATCH``) stay."""
        result = await self.conn.execute(
            _T(
                "DELETE FROM payout_inbox WHERE event_id IN (SELECT event_id FROM payout_inbox"
                " WHERE outcome IN ('APPLIED', 'NO_CHANGE') AND applied_at < now() - make_interval(days => :d)"
                " LIMIT :n)"
            ),
            {"d": older_than_days, "n": batch},
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def fact_outcome(self, event_id: str) -> str | None:
        """The outcome of a recorded fact; None while unapplied (or when no such fact)."""
        return (
            await self.conn.execute(
                _T("SELECT outcome FROM payout_inbox WHERE event_id = :e"), {"e": event_id}
            )
        ).scalar()
