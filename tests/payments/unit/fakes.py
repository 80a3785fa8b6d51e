"""An in-memory unit of work for the payment service's use cases (cosmicpython's FakeUnitOfWork): the
repository's methods over dicts, the outbox as a list. A transaction that raises leaves nothing
behind, as PostgreSQL's would; row locks are not modelled (one test drives one use case at a time)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from payment_svc.config import PaymentSettings
from payment_svc.psp import HostedSession, LineItem, PspError
from payment_svc.psp_objects import (
    AccountView,
    CheckoutSessionView,
    PaymentIntentView,
    PayoutView,
    RefundView,
    TransferView,
)
from payment_svc.repository import PaymentRepository
from payment_svc.risk import RuleBasedRisk, RuleLimits
from payment_svc.rows import CheckoutRow, OrderRow, RefundRow, TransitionRow
from payment_svc.settlement import OutboxSettlement
from payment_svc.uow import UnitOfWork
from payment_svc.usecases.deps import Deps
from payment_svc.usecases.transitions import Transitions
from svckit.events import outbox


@dataclass
class Store:
    """What the fake database holds."""

    events: dict[str, CheckoutRow] = field(default_factory=dict)
    orders: dict[str, OrderRow] = field(default_factory=dict)
    refunds: dict[str, RefundRow] = field(default_factory=dict)
    transitions: list[TransitionRow] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    # The real repository defaults updated_at to the database's now(); here it is the clock's.
    return {k: v for k, v in values.items() if k != "updated_at"} | {"updated_at": _now()}


class FakeRepository(PaymentRepository):
    def __init__(self, store: Store) -> None:
        super().__init__(None)  # no connection: a query the fake lacks fails loudly
        self.store = store

    async def get_event(self, checkout_id: str) -> CheckoutRow | None:
        return self.store.events.get(checkout_id)

    async def update_event(self, checkout_id: str, **values: Any) -> None:
        self.store.events[checkout_id] = self.store.events[checkout_id]._replace(**values)

    async def get_order(self, payment_order_id: str, for_update: bool = False) -> OrderRow | None:
        return self.store.orders.get(payment_order_id)

    async def get_order_plain(self, payment_order_id: str) -> OrderRow | None:
        return self.store.orders.get(payment_order_id)

    async def orders_of_checkout(self, checkout_id: str, for_update: bool = False) -> list[OrderRow]:
        return sorted(
            (o for o in self.store.orders.values() if o.checkout_id == checkout_id),
            key=lambda o: o.payment_order_id,
        )

    async def orders_by_ids(self, ids: Iterable[str], for_update: bool = False) -> list[OrderRow]:
        return [self.store.orders[i] for i in sorted(set(ids)) if i in self.store.orders]

    async def update_order(self, payment_order_id: str, **values: Any) -> None:
        self.store.orders[payment_order_id] = self.store.orders[payment_order_id]._replace(**_plain(values))

    async def move_order(
        self, payment_order_id: str, from_state: str, to_state: str, cause: str, detail: str, **values: Any
    ) -> None:
        await self.update_order(payment_order_id, **values)
        await self.add_transition(payment_order_id, from_state, to_state, cause, detail)

    async def move_if(
        self,
        payment_order_id: str,
        sources: tuple[str, ...],
        cause: str,
        detail: str,
        values: dict[str, Any],
        event: outbox.EmbeddedEvent | None = None,
    ) -> OrderRow | None:
        order = self.store.orders.get(payment_order_id)
        if order is None or order.state not in sources:
            return None
        await self.move_order(payment_order_id, order.state, values["state"], cause, detail, **values)
        if event is not None:
            self.store.outbox.append({"embedded": event.params})
        return self.store.orders[payment_order_id]

    async def add_transition(
        self, payment_order_id: str, from_state: str | None, to_state: str, cause: str, detail: str = ""
    ) -> None:
        row = TransitionRow(
            len(self.store.transitions) + 1,
            payment_order_id,
            from_state,
            to_state,
            cause,
            detail[:2000],
            _now(),
        )
        self.store.transitions.append(row)

    async def history(self, payment_order_id: str) -> list[TransitionRow]:
        return [t for t in self.store.transitions if t.payment_order_id == payment_order_id]

    async def insert_refund(self, values: dict[str, Any]) -> None:
        now = _now()
        row = RefundRow.of(
            {"psp_reference": None, "failure_reason": None, "settlement_attempt": 0}
            | {"settlement_undo_attempt": None, "created_at": now, "updated_at": now}
            | values
        )
        self.store.refunds[row.refund_id] = row

    async def get_refund(self, refund_id: str, for_update: bool = False) -> RefundRow | None:
        return self.store.refunds.get(refund_id)

    async def refund_by_psp_reference(self, psp_reference: str) -> RefundRow | None:
        return next((r for r in self.store.refunds.values() if r.psp_reference == psp_reference), None)

    async def update_refund(self, refund_id: str, **values: Any) -> None:
        self.store.refunds[refund_id] = self.store.refunds[refund_id]._replace(**_plain(values))


class FakeUnitOfWork(UnitOfWork):
    def __init__(self, store: Store) -> None:
        super().__init__(FakeRepository(store))
        self.store = store

    async def add_event(self, *, stream: str, aggregate_id: str, type: str, payload: dict[str, Any]) -> None:
        self.store.outbox.append(
            {"stream": stream, "aggregate_id": aggregate_id, "type": type, "payload": payload}
        )


class FakeUnitsOfWork:
    """Every kind of unit of work on one :class:`Store`; ``committed`` counts transactions that ended well."""

    def __init__(self) -> None:
        self.store = Store()
        self.committed = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        before = copy.copy(self.store.__dict__)
        before = {k: copy.copy(v) for k, v in before.items()}  # rows are frozen: shallow copies suffice
        try:
            yield FakeUnitOfWork(self.store)
        except BaseException:
            self.store.__dict__.update(before)  # rolled back
            raise
        self.committed += 1

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[UnitOfWork]:
        yield FakeUnitOfWork(self.store)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[UnitOfWork]:
        yield FakeUnitOfWork(self.store)


@dataclass
class FakePsp:
    """Answers what a test sets; records every call."""

    refund_answer: RefundView | PspError | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def close(self) -> None:
        pass

    async def create_checkout_session(self, **kwargs: Any) -> HostedSession:
        self.calls.append(("create_checkout_session", kwargs))
        return HostedSession(
            f"cs_{kwargs['checkout_id']}", f"https://psp.test/pay/{kwargs['checkout_id']}", None
        )

    async def find_refund(self, payment_intent_id: str, refund_id: str) -> RefundView | None:
        self.calls.append(("find_refund", {"payment_intent_id": payment_intent_id, "refund_id": refund_id}))
        return None

    async def create_refund(self, **kwargs: Any) -> RefundView:
        self.calls.append(("create_refund", kwargs))
        if isinstance(self.refund_answer, PspError):
            raise self.refund_answer
        assert self.refund_answer is not None, "the test sets the PSP's refund answer"
        return self.refund_answer

    # The rest of PspPort, so the fake is one: the unit tests never make these calls.
    def _unused(self, call: str) -> AssertionError:
        return AssertionError(f"the unit tests' fake PSP does not answer {call}")

    async def create_payment_intent(self, **kwargs: Any) -> PaymentIntentView:
        raise self._unused("create_payment_intent")

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentView:
        raise self._unused("retrieve_payment_intent")

    async def find_payment_intent(self, checkout_id: str, created_since: int) -> PaymentIntentView | None:
        raise self._unused("find_payment_intent")

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSessionView:
        raise self._unused("retrieve_checkout_session")

    async def create_account(self, **kwargs: Any) -> AccountView:
        raise self._unused("create_account")

    async def retrieve_account(self, account_id: str) -> AccountView:
        raise self._unused("retrieve_account")

    async def create_transfer(self, **kwargs: Any) -> TransferView:
        raise self._unused("create_transfer")

    async def create_payout(self, **kwargs: Any) -> PayoutView:
        raise self._unused("create_payout")

    async def find_transfer(self, payout_id: str) -> TransferView | None:
        raise self._unused("find_transfer")

    async def find_payout(self, account: str, payout_id: str) -> PayoutView | None:
        raise self._unused("find_payout")

    async def retrieve_payout(self, psp_payout_id: str, account: str) -> PayoutView:
        raise self._unused("retrieve_payout")

    async def reverse_transfer(
        self, *, transfer_id: str, amount_minor: int, currency: str, payout_id: str, idempotency_key: str
    ) -> str:
        raise self._unused("reverse_transfer")


STREAM = "test:events"


def settings(**changes: Any) -> PaymentSettings:
    return PaymentSettings(environment="development", **changes)


def deps(uows: FakeUnitsOfWork, psp: FakePsp | None = None, **changes: Any) -> Deps:
    config = settings(**changes)
    sink = OutboxSettlement(STREAM)
    return Deps(
        uows=uows,
        psp=psp or FakePsp(),
        risk=RuleBasedRisk(RuleLimits()),
        settings=config,
        settlement=sink,
        moves=Transitions(config, sink, uows),
    )


def checkout(uows: FakeUnitsOfWork, checkout_id: str, mode: str = "HOSTED") -> CheckoutRow:
    row = CheckoutRow(
        checkout_id=checkout_id,
        buyer_info={"buyer_id": "buyer-1", "email": "b@example.test"},
        created_at=_now(),
        buyer_id="buyer-1",
        mode=mode,
        currency="USD",
        total_minor=0,
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/cancel",
        payment_method="",
        idempotency_key="key-1",
        fingerprint=None,
        psp_session_id=None,
        hosted_page_url="",
        risk_verdict="APPROVE",
        risk_rule="",
    )
    uows.store.events[checkout_id] = row
    return row


def order(
    uows: FakeUnitsOfWork,
    order_id: str,
    checkout_id: str,
    state: str,
    amount_minor: int = 1000,
    currency: str = "USD",
    seller: str = "seller-1",
    **values: Any,
) -> OrderRow:
    now = _now()
    row = OrderRow(
        payment_order_id=order_id,
        checkout_id=checkout_id,
        seller_account=seller,
        amount_minor=amount_minor,
        currency=currency,
        state=state,
        created_at=now,
        updated_at=now,
        psp_reference=None,
        pending_reason=None,
        failure_code=None,
        failure_message=None,
        next_action_url=None,
        commission_minor=0,
        refunded_minor=0,
        refund_reserved_minor=0,
        wallet_updated=False,
        ledger_updated=False,
        settlement_attempt=0,
        settlement_undo_attempt=None,
        janitor_attempts=0,
        next_check_at=None,
        alerted_at=None,
        line_items=[],
    )
    row = row._replace(**values)
    uows.store.orders[order_id] = row
    return row


def line_items(calls: Sequence[tuple[str, dict[str, Any]]]) -> list[LineItem]:
    return [item for name, kw in calls if name == "create_checkout_session" for item in kw["items"]]
