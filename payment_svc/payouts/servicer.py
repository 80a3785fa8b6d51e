"""gRPC transport of payments.v1.PayoutService: translate messages, hold idempotency keys, call the use
cases. No rule lives here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TypeVar, cast

import grpc
from google.protobuf.message import Message

from payment_svc.payouts.domain import (
    PayoutRow,
    PayoutState,
    RunItem,
    RunRow,
    Schedule,
    SellerRow,
    SellerSettings,
    SellerState,
    SkipReason,
)
from payment_svc.payouts.service import Payouts
from payment_svc.payouts.statements import Statement
from svckit.context import REPLAYED_METADATA, idempotency_key_var
from svckit.errors import InvalidArgument
from svckit.gen.common.v1 import money_pb2
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.payments.v1 import payout_service_pb2_grpc as pb_grpc
from svckit.idempotency import IdempotencyStore
from svckit.pagination import decode_token, encode_token, page_size
from svckit.protobuf import timestamp

R = TypeVar("R", bound=Message)

_SCHEDULE = {
    s: cast(pb.PayoutSchedule, pb.PayoutSchedule.Value(f"PAYOUT_SCHEDULE_{s.value}")) for s in Schedule
}
_SCHEDULE_IN = {v: k for k, v in _SCHEDULE.items()}
_SELLER_STATE = {
    s: cast(pb.SellerState, pb.SellerState.Value(f"SELLER_STATE_{s.value}")) for s in SellerState
}
_SELLER_STATE_IN = {v: k for k, v in _SELLER_STATE.items()}
_PAYOUT_STATE = {
    s: cast(pb.PayoutState, pb.PayoutState.Value(f"PAYOUT_STATE_{s.value}")) for s in PayoutState
}
_PAYOUT_STATE_IN = {v: k for k, v in _PAYOUT_STATE.items()}
_SKIP = {s: cast(pb.SkipReason, pb.SkipReason.Value(f"SKIP_REASON_{s.value}")) for s in SkipReason}


def _money(amount: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount, currency=currency)


def seller_to_pb(s: SellerRow) -> pb.Seller:
    return pb.Seller(
        seller_account=s.seller_account,
        psp_account=s.psp_account or "",
        payout_currency=s.payout_currency,
        schedule=_SCHEDULE[s.schedule],
        anchor_day=s.anchor_day,
        minimum_payouts=[_money(v, k) for k, v in sorted(s.minimums.items())],
        reserve_bps=s.reserve_bps,
        reserve_days=s.reserve_days,
        state=_SELLER_STATE[s.state],
        state_reason=s.state_reason,
        create_time=timestamp(s.created_at),
        update_time=timestamp(s.updated_at),
    )


def settings_from_pb(s: pb.Seller, require_schedule: bool) -> SellerSettings:
    if s.schedule == pb.PAYOUT_SCHEDULE_UNSPECIFIED and require_schedule:
        schedule = Schedule.MONTHLY  # the default schedule
    else:
        schedule = _SCHEDULE_IN.get(s.schedule, Schedule.MONTHLY)
    minimums: dict[str, int] = {}
    for m in s.minimum_payouts:
        if m.currency in minimums:
            raise InvalidArgument(
                "DUPLICATE_MINIMUM", f"minimum_payouts names {m.currency} twice", field="minimum_payouts"
            )
        minimums[m.currency] = m.amount_minor
    return SellerSettings(
        seller_account=s.seller_account,
        psp_account=s.psp_account or None,
        payout_currency=s.payout_currency,
        schedule=schedule,
        anchor_day=s.anchor_day or 1,
        minimums=minimums,
        reserve_bps=s.reserve_bps,
        reserve_days=s.reserve_days,
    )


def payout_to_pb(p: PayoutRow) -> pb.Payout:
    return pb.Payout(
        payout_id=p.payout_id,
        run_id=p.run_id,
        seller_account=p.seller_account,
        period=p.period,
        amount=_money(p.amount_minor, p.currency),
        state=_PAYOUT_STATE[p.state],
        psp_account=p.psp_account,
        psp_transfer_id=p.psp_transfer_id or "",
        psp_payout_id=p.psp_payout_id or "",
        failure_code=p.failure_code or "",
        failure_message=p.failure_message or "",
        reservation_id=p.reservation_id or "",
        last_error=p.last_error or "",
        create_time=timestamp(p.created_at),
        update_time=timestamp(p.updated_at),
    )


def _item_to_pb(i: RunItem) -> pb.PayoutRunItem:
    return pb.PayoutRunItem(
        seller_account=i.seller_account,
        amount=_money(i.amount_minor, i.currency),
        skip_reason=_SKIP[i.skip_reason] if i.skip_reason else pb.SKIP_REASON_UNSPECIFIED,
        payout_id=i.payout_id or "",
        detail=i.detail,
        available=_money(i.available_minor, i.currency),
        reserve_held=_money(i.reserve_held_minor, i.currency),
    )


def run_to_pb(r: RunRow) -> pb.PayoutRun:
    return pb.PayoutRun(
        run_id=r.run_id,
        period=r.period,
        dry_run=r.dry_run,
        state=pb.PAYOUT_RUN_STATE_COMPLETED if r.state == "COMPLETED" else pb.PAYOUT_RUN_STATE_RUNNING,
        sellers_total=r.sellers_total,
        sellers_done=r.sellers_done,
        payouts_created=r.payouts_created,
        sellers_skipped=r.sellers_skipped,
        items=[_item_to_pb(i) for i in r.items],
        create_time=timestamp(r.created_at),
        finish_time=timestamp(r.finished_at),
    )


def statement_to_pb(s: Statement) -> pb.GetStatementResponse:
    cur = s.currency
    return pb.GetStatementResponse(
        seller_account=s.seller_account,
        period=s.period,
        opening_balance=_money(s.opening_minor, cur),
        orders_gross=_money(s.orders_gross, cur),
        commission=_money(s.commission, cur),
        refunds=_money(s.total("refund", "order_reversal"), cur),
        payouts=_money(s.total("payout", "payout_reversal"), cur),
        adjustments=_money(s.total("adjustment"), cur),
        debts_netted=_money(s.total("debt_netted"), cur),
        closing_balance=_money(s.closing_minor, cur),
        reserve_held=_money(s.reserve_held_minor, cur),
        lines=[
            pb.StatementLine(
                kind=line.kind,
                reference=line.reference,
                amount=_money(line.amount_minor, cur),
                gross=_money(line.gross_minor, cur),
                commission=_money(line.commission_minor, cur),
                psp_transfer_id=line.psp_transfer_id,
                psp_payout_id=line.psp_payout_id,
                post_time=timestamp(line.post_time),
            )
            for line in s.lines
        ],
    )


class PayoutServicer(pb_grpc.PayoutServiceServicer):
    def __init__(self, payouts: Payouts, idempotency: IdempotencyStore) -> None:
        self._p = payouts
        self._idempotency = idempotency

    async def _once(
        self,
        context: grpc.aio.ServicerContext,
        scope: str,
        request: Message,
        response_type: type[R],
        operate: Callable[[], Awaitable[R]],
    ) -> R:
        """Run a mutation once per idempotency key; replay its stored answer after."""
        async with self._idempotency.claim(scope, idempotency_key_var.get(), request) as claim:
            replay = claim.replay(response_type)
            if replay is not None:
                await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
                return replay
            return await claim.finish(await operate())

    async def RegisterSeller(self, request: pb.RegisterSellerRequest, context: grpc.aio.ServicerContext):
        async def operate() -> pb.RegisterSellerResponse:
            row = await self._p.registry.register(
                settings_from_pb(request.seller, True), request.create_psp_account, request.email
            )
            return pb.RegisterSellerResponse(seller=seller_to_pb(row))

        return await self._once(
            context, "payouts.RegisterSeller", request, pb.RegisterSellerResponse, operate
        )

    async def UpdateSeller(self, request: pb.UpdateSellerRequest, context: grpc.aio.ServicerContext):
        async def operate() -> pb.UpdateSellerResponse:
            state = _SELLER_STATE_IN.get(request.seller.state)
            row = await self._p.registry.update(
                request.seller.seller_account,
                settings_from_pb(request.seller, False),
                list(request.update_fields),
                state,
                request.seller.state_reason,
            )
            return pb.UpdateSellerResponse(seller=seller_to_pb(row))

        return await self._once(context, "payouts.UpdateSeller", request, pb.UpdateSellerResponse, operate)

    async def WriteOffSellerDebt(
        self, request: pb.WriteOffSellerDebtRequest, context: grpc.aio.ServicerContext
    ):
        async def operate() -> pb.WriteOffSellerDebtResponse:
            done = await self._p.debts.write_off(
                request.seller_account,
                request.amount.amount_minor,
                request.amount.currency,
                request.reason,
                idempotency_key_var.get() or "",
            )
            return pb.WriteOffSellerDebtResponse(
                written_off=_money(done.amount_minor, done.currency),
                debt_left=_money(done.debt_left_minor, done.currency),
                ledger_transaction_id=done.transaction_id,
            )

        return await self._once(
            context, "payouts.WriteOffSellerDebt", request, pb.WriteOffSellerDebtResponse, operate
        )

    async def GetSeller(self, request: pb.GetSellerRequest, context: grpc.aio.ServicerContext):
        return pb.GetSellerResponse(seller=seller_to_pb(await self._p.registry.get(request.seller_account)))

    async def ListSellers(self, request: pb.ListSellersRequest, context: grpc.aio.ServicerContext):
        rows, token = await self._p.registry.list(
            request.page_size,
            request.page_token,
            request.seller_account_prefix,
            _SELLER_STATE_IN.get(request.state),
        )
        return pb.ListSellersResponse(sellers=[seller_to_pb(r) for r in rows], next_page_token=token)

    async def PauseSeller(self, request: pb.PauseSellerRequest, context: grpc.aio.ServicerContext):
        async def operate() -> pb.PauseSellerResponse:
            row = await self._p.registry.pause(request.seller_account, request.reason)
            return pb.PauseSellerResponse(seller=seller_to_pb(row))

        return await self._once(context, "payouts.PauseSeller", request, pb.PauseSellerResponse, operate)

    async def ResumeSeller(self, request: pb.ResumeSellerRequest, context: grpc.aio.ServicerContext):
        async def operate() -> pb.ResumeSellerResponse:
            row = await self._p.registry.resume(request.seller_account)
            return pb.ResumeSellerResponse(seller=seller_to_pb(row))

        return await self._once(context, "payouts.ResumeSeller", request, pb.ResumeSellerResponse, operate)

    async def PreviewPayoutRun(self, request: pb.PreviewPayoutRunRequest, context: grpc.aio.ServicerContext):
        run = await self._p.runs.preview(request.period, list(request.seller_accounts))
        return pb.PreviewPayoutRunResponse(run=run_to_pb(run))

    async def StartPayoutRun(self, request: pb.StartPayoutRunRequest, context: grpc.aio.ServicerContext):
        async def operate() -> pb.StartPayoutRunResponse:
            run = await self._p.runs.start(request.period, request.dry_run, list(request.seller_accounts))
            return pb.StartPayoutRunResponse(run=run_to_pb(run))

        return await self._once(
            context, "payouts.StartPayoutRun", request, pb.StartPayoutRunResponse, operate
        )

    async def GetPayoutRun(self, request: pb.GetPayoutRunRequest, context: grpc.aio.ServicerContext):
        return pb.GetPayoutRunResponse(run=run_to_pb(await self._p.runs.get(request.run_id)))

    async def ListPayoutRuns(self, request: pb.ListPayoutRunsRequest, context: grpc.aio.ServicerContext):
        size = page_size(request.page_size, default=100, maximum=1000)
        if len(request.period) > 16:
            raise InvalidArgument("INVALID_PERIOD", "period: at most 16 characters", field="period")
        listing = ["payout_runs", request.period]
        before = decode_token(request.page_token, listing, list)
        async with self._p.deps.store.unit() as repo:
            rows = await repo.list_runs(request.period, (before[0], before[1]) if before else None, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        token = encode_token(listing, [rows[-1].created_at.isoformat(), rows[-1].run_id]) if more else ""
        return pb.ListPayoutRunsResponse(runs=[run_to_pb(r) for r in rows], next_page_token=token)

    async def ListPayouts(self, request: pb.ListPayoutsRequest, context: grpc.aio.ServicerContext):
        size = page_size(request.page_size, default=100, maximum=1000)
        state = _PAYOUT_STATE_IN.get(request.state)
        created_from = (
            request.create_time_from.ToDatetime(UTC) if request.HasField("create_time_from") else None
        )
        created_before = (
            request.create_time_before.ToDatetime(UTC) if request.HasField("create_time_before") else None
        )
        listing = ["payouts", request.seller_account, request.period, state.value if state else ""]
        if created_from or created_before:  # older tokens (no window) stay valid for listings without one
            listing += [str(created_from or ""), str(created_before or "")]
        before = decode_token(request.page_token, listing, list)
        async with self._p.deps.store.unit() as repo:
            rows = await repo.list_payouts(
                request.seller_account,
                request.period,
                state.value if state else "",
                (before[0], before[1]) if before else None,
                size + 1,
                created_from=created_from,
                created_before=created_before,
            )
        more = len(rows) > size
        rows = rows[:size]
        token = encode_token(listing, [rows[-1].created_at.isoformat(), rows[-1].payout_id]) if more else ""
        return pb.ListPayoutsResponse(payouts=[payout_to_pb(p) for p in rows], next_page_token=token)

    async def GetPayout(self, request: pb.GetPayoutRequest, context: grpc.aio.ServicerContext):
        payout, history = await self._p.get_payout(request.payout_id)
        return pb.GetPayoutResponse(
            payout=payout_to_pb(payout),
            history=[
                pb.PayoutTransition(
                    from_state=_PAYOUT_STATE[t.from_state] if t.from_state else pb.PAYOUT_STATE_UNSPECIFIED,
                    to_state=_PAYOUT_STATE[t.to_state],
                    cause=t.cause,
                    detail=t.detail,
                    create_time=timestamp(t.created_at),
                )
                for t in history
            ],
        )

    async def GetStatement(self, request: pb.GetStatementRequest, context: grpc.aio.ServicerContext):
        statement = await self._p.statements.statement(
            request.seller_account, request.period, request.currency
        )
        return statement_to_pb(statement)
