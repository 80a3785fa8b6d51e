"""The pay-out inbox: the PSP's ``payout.paid`` / ``failed`` / ``canceled`` recorded on arrival, applied in
groups by a worker.

``HandlePspEvent`` records "the PSP says <status> for payout <id> (event id, the PSP's event time)" in
one statement idempotent on the event id, and answers ``accepted``: the webhook is acknowledged once
the fact is durable (acknowledge fast, process asynchronously). The janitor records what it learns
from the PSP the same way (event id ``janitor:<PSP payout id>:<status>``). The worker of every replica
takes due facts with ``FOR UPDATE SKIP LOCKED`` in the PSP's order (event time; paid before failed at
the same time; arrival), a fact waiting while an earlier one of its payout is unapplied, and applies a
group in one transaction: the pay-outs locked, the paid ones' wallet captures in one ``ApplyBatch`` and
their ledger postings in one ``PostTransactions`` (``.events``), failures one by one, the state changes
with their history and outbox events, and each fact's outcome. Every remote call is under the key the
single path used, so a crash between the calls and the commit replays them and books once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import InboxFact, InboxOutcome, PayoutRow
from payment_svc.payouts.events import PAYABLE, PayoutAnswers
from payment_svc.payouts.repository import PayoutRepo
from payment_svc.psp_objects import PayoutView
from svckit.errors import DomainError
from svckit.logging import get_logger
from svckit.runtime import stop_if_cancelled

log = get_logger(__name__)

# How often a worker deletes old applied facts: retention is counted in days, so hourly is plenty.
PURGE_INTERVAL_SECONDS = 3600.0

INBOX_APPLIED = Counter(
    "payment_payout_inbox_applied_total", "PSP pay-out facts applied from the inbox, by outcome", ["outcome"]
)
INBOX_DEFERRED = Counter(
    "payment_payout_inbox_deferred_total", "PSP pay-out facts whose apply failed (retried later)"
)
INBOX_DEPTH = Gauge("payment_payout_inbox_depth", "PSP pay-out facts recorded and not applied yet")
INBOX_OLDEST = Gauge(
    "payment_payout_inbox_oldest_seconds", "Age of the oldest PSP pay-out fact not applied yet"
)
INBOX_PURGED = Counter(
    "payment_payout_inbox_purged_total", "Applied PSP pay-out facts deleted after the retention period"
)
INBOX_STALE = Counter(
    "payment_payout_inbox_stale_total", "Looks that found an unapplied PSP pay-out fact past its alert age"
)


def fact_of(event_id: str, po: PayoutView, created: int | None, cause: str) -> InboxFact | None:
    """The fact a final PSP payout object states; None for a status that is not final."""
    if po.status not in ("paid", "failed", "canceled"):
        return None
    at = datetime.fromtimestamp(created, UTC) if created is not None else datetime.now(UTC)
    return InboxFact(
        event_id=event_id,
        psp_payout_id=po.id or "",
        payout_id=po.payout_id,
        psp_account=po.account,
        status=po.status,
        failure_code=po.failure_code,
        failure_message=po.failure_message,
        psp_created_at=at,
        cause=cause,
    )


def _view(fact: InboxFact) -> PayoutView:
    return PayoutView(
        id=fact.psp_payout_id or None,
        status=fact.status,
        payout_id=fact.payout_id,
        account=fact.psp_account,
        failure_code=fact.failure_code,
        failure_message=fact.failure_message,
    )


class PayoutInbox:
    def __init__(self, deps: PayoutDeps, answers: PayoutAnswers) -> None:
        self._d = deps
        self._answers = answers
        self._wake = asyncio.Event()

    async def record(self, fact: InboxFact) -> None:
        """Durably record a fact (once per event id) and wake this process's worker."""
        await self._d.store.record_fact(fact)
        self._wake.set()

    async def record_in(self, repo: PayoutRepo, fact: InboxFact) -> None:
        """:meth:`record` inside a caller's transaction (woken now; a fact the caller's rollback drops
        costs the worker one empty look)."""
        await repo.record_fact(fact)
        self._wake.set()

    async def outcome(self, event_id: str) -> str | None:
        async with self._d.store.unit() as repo:
            return await repo.fact_outcome(event_id)

    async def drain(self) -> int:
        """Apply groups of due facts until none is left; the facts settled."""
        settled = 0
        while True:
            n = await self.apply_group()
            if n == 0:
                return settled
            settled += n

    async def apply_group(self, limit: int | None = None) -> int:
        """Claim and apply one group of due facts; the facts claimed (0: none due). When the group as
        a whole fails (a fault of the wallet, ledger or PSP), its facts are tried one at a time, so
        one fact's fault defers that fact only (the others' calls replay under their keys)."""
        limit = limit or self._d.settings.payout_inbox_batch_size
        facts: list[InboxFact] = []
        try:
            async with self._d.store.unit() as repo:
                facts = await repo.claim_facts(limit)
                if facts:
                    await self._apply(repo, facts)
            return len(facts)
        except Exception as exc:
            stop_if_cancelled()
            if not facts:
                raise  # the claim itself failed (the database): the caller retries later
            if len(facts) > 1:
                log.warning("pay-out inbox group failed; applying its facts one at a time", error=repr(exc))
                done = 0
                for _ in facts:
                    n = await self.apply_group(1)
                    if n == 0:
                        break
                    done += n
                return done
            async with self._d.store.unit() as repo:
                await repo.defer_facts(
                    [(facts[0].event_id, repr(exc))], self._d.settings.payout_inbox_retry_seconds
                )
            INBOX_DEFERRED.inc()
            log.error(
                "pay-out fact not applied; tried again later", event_id=facts[0].event_id, error=repr(exc)
            )
            return 1

    async def _apply(self, repo: PayoutRepo, facts: list[InboxFact]) -> None:
        found = await repo.payouts_for_facts(
            [f.psp_payout_id for f in facts if f.psp_payout_id], [f.payout_id for f in facts if f.payout_id]
        )
        by_psp = {p.psp_payout_id: p for p in found if p.psp_payout_id}
        by_id = {p.payout_id: p for p in found}
        current: dict[str, PayoutRow] = {}  # each pay-out as the group has left it so far
        outcomes: list[tuple[str, str]] = []
        errors: list[tuple[str, str]] = []
        pending: dict[str, InboxFact] = {}  # paid facts waiting for the group's books call, by pay-out

        async def flush() -> None:
            if not pending:
                return
            batch = [
                (current[pid], f.psp_payout_id, f"payout {f.psp_payout_id} paid ({f.event_id})")
                for pid, f in pending.items()
            ]
            for (p, _, _), answer in zip(batch, await self._answers.paid(repo, batch), strict=True):
                fact = pending[p.payout_id]
                if isinstance(answer, DomainError):
                    errors.append((fact.event_id, f"{answer.reason}: {answer.message}"))
                else:
                    current[p.payout_id] = answer
                    outcomes.append((fact.event_id, InboxOutcome.APPLIED))
            pending.clear()

        for fact in facts:
            p = by_psp.get(fact.psp_payout_id) or (by_id.get(fact.payout_id) if fact.payout_id else None)
            if p is None:
                outcomes.append((fact.event_id, InboxOutcome.UNKNOWN_PAYOUT))
                log.error(
                    "PSP pay-out fact for a payout that is not ours; kept in the inbox for an operator",
                    event_id=fact.event_id,
                    psp_payout_id=fact.psp_payout_id,
                )
                continue
            p = current.setdefault(p.payout_id, p)
            if p.psp_account != (fact.psp_account or p.psp_account) or p.psp_payout_id not in (
                None,
                fact.psp_payout_id,
            ):
                outcomes.append((fact.event_id, InboxOutcome.MISMATCH))
                log.error(
                    "PSP pay-out fact does not match our pay-out",
                    event_id=fact.event_id,
                    payout_id=p.payout_id,
                    psp_payout_id=fact.psp_payout_id,
                )
                continue
            if fact.status == "paid":
                if p.state in PAYABLE and p.payout_id not in pending:
                    pending[p.payout_id] = fact
                else:
                    outcomes.append((fact.event_id, InboxOutcome.NO_CHANGE))
                continue
            if p.payout_id in pending:
                await flush()  # its paid comes first: then it fails as returned
                p = current[p.payout_id]
            moved = await self._answers.failed(repo, p, _view(fact), fact.cause)
            if moved is None:
                outcomes.append((fact.event_id, InboxOutcome.NO_CHANGE))
            else:
                current[p.payout_id] = moved
                outcomes.append((fact.event_id, InboxOutcome.APPLIED))
        await flush()
        await repo.settle_facts(outcomes)
        await repo.defer_facts(errors, self._d.settings.payout_inbox_retry_seconds)
        for _, outcome in outcomes:
            INBOX_APPLIED.labels(outcome).inc()
        INBOX_DEFERRED.inc(len(errors))
        for event_id, error in errors:
            log.error("pay-out fact refused; tried again later", event_id=event_id, error=error)

    async def observe(self) -> tuple[int, float]:
        """Update the depth and age gauges; alert (error log and metric) when the oldest unapplied fact
        is past ``payout_inbox_alert_seconds``."""
        async with self._d.store.unit() as repo:
            depth, age = await repo.inbox_depth()
        INBOX_DEPTH.set(depth)
        INBOX_OLDEST.set(age)
        if age > self._d.settings.payout_inbox_alert_seconds:
            INBOX_STALE.inc()
            log.error("pay-out inbox has old unapplied facts", depth=depth, oldest_seconds=round(age))
        return depth, age

    async def purge(self, batch: int = 5000) -> int:
        """Delete facts applied more than ``payout_inbox_retention_days`` ago, a batch per transaction
        so no long lock is held; the facts deleted."""
        deleted = 0
        while True:
            async with self._d.store.unit() as repo:
                n = await repo.purge_facts(self._d.settings.payout_inbox_retention_days, batch)
            deleted += n
            INBOX_PURGED.inc(n)
            if n < batch:
                if deleted:
                    log.info("pay-out inbox purged", facts=deleted)
                return deleted

    async def inbox_forever(self) -> None:
        """Apply facts as they are recorded (woken by this process's records) and every
        ``payout_inbox_poll_seconds`` (other replicas' records, retries that came due)."""
        s = self._d.settings
        observed = purged = 0.0
        while True:
            self._wake.clear()  # before the look: a record made during it wakes the next one
            try:
                await self.drain()
                if time.monotonic() - observed >= max(s.payout_inbox_poll_seconds, 10.0):
                    observed = time.monotonic()
                    await self.observe()
                if time.monotonic() - purged >= PURGE_INTERVAL_SECONDS:
                    purged = time.monotonic()
                    await self.purge()
            except Exception:
                log.exception("pay-out inbox pass failed; will retry")
            stop_if_cancelled()
            with contextlib.suppress(TimeoutError):  # the poll: nothing woke it
                await asyncio.wait_for(self._wake.wait(), s.payout_inbox_poll_seconds)
                # Woken by a record: let its companions arrive, then apply them together.
                await asyncio.sleep(s.payout_inbox_linger_seconds)
