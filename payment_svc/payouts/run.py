"""Preview and start a period's run: plan each seller (what would be paid, or why not), create at most
one pay-out per (seller, period), and drive the pay-outs through their steps in the background.

Planning reads the seller's available wallet balance in the payout currency, holds back the rolling
reserve (a share of the net of the seller's orders of the last ``reserve_days``), and pays the rest
when it reaches the seller's minimum for that currency. Sellers are looked at in order of their
account; a run interrupted by a crash is taken up again by the janitor (its claim lease lapses), and
planning a seller twice is harmless: the run's item and the pay-out are both inserted at most once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import (
    PayoutRow,
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
from payment_svc.psp import PspError
from svckit.errors import InvalidArgument, NotFound
from svckit.logging import get_logger

log = get_logger(__name__)


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

    async def plan(self, seller: SellerRow, period: Period) -> RunItem:
        """What the run of ``period`` pays ``seller``, or why it pays nothing (reads only)."""
        cur = seller.payout_currency

        def skip(reason: SkipReason, detail: str, available: int = 0, held: int = 0) -> RunItem:
            return RunItem(seller.seller_account, 0, cur, None, reason, detail, available, held)

        if seller.state is SellerState.BLOCKED:
            return skip(SkipReason.BLOCKED, seller.state_reason)
        if seller.state is SellerState.PAYOUTS_PAUSED:
            return skip(SkipReason.PAUSED, seller.state_reason)
        if not seller.psp_account:
            return skip(SkipReason.NO_PSP_ACCOUNT, "no PSP connected account attached")
        async with self._d.store.unit() as repo:
            existing = await repo.payout_of_period(seller.seller_account, period.name)
            since = datetime.now(UTC) - timedelta(days=seller.reserve_days)
            recent = (
                await repo.recent_net_sales(seller.seller_account, cur, since) if seller.reserve_bps else 0
            )
        if existing is not None:
            return self._already_paid(seller, period, existing)
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
        try:
            account = await self._d.psp.retrieve_account(seller.psp_account)
        except PspError as exc:
            return skip(SkipReason.PSP_UNAVAILABLE, exc.message, available, held)
        if not account.payouts_enabled:
            return skip(
                SkipReason.PAYOUTS_NOT_ENABLED,
                f"the PSP has payouts disabled on {seller.psp_account}",
                available,
                held,
            )
        detail = f"debt of {debt} netted first" if debt else ""
        return RunItem(seller.seller_account, amount, cur, None, None, detail, available, held, debt)

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
            limit = asyncio.Semaphore(s.payout_concurrency)

            async def one(seller: SellerRow) -> bool:
                async with limit:
                    try:
                        await self._pay_seller(run_id, seller, period)
                        return True
                    except Exception:
                        # One seller's fault does not stop the others; the run stays open for it.
                        log.exception(
                            "pay-out of a seller interrupted", run_id=run_id, seller=seller.seller_account
                        )
                        return False

            if not all(await asyncio.gather(*(one(seller) for seller in todo))):
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

    async def _pay_seller(self, run_id: str, seller: SellerRow, period: Period) -> None:
        item = await self.plan(seller, period)
        payout_id = None
        if item.skip_reason is None:
            async with self._d.store.unit() as repo:
                created = await repo.create_payout(
                    new_payout_id(), run_id, seller, period.name, item.amount_minor, item.debt_minor
                )
                if created is None:  # another run of the period got there first
                    other = await repo.payout_of_period(seller.seller_account, period.name)
                    item = RunItem(
                        seller.seller_account,
                        0,
                        item.currency,
                        other.payout_id if other else None,
                        SkipReason.ALREADY_PAID,
                        "paid by another run of the period",
                    )
                else:
                    payout_id = created.payout_id
                    item = RunItem(
                        item.seller_account,
                        item.amount_minor,
                        item.currency,
                        payout_id,
                        None,
                        item.detail,
                        item.available_minor,
                        item.reserve_held_minor,
                        item.debt_minor,
                    )
                await repo.add_run_item(run_id, item)
        else:
            async with self._d.store.unit() as repo:
                await repo.add_run_item(run_id, item)
        if payout_id is not None:
            await self._steps.drive(payout_id)
