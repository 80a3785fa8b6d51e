"""REST shapes of pay-outs (admin scope) and their translation to and from ``payments.v1.PayoutService``.

Amounts are decimal strings in the currency's major unit, parsed strictly against its exponent, as
everywhere in the API; the rules themselves (minimums not negative, known currencies, periods) are the
payment service's, whose refusal comes back as the problem.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.schemas import SellerAccount, _Strict, timestamp
from svckit.errors import InvalidArgument
from svckit.gen.common.v1 import money_pb2
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.money import MoneyError, format_amount, parse_amount

Currency = Annotated[str, StringConstraints(min_length=3, max_length=3)]
Schedule = Literal["monthly", "weekly", "manual"]
Period = Annotated[str, StringConstraints(min_length=1, max_length=16)]
AnchorDay = Annotated[
    int, Field(ge=1, le=31, description="Day of the month (1-31) or week (1-7) of the run.")
]
ReserveBps = Annotated[
    int, Field(ge=0, le=10_000, description="Rolling reserve, basis points of each order's net.")
]
ReserveDays = Annotated[
    int, Field(ge=0, le=366, description="Days the rolling reserve holds an order's share.")
]

_SCHEDULES = {
    "monthly": pb.PAYOUT_SCHEDULE_MONTHLY,
    "weekly": pb.PAYOUT_SCHEDULE_WEEKLY,
    "manual": pb.PAYOUT_SCHEDULE_MANUAL,
}
_STATES_IN = {"active": pb.SELLER_STATE_ACTIVE, "blocked": pb.SELLER_STATE_BLOCKED}


def _name(enum_type: Any, value: int, prefix: str) -> str:
    return str(enum_type.Name(value)).removeprefix(prefix).lower()


def _amount(m: money_pb2.Money) -> str:
    return format_amount(m.amount_minor, m.currency) if m.currency else "0"


def _minimums(values: dict[str, str]) -> list[money_pb2.Money]:
    out = []
    for currency, text in sorted(values.items()):
        try:
            minor = parse_amount(text, currency)
        except MoneyError as exc:
            raise InvalidArgument(
                exc.reason, f"minimum_payouts.{currency}: {exc}", field="minimum_payouts"
            ) from None
        out.append(money_pb2.Money(amount_minor=minor, currency=currency))
    return out


# -- in -----------------------------------------------------------------------------------------------


class SellerBody(_Strict):
    seller_account: SellerAccount = Field(description="The seller id payment orders name.")
    psp_account: str | None = Field(default=None, description="An existing PSP connected account (acct_...).")
    create_psp_account: bool = Field(
        default=False, description="Create a connected account when none is given."
    )
    email: str | None = Field(default=None, max_length=254)
    payout_currency: Currency = Field(examples=["USD"])
    schedule: Schedule = "monthly"
    anchor_day: AnchorDay = 1
    minimum_payouts: dict[Currency, str] = Field(default_factory=dict, examples=[{"USD": "10.00"}])
    reserve_bps: ReserveBps = 0
    reserve_days: ReserveDays = 0


class SellerPatch(_Strict):
    psp_account: str | None = None
    payout_currency: Currency | None = None
    schedule: Schedule | None = None
    anchor_day: AnchorDay | None = None
    minimum_payouts: dict[Currency, str] | None = None
    reserve_bps: ReserveBps | None = None
    reserve_days: ReserveDays | None = None
    state: Literal["active", "blocked", "payouts_paused"] | None = None
    state_reason: str | None = Field(default=None, max_length=500)


class PayoutRunBody(_Strict):
    period: Period = Field(examples=["2026-11"], description="A month (2026-11) or an ISO week (2026-W47).")
    dry_run: bool = False
    seller_accounts: list[SellerAccount] = Field(default_factory=list, max_length=1000)


class DebtWriteOffBody(_Strict):
    amount: str = Field(examples=["12.50"], description="How much of the debt to write off (decimal string).")
    currency: Currency = Field(examples=["USD"])
    reason: str = Field(
        min_length=1, max_length=500, description="Why (required; kept with the ledger entry)."
    )


class DebtWriteOffOut(BaseModel):
    seller_account: str
    currency: str
    written_off: str
    debt_left: str
    ledger_transaction_id: int


def write_off_request(seller_account: str, body: DebtWriteOffBody) -> pb.WriteOffSellerDebtRequest:
    try:
        minor = parse_amount(body.amount, body.currency)
    except MoneyError as exc:
        raise InvalidArgument(exc.reason, f"amount: {exc}", field="amount") from None
    return pb.WriteOffSellerDebtRequest(
        seller_account=seller_account,
        amount=money_pb2.Money(amount_minor=minor, currency=body.currency),
        reason=body.reason,
    )


def write_off_out(seller_account: str, r: pb.WriteOffSellerDebtResponse) -> DebtWriteOffOut:
    return DebtWriteOffOut(
        seller_account=seller_account,
        currency=r.written_off.currency,
        written_off=_amount(r.written_off),
        debt_left=_amount(r.debt_left),
        ledger_transaction_id=r.ledger_transaction_id,
    )


def register_request(body: SellerBody) -> pb.RegisterSellerRequest:
    return pb.RegisterSellerRequest(
        seller=pb.Seller(
            seller_account=body.seller_account,
            psp_account=body.psp_account or "",
            payout_currency=body.payout_currency,
            schedule=_SCHEDULES[body.schedule],
            anchor_day=body.anchor_day,
            minimum_payouts=_minimums(body.minimum_payouts),
            reserve_bps=body.reserve_bps,
            reserve_days=body.reserve_days,
        ),
        create_psp_account=body.create_psp_account,
        email=body.email or "",
    )


def update_request(seller_account: str, body: SellerPatch) -> pb.UpdateSellerRequest | None:
    """The UpdateSeller of a PATCH; None when it only pauses (PauseSeller does that)."""
    fields = [f for f in body.model_fields_set if f not in ("state_reason",) and getattr(body, f) is not None]
    if body.state == "payouts_paused":
        fields.remove("state")
    if not fields:
        return None
    return pb.UpdateSellerRequest(
        seller=pb.Seller(
            seller_account=seller_account,
            psp_account=body.psp_account or "",
            payout_currency=body.payout_currency or "",
            schedule=_SCHEDULES[body.schedule] if body.schedule else pb.PAYOUT_SCHEDULE_UNSPECIFIED,
            anchor_day=body.anchor_day or 0,
            minimum_payouts=_minimums(body.minimum_payouts or {}),
            reserve_bps=body.reserve_bps or 0,
            reserve_days=body.reserve_days or 0,
            state=_STATES_IN.get(body.state or "", pb.SELLER_STATE_UNSPECIFIED),
            state_reason=body.state_reason or "",
        ),
        update_fields=sorted(fields),
    )


# -- out ----------------------------------------------------------------------------------------------


class SellerOut(BaseModel):
    seller_account: str
    psp_account: str | None
    payout_currency: str
    schedule: str
    anchor_day: int
    minimum_payouts: dict[str, str]
    reserve_bps: int
    reserve_days: int
    state: str = Field(examples=["active"], description="active, payouts_paused or blocked")
    state_reason: str | None
    created_at: str | None
    updated_at: str | None


class RunItemOut(BaseModel):
    seller_account: str
    amount: str
    currency: str
    skip_reason: str | None = Field(
        description="below_minimum, paused, blocked, reserve, no_psp_account, ..."
    )
    payout_id: str | None
    detail: str | None
    available: str
    reserve_held: str


class PayoutRunOut(BaseModel):
    run_id: str | None
    period: str
    dry_run: bool
    state: str = Field(examples=["running"])
    sellers_total: int
    sellers_done: int
    payouts_created: int
    sellers_skipped: int
    items: list[RunItemOut]
    created_at: str | None
    finished_at: str | None


class PayoutRunListOut(BaseModel):
    runs: list[PayoutRunOut] = Field(description="Newest first, without items (GET the run for them).")
    next_page_token: str | None


class PayoutOut(BaseModel):
    payout_id: str
    run_id: str
    seller_account: str
    period: str
    amount: str
    currency: str
    state: str = Field(examples=["in_transit"])
    psp_account: str
    psp_transfer_id: str | None
    psp_payout_id: str | None
    failure_code: str | None
    failure_message: str | None
    last_error: str | None
    created_at: str | None
    updated_at: str | None


class PayoutTransitionOut(BaseModel):
    from_state: str | None = Field(alias="from")
    to_state: str = Field(alias="to")
    cause: str
    detail: str | None
    time: str | None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class PayoutDetailOut(PayoutOut):
    history: list[PayoutTransitionOut]


class SellerListOut(BaseModel):
    sellers: list[SellerOut] = Field(description="Ordered by seller account.")
    next_page_token: str | None


SELLER_STATES = {
    "active": pb.SELLER_STATE_ACTIVE,
    "payouts_paused": pb.SELLER_STATE_PAYOUTS_PAUSED,
    "blocked": pb.SELLER_STATE_BLOCKED,
}


class PayoutListOut(BaseModel):
    payouts: list[PayoutOut]
    next_page_token: str | None


class StatementLineOut(BaseModel):
    kind: str
    reference: str
    amount: str
    gross: str | None
    commission: str | None
    psp_transfer_id: str | None
    psp_payout_id: str | None
    time: str | None


class StatementOut(BaseModel):
    seller_account: str
    period: str
    currency: str
    opening_balance: str
    orders_gross: str
    commission: str
    refunds: str
    payouts: str
    adjustments: str
    debts_netted: str
    closing_balance: str
    reserve_held: str
    lines: list[StatementLineOut]


def seller_out(s: pb.Seller) -> SellerOut:
    return SellerOut(
        seller_account=s.seller_account,
        psp_account=s.psp_account or None,
        payout_currency=s.payout_currency,
        schedule=_name(pb.PayoutSchedule, s.schedule, "PAYOUT_SCHEDULE_"),
        anchor_day=s.anchor_day,
        minimum_payouts={m.currency: _amount(m) for m in s.minimum_payouts},
        reserve_bps=s.reserve_bps,
        reserve_days=s.reserve_days,
        state=_name(pb.SellerState, s.state, "SELLER_STATE_"),
        state_reason=s.state_reason or None,
        created_at=timestamp(s.create_time),
        updated_at=timestamp(s.update_time),
    )


def run_out(r: pb.PayoutRun) -> PayoutRunOut:
    return PayoutRunOut(
        run_id=r.run_id or None,
        period=r.period,
        dry_run=r.dry_run,
        state=_name(pb.PayoutRunState, r.state, "PAYOUT_RUN_STATE_"),
        sellers_total=r.sellers_total,
        sellers_done=r.sellers_done,
        payouts_created=r.payouts_created,
        sellers_skipped=r.sellers_skipped,
        items=[
            RunItemOut(
                seller_account=i.seller_account,
                amount=_amount(i.amount),
                currency=i.amount.currency,
                skip_reason=_name(pb.SkipReason, i.skip_reason, "SKIP_REASON_") if i.skip_reason else None,
                payout_id=i.payout_id or None,
                detail=i.detail or None,
                available=_amount(i.available),
                reserve_held=_amount(i.reserve_held),
            )
            for i in r.items
        ],
        created_at=timestamp(r.create_time),
        finished_at=timestamp(r.finish_time),
    )


def _payout_fields(p: pb.Payout) -> dict[str, Any]:
    return {
        "payout_id": p.payout_id,
        "run_id": p.run_id,
        "seller_account": p.seller_account,
        "period": p.period,
        "amount": _amount(p.amount),
        "currency": p.amount.currency,
        "state": _name(pb.PayoutState, p.state, "PAYOUT_STATE_"),
        "psp_account": p.psp_account,
        "psp_transfer_id": p.psp_transfer_id or None,
        "psp_payout_id": p.psp_payout_id or None,
        "failure_code": p.failure_code or None,
        "failure_message": p.failure_message or None,
        "last_error": p.last_error or None,
        "created_at": timestamp(p.create_time),
        "updated_at": timestamp(p.update_time),
    }


def payout_out(p: pb.Payout) -> PayoutOut:
    return PayoutOut(**_payout_fields(p))


def payout_detail_out(reply: pb.GetPayoutResponse) -> PayoutDetailOut:
    return PayoutDetailOut(
        **_payout_fields(reply.payout),
        history=[
            PayoutTransitionOut(
                from_state=_name(pb.PayoutState, t.from_state, "PAYOUT_STATE_") if t.from_state else None,
                to_state=_name(pb.PayoutState, t.to_state, "PAYOUT_STATE_"),
                cause=t.cause,
                detail=t.detail or None,
                time=timestamp(t.create_time),
            )
            for t in reply.history
        ],
    )


def payout_state(text: str) -> int:
    try:
        return int(pb.PayoutState.Value(f"PAYOUT_STATE_{text.upper()}"))
    except ValueError:
        names = ", ".join(_name(pb.PayoutState, v, "PAYOUT_STATE_") for v in pb.PayoutState.values() if v)
        raise InvalidArgument("INVALID_REQUEST", f"state must be one of {names}", field="state") from None


def statement_out(s: pb.GetStatementResponse) -> StatementOut:
    return StatementOut(
        seller_account=s.seller_account,
        period=s.period,
        currency=s.closing_balance.currency,
        opening_balance=_amount(s.opening_balance),
        orders_gross=_amount(s.orders_gross),
        commission=_amount(s.commission),
        refunds=_amount(s.refunds),
        payouts=_amount(s.payouts),
        adjustments=_amount(s.adjustments),
        debts_netted=_amount(s.debts_netted),
        closing_balance=_amount(s.closing_balance),
        reserve_held=_amount(s.reserve_held),
        lines=[
            StatementLineOut(
                kind=line.kind,
                reference=line.reference,
                amount=_amount(line.amount),
                gross=_amount(line.gross) if line.gross.amount_minor else None,
                commission=_amount(line.commission) if line.commission.amount_minor else None,
                psp_transfer_id=line.psp_transfer_id or None,
                psp_payout_id=line.psp_payout_id or None,
                time=timestamp(line.post_time),
            )
            for line in s.lines
        ],
    )


def statement_csv(s: StatementOut) -> str:
    """One row per line between an opening and a closing row: what a seller's spreadsheet wants."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "time",
            "kind",
            "reference",
            "amount",
            "gross",
            "commission",
            "currency",
            "psp_transfer_id",
            "psp_payout_id",
        ]
    )
    writer.writerow(["", "opening_balance", s.period, s.opening_balance, "", "", s.currency, "", ""])
    for line in s.lines:
        writer.writerow(
            [
                line.time or "",
                line.kind,
                line.reference,
                line.amount,
                line.gross or "",
                line.commission or "",
                s.currency,
                line.psp_transfer_id or "",
                line.psp_payout_id or "",
            ]
        )
    writer.writerow(["", "closing_balance", s.period, s.closing_balance, "", "", s.currency, "", ""])
    return out.getvalue()
