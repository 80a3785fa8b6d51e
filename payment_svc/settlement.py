"""Settlement of pay-in money into the seller's wallet and the ledger, through the event backbone.

``OutboxSettlement`` writes an event in the same transaction as the order's SUCCESS (or a refund's
success). ``SettlementHandler`` consumes them: each event moves two halves, a ledger posting and a
wallet movement, in two services, each idempotent on a key derived from the order or refund id and
its settlement attempt. The half that can refuse goes first: for an order the ledger posting, then
the wallet credit; for a refund the wallet debit, then the ledger posting. A refund's debit takes
what the wallet holds and never refuses for want of money: the part it falls short by (the seller was
paid out already) is the seller's debt, which the posting debits to ``asset:seller_receivable``. When the second half is refused, the first is undone under a derived key
(a ledger reversal, or the opposite wallet movement) and the attempt number moves on, so a replay of
the dead letter applies both halves again exactly once. A failure is retried by the backbone
(transient: the same keys, whose outcome may be unknown) or dead-lettered for an operator (terminal).
The order's ``ledger_updated`` / ``wallet_updated`` say which halves are applied at every step.

The postings themselves are :mod:`payment_svc.books`; the ledger and wallet are reached through its
ports (gRPC adapters in :mod:`payment_svc.books_grpc`), and the database through the unit of work.

One module past the usual size: the producer and the consumer of the settlement events are one
protocol (attempts, the undo of a half-applied attempt, waiting for an order's credit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc.books import (
    Ledger,
    LedgerTransaction,
    Posting,
    ReferenceKind,
    Refusal,
    WalletMovement,
    Wallets,
    commission_share,
    order_postings,
    refund_postings,
)
from payment_svc.rows import OrderRow, RefundRow, SettlementState
from payment_svc.uow import PgUnitsOfWork, UnitOfWork, UnitsOfWork
from svckit.errors import Aborted, DomainError, FailedPrecondition, Internal, Unavailable
from svckit.events import Event, TerminalError, TransientError, Waiting, outbox
from svckit.logging import get_logger
from svckit.money import is_known_currency

log = get_logger(__name__)

ORDER_SUCCEEDED = "payment.order.succeeded"
REFUND_SUCCEEDED = "payment.refund.succeeded"


def _order_payload(order: OrderRow, commission_minor: int) -> dict[str, Any]:
    # Only what never changes after creation, plus the commission fixed at SUCCESS.
    return {
        "payment_order_id": order.payment_order_id,
        "checkout_id": order.checkout_id,
        "seller_account": order.seller_account,
        "amount_minor": order.amount_minor,
        "commission_minor": commission_minor,
        "currency": order.currency,
    }


class OutboxSettlement:
    """The payment service's SettlementSink: events into the outbox of the caller's unit of work."""

    def __init__(self, stream: str) -> None:
        self.stream = stream

    def order_succeeded_event(self, order: OrderRow, commission_minor: int) -> outbox.EmbeddedEvent:
        return outbox.embed(
            stream=self.stream,
            aggregate_id=order.payment_order_id,
            type=ORDER_SUCCEEDED,
            payload=_order_payload(order, commission_minor),
        )

    async def order_succeeded(self, uow: UnitOfWork, order: OrderRow, commission_minor: int) -> None:
        await uow.add_event(
            stream=self.stream,
            aggregate_id=order.payment_order_id,
            type=ORDER_SUCCEEDED,
            payload=_order_payload(order, commission_minor),
        )

    async def refund_succeeded(self, uow: UnitOfWork, order: OrderRow, refund: RefundRow) -> None:
        before = order.refunded_minor - refund.amount_minor
        given_back = commission_share(order.commission_minor, order.amount_minor, order.refunded_minor) - (
            commission_share(order.commission_minor, order.amount_minor, before)
        )
        await uow.add_event(
            stream=self.stream,
            aggregate_id=order.payment_order_id,
            type=REFUND_SUCCEEDED,
            payload={
                "refund_id": refund.refund_id,
                "payment_order_id": order.payment_order_id,
                "seller_account": order.seller_account,
                "amount_minor": refund.amount_minor,
                "commission_minor": given_back,
                "currency": refund.currency,
            },
        )


LEDGER, WALLET = "ledger", "wallet"


@dataclass(frozen=True)
class _Movement:
    """What one settlement event does to the wallet and the ledger."""

    kind: str
    """"order" (a pay-in: credit) or "refund" (a debit): the payments table that keeps its attempts."""
    id: str
    """The order's or the refund's id."""
    order_id: str
    wallet: WalletMovement
    ledger: LedgerTransaction
    debt_ledger: Callable[[int], LedgerTransaction] | None = None
    """A refund's posting when the wallet fell short by the given amount (the seller's debt)."""

    def ledger_for(self, shortfall: int) -> LedgerTransaction:
        if shortfall and self.debt_ledger is not None:
            return self.debt_ledger(shortfall)
        return self.ledger

    @property
    def debit(self) -> bool:
        return self.kind == "refund"

    @property
    def halves(self) -> tuple[str, ...]:
        """The halves in the order they are applied: the one that can refuse first."""
        wallet = (WALLET,) if self.wallet.amount_minor else ()  # an order whose whole amount is commission
        return (*wallet, LEDGER) if self.debit else (LEDGER, *wallet)

    def key(self, attempt: int) -> str:
        base = f"settle:{self.kind}:{self.id}"
        return base if attempt == 0 else f"{base}:attempt-{attempt}"


def _movement(event: Event) -> _Movement | None:
    """The event's movement, validated whole before either half is applied (TerminalError if not)."""
    if event.type not in (ORDER_SUCCEEDED, REFUND_SUCCEEDED):
        return None  # the stream carries other events too, for other consumer groups
    p = event.payload
    try:
        order_id, seller, currency = p["payment_order_id"], p["seller_account"], p["currency"]
        amount, commission = p["amount_minor"], p["commission_minor"]
        ref = p["refund_id"] if event.type == REFUND_SUCCEEDED else order_id
    except KeyError as exc:
        raise TerminalError(f"settlement event {event.event_id} lacks {exc}") from None
    if not (isinstance(currency, str) and is_known_currency(currency)):
        raise TerminalError(f"settlement event {event.event_id}: unknown currency {currency!r}")
    amounts_ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (amount, commission))
    if not (amounts_ok and amount > 0 and 0 <= commission <= amount):
        raise TerminalError(
            f"settlement event {event.event_id}: amount {amount!r} and commission {commission!r}"
            " must be integers with 0 <= commission <= amount > 0"
        )
    try:
        if event.type == ORDER_SUCCEEDED:
            kind, postings = "order", order_postings(seller, amount, commission, currency)
            reference = ReferenceKind.PAYMENT_ORDER
            description = f"pay-in {ref} of checkout {p.get('checkout_id', '')}"
        else:
            kind, postings = "refund", refund_postings(seller, amount, commission, currency)
            reference = ReferenceKind.REFUND
            description = f"refund {ref} of {order_id}"
    except DomainError as err:  # a seller id the chart of accounts cannot name
        raise TerminalError(f"settlement event {event.event_id}: {err.reason}: {err}") from None

    def transaction(postings: list[Posting], debt: int = 0) -> LedgerTransaction:
        metadata = {"source": "payment_svc", "reference": ref}
        if debt:
            metadata["seller_debt_minor"] = str(debt)
        return LedgerTransaction(
            postings=tuple(postings), description=description, external_ref=ref, metadata=metadata
        )

    def with_debt(shortfall: int) -> LedgerTransaction:
        return transaction(refund_postings(seller, amount, commission, currency, shortfall), shortfall)

    return _Movement(
        kind=kind,
        id=ref,
        order_id=order_id,
        wallet=WalletMovement(seller, amount - commission, currency, kind == "refund", reference, ref),
        ledger=transaction(postings),
        debt_ledger=with_debt if kind == "refund" else None,
    )


