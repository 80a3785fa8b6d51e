"""Preview and start a period's run: plan each seller (what would be paid, or why not), create at most
one pay-out per (seller, period), and drive the pay-outs through their steps in the background.

Planning reads the seller's available wallet balance in the payout currency, holds back the rolling
reserve (a share of the net of the seller's orders of the last ``reserve_days``), and pays the rest
when it reaches the seller's minimum for that currency. Sellers are looked at in order of their
account; a run interrupted by a crash is taken up again by the janitor (its claim lease lapses), and
planning a seller twice is harmless: the run's item and the pay-out are both inserted at most once.

One module past the usual size because a chunk's steps (plan, insert, reserve, post, transfer, pay
out) share their bookkeeping and must be read in order to see that each is resumable.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar, cast

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import (
    PayoutRow,
    PayoutState,
    Period,
    RunItem,
    RunRow,
    SellerRow,
    SellerState,
    SkipReason,
    check_seller_account,
    parse_period,
    reserve_held,
)
from payment_svc.payouts.steps import PayoutSteps
from payment_svc.psp import PspError, PspUnavailable
from svckit.errors import DomainError, InvalidArgument, NotFound
from svckit.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")


def new_run_id() -> str:
    return f"prun_{uuid.uuid4().hex}"


def new_payout_id() -> str:
    return f"pyo_{uuid.uuid4().hex}"


class PayoutRuns:
    def __init__(self, deps: PayoutDeps, steps: PayoutSteps) -> None:
        self._d = deps
        self._steps = steps
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- planning ------------------------------------------------------------------------------

    async def plan(self, seller: SellerRow, period: Period, known: Known | None = None) -> RunItem:
        """What the run of ``period`` pays ``seller``, or why it pays nothing (reads only). ``known``:
        the reads a chunk made for all its sellers at once (``_known``), used instead of this
        seller's own."""
        cur = seller.payout_currency

        def skip(reason: SkipReason, detail: str, available: int = 0, held: int = 0) -> RunItem:
            return RunItem(seller.seller_account, 0, cur, None, reason, detail, available, held)

        if seller.state is SellerState.BLOCKED:
            return skip(SkipReason.BLOCKED, seller.state_reason)
        if seller.state is SellerState.PAYOUTS_PAUSED:
            return skip(SkipReason.PAUSED, seller.state_reason)
        if not seller.psp_account:
            return skip(SkipReason.NO_PSP_ACCOUNT, "no PSP connected account attached")
        if known is not None and not seller.reserve_bps:
            existing = known.existing
            recent = 0
        else:
            async with self._d.store.unit() as repo:
                existing = await repo.payout_of_period(seller.seller_account, period.name)
                since = datetime.now(UTC) - timedelta(days=seller.reserve_days)
                recent = (
                    await repo.recent_net_sales(seller.seller_account, cur, since)
                    if seller.reserve_bps
                    else 0
                )
        if existing is not None:
            return self._already_paid(seller, period, existing)
        if known is not None:
            available, debt = known.available, known.debt
        else:
            available = await self._d.books.available(seller.seller_account, cur)
            debt = await self._d.books.debt(seller.seller_account, cur)
        if debt > available:
            return skip(
                SkipReason.NEGATIVE_BALANCE,
                f"the seller owes {debt}, more than the {available} available",
                available,
            )
        held = min(available - debt, reserve_held(recent, seller.reserve_bps))
        # The debt is netted off first; the reserve holds back from what is left.
        amount = available - debt - held
        minimum = seller.minimums.get(cur, 0)
        if amount <= 0 or amount < minimum:
            # Another run of the period may have reserved the balance since we looked: say so.
            async with self._d.store.unit() as repo:
                existing = await repo.payout_of_period(seller.seller_account, period.name)
            if existing is not None:
                return self._already_paid(seller, period, existing)
        if available - debt > 0 and amount == 0:
            return skip(SkipReason.RESERVE, f"the rolling reserve holds all {held}", available, held)
        if amount <= 0 or amount < minimum:
            return skip(
                SkipReason.BELOW_MINIMUM, f"{amount} is below the minimum of {minimum}", available, held
            )
        enabled = self._recently_enabled(seller)
        if enabled is None:
            try:
                account = await self._d.psp.retrieve_account(seller.psp_account)
            except PspError as exc:
                return skip(SkipReason.PSP_UNAVAILABLE, exc.message, available, held)
            enabled = account.payouts_enabled
            async with self._d.store.unit() as repo:
                await repo.note_psp_account(seller.psp_account, enabled, datetime.now(UTC))
        if not enabled:
            return skip(
                SkipReason.PAYOUTS_NOT_ENABLED,
                f"the PSP has payouts disabled on {seller.psp_account}",
                available,
                held,
            )
        detail = f"debt of {debt} netted first" if debt else ""
        return RunItem(seller.seller_account, amount, cur, None, None, detail, available, held, debt)

    def _recently_enabled(self, seller: SellerRow) -> bool | None:
        """Whether the PSP lets the seller's account receive payouts, as it said within
        ``psp_account_max_age_seconds`` (a read, or its ``account.updated`` event); None when that is
        older, or never known: then the run asks the PSP."""
        at, enabled = seller.psp_account_checked_at, seller.psp_payouts_enabled
        max_age = self._d.settings.psp_account_max_age_seconds
        if at is None or enabled is None or (datetime.now(UTC) - at).total_seconds() > max_age:
            return None
        return enabled

    @staticmethod
    def _already_paid(seller: SellerRow, period: Period, existing: PayoutRow) -> RunItem:
        return RunItem(
            seller.seller_account,
            0,
            seller.payout_currency,
            existing.payout_id,
            SkipReason.ALREADY_PAID,
            f"pay-out {existing.payout_id} of {period.name} is {existing.state}",
        )

    async def _sellers(self, period: Period, named: Sequence[str]) -> list[SellerRow]:
        for name in named:
            check_seller_account(name)
        async with self._d.store.unit() as repo:
            sellers = await repo.sellers_for_run(period.schedule, named)
        missing = sorted(set(named) - {s.seller_account for s in sellers})
        if missing:
            raise NotFound(
                "SELLER_NOT_FOUND", f"no registered seller {missing[0]!r}", {"seller_account": missing[0]}
            )
        return sellers

    async def preview(self, period_name: str, named: Sequence[str] = ()) -> RunRow:
        period = parse_period(period_name)
        sellers = await self._sellers(period, named)
        items = [await self.plan(s, period) for s in sellers]
        now = datetime.now(UTC)
        paid = sum(1 for i in items if i.skip_reason is None)
        return RunRow(
            run_id="",
            period=period.name,
            dry_run=True,
            state="COMPLETED",
            sellers_total=len(items),
            sellers_done=len(items),
            payouts_created=0,
            sellers_skipped=len(items) - paid,
            seller_filter=list(named),
            created_at=now,
            finished_at=now,
            items=items,
        )

    # -- a run ---------------------------------------------------------------------------------

    async def start(self, period_name: str, dry_run: bool, named: Sequence[str] = ()) -> RunRow:
        """Store the run; a dry run is planned at once, a real one is driven in the background."""
        if len(set(named)) != len(named):
            raise InvalidArgument(
                "DUPLICATE_SELLER", "seller_accounts names a seller twice", field="seller_accounts"
            )
        period = parse_period(period_name)
        sellers = await self._sellers(period, named)
        run_id = new_run_id()
        async with self._d.store.unit() as repo:
            await repo.insert_run(run_id, period.name, dry_run, named, len(sellers))
        if dry_run:
            for seller in sellers:
                item = await self.plan(seller, period)
                async with self._d.store.unit() as repo:
                    await repo.add_run_item(run_id, item)
            async with self._d.store.unit() as repo:
                await repo.finish_run(run_id)
        else:
            self.spawn(run_id)
        return await self.get(run_id)

    def spawn(self, run_id: str) -> None:
        task = asyncio.create_task(self.resume(run_id), name=f"payout-run-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def get(self, run_id: str) -> RunRow:
        async with self._d.store.unit() as repo:
            run = await repo.get_run(run_id)
        if run is None:
            raise NotFound("PAYOUT_RUN_NOT_FOUND", f"no pay-out run {run_id!r}", {"run_id": run_id})
        return run

    async def resume(self, run_id: str) -> None:
        """Plan every seller of the run not planned yet and drive its pay-outs; then complete the run.
        Safe to call again after a crash (and from several processes: the run's claim decides)."""
        s = self._d.settings
        async with self._d.store.unit() as repo:
            if not await repo.claim_run(run_id, s.payout_claim_lease_seconds):
                return
            run = await repo.get_run(run_id)
            assert run is not None  # just claimed
            planned = await repo.planned_sellers(run_id)
        period = parse_period(run.period)
        try:
            async with self._d.store.unit() as repo:
                sellers = await repo.sellers_for_run(period.schedule, run.seller_filter)
            todo = [seller for seller in sellers if seller.seller_account not in planned]
            complete = True
            for i in range(0, len(todo), s.payout_chunk_size):
                complete &= await self._pay_chunk(run_id, todo[i : i + s.payout_chunk_size], period)
            if not complete:
                raise RuntimeError("some sellers of the run are not planned yet")
            # Pay-outs planned by an interrupted attempt of this run and not sent yet.
            async with self._d.store.unit() as repo:
                left = [p.payout_id for p in await repo.payouts_of_run(run_id) if p.state.value == "CREATED"]
            for payout_id in left:
                await self._steps.drive(payout_id)
            async with self._d.store.unit() as repo:
                await repo.finish_run(run_id)
        except Exception:
            log.exception("pay-out run interrupted; the janitor resumes it", {"run_id": run_id})
            async with self._d.store.unit() as repo:
                await repo.release_run(run_id)

    async def _pay_chunk(self, run_id: str, sellers: Sequence[SellerRow], period: Period) -> bool:
        """Plan a chunk of sellers and take their pay-outs through the steps together: one insert of
        the pay-outs (each claimed by this worker), one wallet ``ApplyBatch`` of reservations, one ledger
        ``PostTransactions``, the PSP transfers then payouts side by side, and one transaction
        recording each step for all. Every remote call carries the key ``drive`` uses, so a pay-out
        any step left behind (a refusal, a fault, a crash) is finished by ``drive`` with the same
        keys, here or by the janitor. False when a seller could not be planned (the run stays open)."""
        s = self._d.settings
        books, psp, store = self._d.books, self._d.psp, self._d.store
        limit = asyncio.Semaphore(s.payout_concurrency)

        async def bounded(call: Awaitable[T]) -> T:
            async with limit:
                return await call

        known = await self._known(sellers, period)
        planned = _results(
            await asyncio.gather(
                *(bounded(self.plan(seller, period, known.get(seller.seller_account))) for seller in sellers),
                return_exceptions=True,
            )
        )
        complete = True
        items: list[RunItem] = []
        by_seller = {seller.seller_account: seller for seller in sellers}
        for seller, item in zip(sellers, planned, strict=True):
            if isinstance(item, BaseException):
                # One seller's fault does not stop the others; the run stays open for it.
                log.error(
                    "pay-out of a seller not planned",
                    run_id=run_id,
                    seller=seller.seller_account,
                    error=f"{type(item).__name__}: {item}",
                )
                complete = False
            else:
                items.append(item)
        paying = {i.seller_account: i for i in items if i.skip_reason is None}
        async with store.unit() as repo:
            created = await repo.create_payouts(
                run_id,
                period.name,
                [
                    (new_payout_id(), by_seller[i.seller_account], i.amount_minor, i.debt_minor)
                    for i in paying.values()
                ],
                s.payout_claim_lease_seconds,
            )
            ids = {p.seller_account: p.payout_id for p in created}
            others = await repo.payouts_of_period([a for a in paying if a not in ids], period.name)
            recorded = []
            for item in items:
                if item.skip_reason is None and item.seller_account in ids:
                    item = replace(item, payout_id=ids[item.seller_account])
                elif item.skip_reason is None:  # another run of the period got there first
                    other = others.get(item.seller_account)
                    item = RunItem(
                        item.seller_account,
                        0,
                        item.currency,
                        other.payout_id if other else None,
                        SkipReason.ALREADY_PAID,
                        "paid by another run of the period",
                    )
                recorded.append(item)
            await repo.add_run_items(run_id, recorded)
        # A seller's debt is netted first (step 0), a rare path that ``drive`` takes alone.
        left: list[tuple[str, BaseException | None]] = [
            (p.payout_id, None) for p in created if p.debt_netted_minor
        ]
        # A step whose outcome is unknown (a fault): noted, and the janitor drives it again later.
        faults: list[tuple[str, BaseException | None]] = []
        todo = [p for p in created if not p.debt_netted_minor]

        # Steps 1 and 2: one wallet call for all reservations, then one ledger call for all postings.
        reserved: list[str | DomainError]
        try:
            reserved = (
                await books.reserve_many(
                    [(p.payout_id, p.seller_account, p.amount_minor, p.currency) for p in todo]
                )
                if todo
                else []
            )
        except DomainError as err:  # the call failed as a whole: nothing of it was written
            reserved = [err] * len(todo)
        ok = [(p, r) for p, r in zip(todo, reserved, strict=True) if isinstance(r, str)]
        for p, r in zip(todo, reserved, strict=True):
            if not isinstance(r, str):
                (faults if _unknown(r) else left).append((p.payout_id, r))
        posted: list[int | BaseException | None]
        try:
            posted = (
                list(
                    await books.post_sent_many(
                        [(p.payout_id, p.seller_account, p.amount_minor, p.currency) for p, _ in ok]
                    )
                )
                if ok
                else []
            )
        except DomainError as err:  # the call failed as a whole
            posted = [err] * len(ok)
        sent = [(p, r, tx) for (p, r), tx in zip(ok, posted, strict=True) if isinstance(tx, int)]
        for (p, _), tx in zip(ok, posted, strict=True):
            if not isinstance(tx, int):
                (faults if _unknown(tx) else left).append((p.payout_id, tx))
        async with store.unit() as repo:
            moved = await repo.advance_many(
                PayoutState.CREATED,
                PayoutState.RESERVED,
                "run",
                {
                    "payout_id": ("text", [p.payout_id for p, _, _ in sent]),
                    "reservation_id": ("text", [r for _, r, _ in sent]),
                    "ledger_tx_id": ("bigint", [tx for _, _, tx in sent]),
                },
                detail=lambda _: "wallet reserved, ledger posted",
            )

        # Step 3: the transfers side by side, recorded together before any payout is asked for (the
        # payout's event finds the pay-out TRANSFERRED at the earliest).
        transfers = _results(
            await asyncio.gather(
                *(
                    bounded(
                        psp.create_transfer(
                            amount_minor=p.amount_minor,
                            currency=p.currency,
                            destination=p.psp_account,
                            payout_id=p.payout_id,
                            idempotency_key=f"{p.payout_id}:transfer",
                        )
                    )
                    for p in moved
                ),
                return_exceptions=True,
            )
        )
        done = [(p, tr) for p, tr in zip(moved, transfers, strict=True) if not isinstance(tr, BaseException)]
        for p, tr in zip(moved, transfers, strict=True):
            if isinstance(tr, BaseException):
                (faults if _unknown(tr) else left).append((p.payout_id, tr))
        async with store.unit() as repo:
            moved = await repo.advance_many(
                PayoutState.RESERVED,
                PayoutState.TRANSFERRED,
                "run",
                {
                    "payout_id": ("text", [p.payout_id for p, _ in done]),
                    "psp_transfer_id": ("text", [tr.id for _, tr in done]),
                },
                detail=lambda p: f"transfer {p.psp_transfer_id}",
            )

        # Step 4: the payouts from the connected accounts side by side, recorded together.
        payouts = _results(
            await asyncio.gather(
                *(
                    bounded(
                        psp.create_payout(
                            amount_minor=p.amount_minor,
                            currency=p.currency,
                            account=p.psp_account,
                            payout_id=p.payout_id,
                            idempotency_key=f"{p.payout_id}:payout",
                        )
                    )
                    for p in moved
                ),
                return_exceptions=True,
            )
        )
        out = [(p, po) for p, po in zip(moved, payouts, strict=True) if not isinstance(po, BaseException)]
        for p, po in zip(moved, payouts, strict=True):
            if isinstance(po, BaseException):
                (faults if _unknown(po) else left).append((p.payout_id, po))
        async with store.unit() as repo:
            await repo.advance_many(
                PayoutState.TRANSFERRED,
                PayoutState.IN_TRANSIT,
                "run",
                {
                    "payout_id": ("text", [p.payout_id for p, _ in out]),
                    "psp_payout_id": ("text", [po.id for _, po in out]),
                },
                also=", claimed_until = NULL, last_error = NULL,"
                " next_check_at = now() + make_interval(secs => :check)",
                detail=lambda p: f"payout {p.psp_payout_id}",
                check=s.payout_check_seconds,
            )
            # Those an event answered first keep its state; our claim on them ends here.
            await repo.release_claims([p.payout_id for p, _ in out])
            await repo.release_claims([payout_id for payout_id, _ in left])
            for payout_id, error in faults:
                log.warning(
                    "pay-out step not done; retried later with the same key",
                    payout_id=payout_id,
                    error=_said(error),
                )
                await repo.note_fault(payout_id, _said(error), s.payout_retry_seconds)
        # A refusal (or the debt's step 0): ``drive`` takes each from where it is, with the same keys,
        # and fails it with what was done undone.
        await asyncio.gather(*(bounded(self._drive(payout_id)) for payout_id, _ in left))
        return complete

    async def _known(self, sellers: Sequence[SellerRow], period: Period) -> dict[str, Known]:
        """Planning's reads for a chunk in three calls instead of three per seller: the period's
        pay-outs, the wallets' available balances, the ledger's debts. Empty when a read fails: each
        seller then reads (and fails) on its own, as before."""
        if not sellers:
            return {}
        wallets = [(seller.seller_account, seller.payout_currency) for seller in sellers]
        try:
            async with self._d.store.unit() as repo:
                existing = await repo.payouts_of_period([s for s, _ in wallets], period.name)
            available = await self._d.books.available_many(wallets)
            debts = await self._d.books.debts_many(wallets)
        except DomainError as err:
            log.warning("chunk reads failed; each seller reads alone", error=_said(err))
            return {}
        return {
            seller: Known(existing.get(seller), a, d)
            for (seller, _), a, d in zip(wallets, available, debts, strict=True)
        }

    async def _drive(self, payout_id: str) -> None:
        try:
            await self._steps.drive(payout_id)
        except Exception:
            log.exception("pay-out interrupted; the janitor resumes it", payout_id=payout_id)


@dataclass(frozen=True)
class Known:
    """What planning reads about one seller, read for a whole chunk at once."""

    existing: PayoutRow | None
    available: int
    debt: int


def _unknown(error: BaseException | None) -> bool:
    """A fault whose outcome is unknown (not a refusal on the merits): the step is retried later."""
    if isinstance(error, PspUnavailable):
        return True
    if isinstance(error, DomainError):
        return error.kind.name in ("UNAVAILABLE", "ABORTED", "INTERNAL", "DEADLINE_EXCEEDED")
    return error is not None and not isinstance(error, PspError)


def _said(error: BaseException | None) -> str:
    if isinstance(error, PspError):
        return f"{error.code}: {error.message}"
    if isinstance(error, DomainError):
        return f"{error.reason}: {error.message}"
    return f"unexpected: {type(error).__name__}"


def _results(results: list[T | BaseException]) -> list[T | Exception]:
    """``gather``'s answers with ``return_exceptions``; a BaseException that is not an Exception (the
    task cancelled, the process stopping) is raised, not treated as one call's failure."""
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, Exception):
            raise r
    return cast(list[T | Exception], results)
