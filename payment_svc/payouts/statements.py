"""A seller's statement of a period, read from the ledger: the seller's payable account's balance at the
period's start (opening) and end (closing), and every entry in between as a line, named by the
transaction it belongs to (an order, a refund, a pay-out or its reversal, or an adjustment). The lines
add up to the difference by construction, and the totals are checked against the ledger's closing
balance before the statement is returned, so a statement that does not agree with the books is never
shown."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import check_currency, parse_period, reserve_held
from payment_svc.payouts.registry import SellerRegistry
from svckit.errors import Internal
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb


@dataclass(frozen=True)
class Line:
    kind: str  # order, order_reversal, refund, payout, payout_reversal, debt_netted, adjustment
    reference: str
    amount_minor: int  # signed: what the seller is owed more (+) or less (-)
    post_time: datetime
    gross_minor: int = 0
    commission_minor: int = 0
    psp_transfer_id: str = ""
    psp_payout_id: str = ""


@dataclass(frozen=True)
class Statement:
    seller_account: str
    period: str
    currency: str
    opening_minor: int
    closing_minor: int
    reserve_held_minor: int
    lines: list[Line] = field(default_factory=list)

    def total(self, *kinds: str) -> int:
        return sum(line.amount_minor for line in self.lines if line.kind in kinds)

    @property
    def orders_gross(self) -> int:
        return sum(line.gross_minor for line in self.lines if line.kind == "order")

    @property
    def commission(self) -> int:
        return sum(line.commission_minor for line in self.lines if line.kind == "order")


def _ts(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


class Statements:
    def __init__(self, deps: PayoutDeps, registry: SellerRegistry) -> None:
        self._d = deps
        self._registry = registry

    async def statement(self, seller_account: str, period_name: str, currency: str = "") -> Statement:
        seller = await self._registry.get(seller_account)
        period = parse_period(period_name, ended=False)
        cur = check_currency(currency, "currency") if currency else seller.payout_currency
        books = self._d.books
        last_before = period.start - timedelta(microseconds=1)
        last_in = period.end - timedelta(microseconds=1)
        opening = await books.payable(seller_account, cur, _ts(last_before))
        closing = await books.payable(seller_account, cur, _ts(last_in))
        entries = [
            e
            for e in await books.entries(seller_account, cur)
            if period.start <= e.post_time.ToDatetime().replace(tzinfo=period.start.tzinfo) < period.end
        ]
        txs = {e.transaction_id: await books.transaction(e.transaction_id) for e in entries}
        refs = {tx.external_ref for tx in txs.values()}
        async with self._d.store.unit() as repo:
            orders = await repo.orders_by_ids(sorted(refs))
            payouts = await repo.payouts_by_ids(sorted(refs))
            since = period.end - timedelta(days=seller.reserve_days)
            recent = await repo.recent_net_sales(seller_account, cur, since, period.end)
        lines = [self._line(e, txs[e.transaction_id], orders, payouts) for e in entries]
        statement = Statement(
            seller_account,
            period.name,
            cur,
            opening,
            closing,
            min(max(closing, 0), reserve_held(recent, seller.reserve_bps)),
            lines,
        )
        if opening + statement.total(*{line.kind for line in lines}) != closing:
            raise Internal(
                "STATEMENT_DOES_NOT_ADD_UP",
                f"the statement of {seller_account} for {period.name} does not add up to the ledger's balance",
            )
        return statement

    @staticmethod
    def _line(entry: lpb.AccountEntry, tx: lpb.Transaction, orders: dict, payouts: dict) -> Line:
        credit = entry.direction == lpb.DIRECTION_CREDIT
        amount = entry.amount_minor if credit else -entry.amount_minor
        ref = tx.external_ref
        kind_meta = tx.metadata.get("kind", "")
        at = entry.post_time.ToDatetime()
        if ref in payouts:
            p = payouts[ref]
            if kind_meta == "debt_netted":  # the seller's debt taken off the balance before paying
                return Line("debt_netted", ref, amount, at)
            kind = "payout" if kind_meta == "payout" else "payout_reversal"
            return Line(
                kind,
                ref,
                amount,
                at,
                psp_transfer_id=p.psp_transfer_id or "",
                psp_payout_id=p.psp_payout_id or "",
            )
        if ref in orders:
            order = orders[ref]
            if credit:
                return Line("order", ref, amount, at, order.amount_minor, order.commission_minor)
            return Line("order_reversal", ref, amount, at)
        if not credit and tx.metadata.get("source") == "payment_svc":
            return Line("refund", ref, amount, at)
        return Line("adjustment", ref, amount, at)