class _BatchFallback(Exception):
    """The batch needs the one-by-one path (an undo is owed); the consumer then applies each alone."""


class SettlementHandler:
    """Consumer batch handler (group ``settlement``): wallet and ledger for a batch of settlement events.

    Every remote effect carries the event's own key (``settle:order:<id>``, ``settle:refund:<id>``,
    with ``:attempt-<n>`` after a refused attempt), the same whether it travels alone or in a batch,
    so a batch that fails half-way and is then applied event by event replays what was done and does
    the rest. Only the one-by-one path undoes: a batch with a refusal fails whole, and its events are
    then applied alone, where the refused one is compensated and dead-lettered.

    Both order flags are set with the consumer's transaction once both halves are applied. Attempt
    numbers, pending undos and the flag of a half left standing (a retry of the other is due) are
    written in units of work of their own, because the consumer's transaction rolls back when the
    event fails; the happy path writes nothing more than the flags."""

    def __init__(self, wallets: Wallets, ledger: Ledger, uows: UnitsOfWork) -> None:
        self._wallets = wallets
        self._ledger = ledger
        self._uows = uows

    async def __call__(self, conn: AsyncConnection, events: list[Event]) -> None:
        """The consumer's entry point: ``conn`` is its transaction, which the flags join."""
        await self.settle(PgUnitsOfWork.joined(conn), events)

    async def settle(self, uow: UnitOfWork, events: list[Event]) -> None:
        movements = [m for m in map(_movement, events) if m is not None]
        if not movements:
            return
        await self._orders_settled_first(uow, movements)
        states = await self._states(uow, movements)
        try:
            if len(movements) == 1:
                (m,) = movements
                await self._settle_alone(m, *states.get((m.kind, m.id), (0, None)))
            else:
                await self._settle_batch(movements, states)
        except DomainError as err:  # a call the other service answered with an error
            raise _classified(err) from None
        orders = [m.id for m in movements if m.kind == "order"]
        if orders:
            await uow.repo.mark_settled(orders)

    @staticmethod
    async def _orders_settled_first(uow: UnitOfWork, movements: list[_Movement]) -> None:
        """A refund is debited only after its order's credit has landed: when the credit failed
        transiently it waits in the retry channel while the refund's event may come next, and the
        debit would then be refused (an empty wallet) and dead-lettered for good. An order settled in
        this same batch counts as landing with it."""
        in_batch = {m.order_id for m in movements if m.kind == "order"}
        waiting_for = {m.order_id for m in movements if m.kind == "refund"} - in_batch
        if not waiting_for:
            return
        unsettled = [
            o.payment_order_id
            for o in await uow.repo.orders_by_ids(waiting_for)
            if not (o.wallet_updated and o.ledger_updated)
        ]
        if unsettled:
            # Waiting spends none of the refund's attempts, so it outlasts its order's own retries
            # (chaos seed 4: it was dead-lettered just before its order's credit landed).
            raise Waiting(f"orders {unsettled} not settled yet; their refunds wait for them")

    @staticmethod
    async def _states(uow: UnitOfWork, movements: list[_Movement]) -> dict[tuple[str, str], SettlementState]:
        states: dict[tuple[str, str], SettlementState] = {}
        for kind in ("order", "refund"):
            ids = [m.id for m in movements if m.kind == kind]
            if ids:
                found = await uow.repo.settlement_states(kind, ids)
                states.update({(kind, i): state for i, state in found.items()})
        return states

    async def _save(self, m: _Movement, **values: Any) -> None:
        if m.kind != "order":  # refunds carry no flags
            values = {k: v for k, v in values.items() if not k.endswith("_updated")}
        if values:
            async with self._uows.transaction() as uow:
                await uow.repo.update_settlement(m.kind, m.id, **values)

    # -- one event ---------------------------------------------------------------------------

    async def _settle_alone(self, m: _Movement, attempt: int, undo: int | None) -> None:
        if undo is not None:  # an earlier attempt's first half is still applied: undo it first
            await self._undo(m, m.halves[0], undo)
            await self._save(m, settlement_undo_attempt=None, **{f"{m.halves[0]}_updated": False})
        key = m.key(attempt)
        shortfall = 0
        for i, half in enumerate(m.halves):
            try:
                shortfall = await self._apply(m, half, key, shortfall)
            except DomainError as refused:
                err = _classified(refused)
                applied = m.halves[:i]
                if isinstance(err, TransientError):
                    # Outcome unknown: a retry replays the same keys. Meanwhile the first half stands,
                    # and the order says so (on success both flags come with the event's commit).
                    await self._save(m, **{f"{done}_updated": True for done in applied})
                    raise err from None
                # Refused: the next try (a replay once the cause is fixed) needs fresh keys, since a
                # service may keep the refusal as this key's answer.
                await self._save(
                    m,
                    settlement_attempt=attempt + 1,
                    settlement_undo_attempt=attempt if applied else None,
                )
                for done in applied:
                    await self._undo(m, done, attempt)
                    await self._save(m, settlement_undo_attempt=None, **{f"{done}_updated": False})
                log.warning(
                    "settlement half refused",
                    key=key,
                    half=half,
                    undone=list(applied),
                    reason=err.args[0] if err.args else "",
                )
                raise err from None

    async def _apply(self, m: _Movement, half: str, key: str, shortfall: int) -> int:
        """Apply one half under ``key``; returns the shortfall the ledger's half books as the seller's
        debt: a refund's wallet debit takes what the wallet holds (a seller paid out already may hold
        less), so a buyer's refund is never refused for the seller's empty balance."""
        if half == LEDGER:
            await self._ledger.post(m.ledger_for(shortfall), key)
            return shortfall
        if m.debit:
            shortfall = await self._wallets.debit_up_to(m.wallet, key)
            if shortfall:
                log.warning(
                    "refund exceeds the seller's balance: the rest is the seller's debt",
                    key=key,
                    seller=m.wallet.seller,
                    shortfall_minor=shortfall,
                    currency=m.wallet.currency,
                )
            return shortfall
        await self._wallets.move(m.wallet, key)
        return 0

    async def _undo(self, m: _Movement, half: str, attempt: int) -> None:
        """Undo ``half`` of ``attempt``, known to be applied, under a key derived from the attempt's."""
        key = m.key(attempt)
        undo_key = f"{key}:undo"
        if half == WALLET:
            taken = m.wallet.amount_minor
            if m.debit:  # replaying the debit under its key answers what it took
                taken -= await self._wallets.debit_up_to(m.wallet, key)
                if not taken:
                    return
            opposite = WalletMovement(
                m.wallet.seller,
                taken,
                m.wallet.currency,
                not m.debit,
                ReferenceKind.ADJUSTMENT,
                undo_key,
            )
            await self._wallets.move(opposite, undo_key)
            return
        # The posting was applied under this key, so posting it again only replays its answer (its id).
        posted = await self._ledger.post(m.ledger, key)
        try:
            await self._ledger.reverse(
                posted,
                description=f"undo of {key}: its wallet half was refused",
                external_ref=m.ledger.external_ref,
                metadata={"source": "payment_svc", "reference": m.id, "undoes": key},
                key=undo_key,
            )
        except FailedPrecondition as err:
            if err.reason != "ALREADY_REVERSED":
                raise

    # -- a batch -----------------------------------------------------------------------------

    async def _settle_batch(
        self, movements: list[_Movement], states: dict[tuple[str, str], SettlementState]
    ) -> None:
        keyed = []
        for m in movements:
            attempt, undo = states.get((m.kind, m.id), (0, None))
            if m.debit and m.wallet.amount_minor:
                # The wallet's answer (what it fell short by) shapes a refund's posting, so refunds
                # are settled one by one; a batch is mostly orders.
                raise _BatchFallback(f"{m.key(attempt)} is a refund; settle one by one")
            if undo is not None:
                raise _BatchFallback(f"{m.key(attempt)} owes an undo; settle one by one")
            keyed.append((m, m.key(attempt)))
        for step in (0, 1):  # every first half, then every second half
            todo = [(m, key) for m, key in keyed if len(m.halves) > step]
            await self._post_ledger([(m, key) for m, key in todo if m.halves[step] == LEDGER])
            await self._move_wallets([(m, key) for m, key in todo if m.halves[step] == WALLET])

    async def _move_wallets(self, items: list[tuple[_Movement, str]]) -> None:
        if not items:
            return
        answers = await self._wallets.move_many([(m.wallet, key) for m, key in items])
        _refuse_first("wallet", [key for _, key in items], answers)

    async def _post_ledger(self, items: list[tuple[_Movement, str]]) -> None:
        if not items:
            return
        # The call's own key names its items, so a redelivered batch replays the stored answer.
        batch_key = (
            "settle:batch:" + hashlib.sha256("\x00".join(key for _, key in items).encode()).hexdigest()
        )
        answers = await self._ledger.post_many([(m.ledger, key) for m, key in items], batch_key)
        # On a refusal the consumer rolls the batch back and applies each event alone, which names the
        # culprit, undoes its first half and retries or dead-letters only it; the others replay.
        _refuse_first("ledger", [key for _, key in items], answers)


def _refuse_first(service: str, keys: list[str], answers: list[Refusal | None]) -> None:
    refused = [(key, a) for key, a in zip(keys, answers, strict=True) if a is not None]
    if refused:
        key, err = refused[0]
        raise TerminalError(f"{service} refused {key}: {err.reason}: {err.message}")


def _classified(err: DomainError) -> Exception:
    # Unavailable, a key still in use, and unexpected server errors may pass; anything the other
    # service refused on its merits (bad request, insufficient funds) needs a person.
    if isinstance(err, Unavailable | Aborted | Internal):
        return TransientError(f"{err.reason}: {err.message}")
    return TerminalError(f"{err.reason}: {err.message}")
