"""Rules of pay-in. Transport-free: plain values in, DomainError out.

Exactly-once charging rests on three things working together:
1. every PSP call carries our own id as its idempotency key (the checkout id for the hosted session,
   the payment order id for a PaymentIntent, the refund id for a refund), so repeating a call can
   only replay it;
2. every step is resumable from what is stored: re-running ``create_payment`` for the same key, or
   the janitor, picks up whatever the previous attempt did not record;
3. every state change goes through :meth:`PaymentService._move`, which consults the transition table
   under a row lock, so a late or duplicate webhook can never move an order backwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payment_svc import repository as repo
from payment_svc.config import PaymentSettings
from payment_svc.domain import (
    CAPTURED,
    OrderState,
    PendingReason,
    PspOutcome,
    can_move,
    commission_minor,
    outcome_from_payment_intent,
    psp_step,
)
from payment_svc.psp import LineItem, PspDeclined, PspError, PspPort, PspUnavailable
from payment_svc.psp_events import CHECKOUT_OUTCOME_EVENTS, OUTCOME_EVENTS, REFUND_EVENTS
from payment_svc.risk import CheckoutFacts, RiskProvider, RiskVerdict
from svckit.db import DriverPool, autocommit, driver_connection
from svckit.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    Unprocessable,
)
from svckit.events import outbox
from svckit.logging import get_logger
from svckit.money import MoneyError, format_amount, normalize_currency

log = get_logger(__name__)
S = OrderState
# For each target, the states that may move to it (the table read backwards), for moves checked by
# the database in one statement.
SOURCES: dict[OrderState, tuple[str, ...]] = {
    target: tuple(s.value for s in OrderState if s is not target and can_move(s, target))
    for target in OrderState
}

ORDERS_PAST_DEADLINE = Counter(
    "payment_orders_past_deadline_total", "Orders still uncertain past their deadline"
)
ORDER_TRANSITIONS = Counter(
    "payment_order_transitions_total", "Order state transitions", ["to_state", "cause"]
)
STALE_EVENTS = Counter("payment_stale_transitions_total", "Transitions refused by the state table", ["cause"])

_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_SELLER = re.compile(r"^[A-Za-z0-9_.\-@]{1,128}$")


@dataclass(frozen=True)
class OrderInput:
    payment_order_id: str
    seller_account: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Buyer:
    buyer_id: str
    email: str = ""
    name: str = ""
    country: str = ""


@dataclass(frozen=True)
class CreatePayment:
    checkout_id: str
    buyer: Buyer
    orders: tuple[OrderInput, ...]
    success_url: str = ""
    cancel_url: str = ""
    payment_method: str = ""

    @property
    def direct(self) -> bool:
        return bool(self.payment_method)


@dataclass
class CheckoutView:
    event: Any
    orders: list[Any] = field(default_factory=list)


class SettlementSink(Protocol):
    """Receives money movements to settle asynchronously (wallet and ledger), inside our transaction."""

    async def order_succeeded(self, conn: AsyncConnection, order: Any, commission_minor: int) -> None: ...

    def order_succeeded_event(self, order: Any, commission_minor: int) -> outbox.EmbeddedEvent:
        """The same event, for a state change that is a single statement (see ``repo.move_if``)."""
        ...

    async def refund_succeeded(self, conn: AsyncConnection, order: Any, refund: Any) -> None: ...


def _off_step(amount_minor: int, currency: str) -> str | None:
    """Why the PSP could not move this amount, or None when it can."""
    step = psp_step(currency)
    if amount_minor % step == 0:
        return None
    return (
        f"{currency} amounts must be a multiple of {format_amount(step, currency)}: "
        f"the PSP does not move {format_amount(amount_minor, currency)} {currency}"
    )


def _field_error(reason: str, message: str, field_name: str) -> InvalidArgument:
    return InvalidArgument(reason, message, field=field_name)


def validate(cmd: CreatePayment, settings: PaymentSettings) -> str:
    """Check a CreatePayment command; return its currency. Nothing is stored when this raises."""
    if not _ID.match(cmd.checkout_id or ""):
        raise _field_error("INVALID_ID", "checkout_id must be 1-128 letters, digits or _.:-", "checkout_id")
    if not _ID.match(cmd.buyer.buyer_id or ""):
        raise _field_error(
            "INVALID_ID", "buyer_info.buyer_id must be 1-128 letters, digits or _.:-", "buyer_info.buyer_id"
        )
    if not cmd.orders:
        raise _field_error(
            "NO_PAYMENT_ORDERS", "a checkout needs at least one payment order", "payment_orders"
        )
    if len(cmd.orders) > settings.max_orders_per_checkout:
        raise _field_error(
            "TOO_MANY_ORDERS",
            f"{len(cmd.orders)} orders; at most {settings.max_orders_per_checkout} per checkout",
            "payment_orders",
        )
    seen: set[str] = set()
    currencies: set[str] = set()
    for i, order in enumerate(cmd.orders):
        where = f"payment_orders[{i}]"
        if not _ID.match(order.payment_order_id or ""):
            raise _field_error(
                "INVALID_ID",
                "payment_order_id must be 1-128 letters, digits or _.:-",
                f"{where}.payment_order_id",
            )
        if order.payment_order_id in seen:
            raise _field_error(
                "DUPLICATE_PAYMENT_ORDER_ID",
                f"{order.payment_order_id} appears twice",
                f"{where}.payment_order_id",
            )
        seen.add(order.payment_order_id)
        if not _SELLER.match(order.seller_account or ""):
            raise _field_error(
                "INVALID_SELLER_ACCOUNT",
                "seller_account must be 1-128 letters, digits or _.-@",
                f"{where}.seller_account",
            )
        if order.amount_minor <= 0:
            raise _field_error("AMOUNT_NOT_POSITIVE", "amount must be positive", f"{where}.amount")
        try:
            currency = normalize_currency(order.currency)
        except MoneyError as exc:
            raise _field_error(exc.reason, str(exc), f"{where}.currency") from None
        if order.amount_minor > (cap := settings.max_order_amount_minor):
            # The one place this limit is checked: the gateway passes this refusal on as its 400.
            raise _field_error(
                "AMOUNT_TOO_LARGE",
                f"{format_amount(order.amount_minor, currency)} {currency} is above the limit of "
                f"{format_amount(cap, currency)} per order",
                f"{where}.amount",
            )
        currencies.add(currency)
        if step := _off_step(order.amount_minor, currency):
            raise _field_error("AMOUNT_PRECISION_EXCEEDED", step, f"{where}.amount")
    if len(currencies) != 1:
        raise _field_error(
            "MIXED_CURRENCIES", "all orders of a checkout must share one currency", "payment_orders"
        )
    if not cmd.direct:
        for name in ("success_url", "cancel_url"):
            value = getattr(cmd, name)
            if not value.startswith(("http://", "https://")):
                raise _field_error("INVALID_URL", f"{name} must be an http(s) URL in hosted mode", name)
    elif not cmd.payment_method.startswith("pm_"):
        raise _field_error(
            "INVALID_PAYMENT_METHOD", "payment_method must be a PSP token (pm_...)", "payment_method"
        )
    return currencies.pop()


def refund_id_for(payment_order_id: str, idempotency_key: str) -> str:
    """Deterministic, so a retried or resumed refund request finds the refund it started."""
    digest = hashlib.sha256(f"{payment_order_id}\x00{idempotency_key}".encode()).hexdigest()[:24]
    return f"rf_{digest}"


class PaymentService:
    def __init__(
        self,
        engine: AsyncEngine,
        psp: PspPort,
        risk: RiskProvider,
        settings: PaymentSettings,
        settlement: SettlementSink,
        driver: DriverPool,
    ) -> None:
        self._engine = engine
        self._reader = autocommit(engine)  # reads that need no multi-statement snapshot
        self._driver = driver  # the hot one-statement units of work, on plain psycopg
        self._psp = psp
        self._risk = risk
        self._settings = settings
        self._settlement = settlement

    async def close(self) -> None:
        await self._psp.close()
        await self._driver.close()

    # -- reads ----------------------------------------------------------------------------------
    async def get_order(self, conn: AsyncConnection, payment_order_id: str) -> Any:
        if not payment_order_id:
            raise InvalidArgument("MISSING_FIELD", "payment_order_id is required", field="payment_order_id")
        row = await repo.get_order(conn, payment_order_id)
        if row is None:
            raise NotFound(
                "PAYMENT_ORDER_NOT_FOUND",
                f"no payment order {payment_order_id!r}",
                {"payment_order_id": payment_order_id},
            )
        return row

    async def get_checkout(self, conn: AsyncConnection, checkout_id: str) -> CheckoutView:
        event = await repo.get_event(conn, checkout_id)
        if event is None:
            raise NotFound("CHECKOUT_NOT_FOUND", f"no checkout {checkout_id!r}", {"checkout_id": checkout_id})
        return CheckoutView(event, await repo.orders_of_checkout(conn, checkout_id))

    async def history(self, conn: AsyncConnection, payment_order_id: str) -> list[Any]:
        await self.get_order(conn, payment_order_id)
        return await repo.history(conn, payment_order_id)

    # -- the one place an order changes state ---------------------------------------------------
    async def _move(
        self,
        conn: AsyncConnection,
        order: Any,
        target: OrderState,
        cause: str,
        detail: str = "",
        **fields: Any,
    ) -> bool:
        """Apply ``target`` to a row locked by the caller if the table allows it. Returns True if the state changed."""
        current = OrderState(order.state)
        if target == current:
            if fields:
                await repo.update_order(conn, order.payment_order_id, **fields)
            return False
        if not can_move(current, target):
            STALE_EVENTS.labels(cause.split(":")[0]).inc()
            log.info(
                "transition refused by the state table",
                payment_order_id=order.payment_order_id,
                current=current.value,
                target=target.value,
                cause=cause,
            )
            return False
        values = self._transition_values(order, target, fields)
        await repo.move_order(
            conn, order.payment_order_id, current.value, target.value, cause, detail, **values
        )
        ORDER_TRANSITIONS.labels(target.value, cause.split(":")[0]).inc()
        if target is S.SUCCESS:
            await self._settlement.order_succeeded(conn, order, values["commission_minor"])
        return True

    def _transition_values(self, order: Any, target: OrderState, fields: dict[str, Any]) -> dict[str, Any]:
        """The columns a move to ``target`` sets. Uses only what never changes after creation (amount,
        seller), so it may be computed from a snapshot read before the row was locked."""
        values = dict(fields, state=target.value)
        if target in (S.NOT_STARTED, S.EXECUTING, S.PENDING, S.UNKNOWN):
            values.setdefault(
                "next_check_at",
                datetime.now(UTC) + timedelta(seconds=self._settings.janitor_first_check_seconds),
            )
        else:
            values["next_check_at"] = None
        if target is not S.PENDING:
            values.setdefault("pending_reason", None)
        if target is S.SUCCESS:
            rate = self._settings.commission_overrides_bps.get(
                order.seller_account, self._settings.commission_rate_bps
            )
            values["commission_minor"] = commission_minor(order.amount_minor, rate)
            values["failure_code"] = None
            values["failure_message"] = None
            values["next_action_url"] = None
        return values

    async def _move_at_once(
        self, order: Any, target: OrderState, cause: str, detail: str = "", **fields: Any
    ) -> Any | None:
        """The common case of :meth:`_move` as one statement on its own: the order moves only if it is
        still in a state the table lets reach ``target`` (checked under the row lock the statement
        takes), with its history row and, for SUCCESS, its settlement event. Returns the moved row, or
        None when it did not move; the caller then takes the locked path, which also handles a
        same-state update and reports a stale transition."""
        values = self._transition_values(order, target, fields)
        event = None
        if target is S.SUCCESS:
            event = self._settlement.order_succeeded_event(order, values["commission_minor"])
        async with self._driver.connection() as conn:
            moved = await repo.move_if(
                conn, order.payment_order_id, SOURCES[target], cause, detail, values, event
            )
        if moved is not None:
            ORDER_TRANSITIONS.labels(target.value, cause.split(":")[0]).inc()
        return moved

    @staticmethod
    def _outcome_change(outcome: PspOutcome) -> tuple[dict[str, Any], str]:
        """(fields, detail) of the move an outcome asks for."""
        fields: dict[str, Any] = {}
        if outcome.psp_reference:
            fields["psp_reference"] = outcome.psp_reference
        if outcome.state is S.FAILED:
            fields.update(failure_code=outcome.failure_code, failure_message=outcome.failure_message)
        if outcome.state is S.PENDING:
            fields.update(
                next_action_url=outcome.next_action_url,
                pending_reason=(outcome.pending_reason or PendingReason.PSP_PROCESSING).value,
            )
        detail = outcome.failure_message or outcome.failure_code or (outcome.psp_reference or "")
        return fields, detail

    async def _apply_outcome(
        self, conn: AsyncConnection, order: Any, outcome: PspOutcome, cause: str
    ) -> bool:
        fields, detail = self._outcome_change(outcome)
        return await self._move(conn, order, outcome.state, cause, detail, **fields)

    # -- create ---------------------------------------------------------------------------------
    async def create_payment(
        self, cmd: CreatePayment, idempotency_key: str, fingerprint: bytes
    ) -> CheckoutView:
        currency = validate(cmd, self._settings)
        # Stored first, looked up only on conflict: a new checkout (the common case) costs no read.
        stored = await self._store_checkout(cmd, currency, idempotency_key, fingerprint)
        if stored is None:
            log.info("resuming checkout", checkout_id=cmd.checkout_id)
            await self.drive(cmd.checkout_id)
        else:
            event, orders = stored
            moved = await self._drive(event, orders)
            if orders and len(moved) == len(orders):
                # Every order's outcome came back from its own statement: the answer needs no read.
                return CheckoutView(event, sorted(moved, key=lambda o: o.payment_order_id))
        async with self._reader.connect() as conn:
            return await self.get_checkout(conn, cmd.checkout_id)

    async def _store_checkout(
        self, cmd: CreatePayment, currency: str, key: str, fingerprint: bytes
    ) -> tuple[Any, list[Any]] | None:
        """Store a new checkout with its orders; return them as stored, or None when this key already
        stored this checkout (a retry resumes it). Another key's checkout is ALREADY_EXISTS."""
        total = sum(o.amount_minor for o in cmd.orders)
        since = datetime.now(UTC) - timedelta(seconds=self._settings.risk_velocity_window_seconds)
        async with self._driver.connection() as conn:
            recent_count, recent_amount = await repo.buyer_velocity(conn, cmd.buyer.buyer_id, since)
        decision = await self._risk.assess(
            CheckoutFacts(
                cmd.buyer.buyer_id,
                currency,
                total,
                tuple(o.seller_account for o in cmd.orders),
                recent_count,
                recent_amount,
            )
        )
        approved = decision.verdict is RiskVerdict.APPROVE
        new_checkout = (
            {
                "checkout_id": cmd.checkout_id,
                "buyer_id": cmd.buyer.buyer_id,
                "buyer_info": {
                    "buyer_id": cmd.buyer.buyer_id,
                    "email": cmd.buyer.email,
                    "name": cmd.buyer.name,
                    "country": cmd.buyer.country,
                },
                "mode": "DIRECT" if cmd.direct else "HOSTED",
                "currency": currency,
                "total_minor": total,
                "success_url": cmd.success_url,
                "cancel_url": cmd.cancel_url,
                "payment_method": cmd.payment_method,
                "idempotency_key": key,
                "fingerprint": fingerprint,
                "risk_verdict": decision.verdict.value,
                "risk_rule": decision.rule,
            },
            [(o.payment_order_id, o.seller_account, o.amount_minor) for o in cmd.orders],
            datetime.now(UTC) + timedelta(seconds=self._settings.janitor_first_check_seconds),
        )
        try:
            # Approved, the checkout is one statement and needs no transaction around it; held or
            # declined, its orders move in the same transaction, so no order is ever stored as
            # NOT_STARTED on its own for the janitor to register against the risk verdict.
            if approved:
                async with self._driver.connection() as conn:
                    event, orders = await repo.insert_checkout(conn, *new_checkout)
            else:
                async with self._engine.begin() as conn:
                    event, orders = await repo.insert_checkout(await driver_connection(conn), *new_checkout)
                    for order in orders:  # inserted by this transaction: locked already
                        if decision.verdict is RiskVerdict.DECLINE:
                            await self._move(
                                conn,
                                order,
                                S.FAILED,
                                f"risk:{decision.rule}",
                                decision.detail,
                                failure_code="RISK_DECLINED",
                                failure_message=decision.detail,
                            )
                        else:
                            await self._move(
                                conn,
                                order,
                                S.PENDING,
                                f"risk:{decision.rule}",
                                decision.detail,
                                pending_reason=PendingReason.RISK_REVIEW.value,
                            )
        except psycopg.errors.UniqueViolation as exc:
            constraint = exc.diag.constraint_name or ""
            if constraint == "payment_events_pkey":
                async with self._reader.connect() as conn:
                    existing = await repo.get_event(conn, cmd.checkout_id)
                if existing is not None and existing.idempotency_key == key:
                    if existing.fingerprint is not None and bytes(existing.fingerprint) != fingerprint:
                        # The first attempt never finished, so the key has no stored answer to
                        # compare with; the checkout itself remembers what was asked.
                        raise Unprocessable(
                            "IDEMPOTENCY_KEY_REUSED",
                            "this idempotency-key was already used with a different request; use a new key",
                        ) from None
                    return None
                raise AlreadyExists(
                    "CHECKOUT_ALREADY_EXISTS",
                    f"checkout {cmd.checkout_id!r} already exists",
                    {"checkout_id": cmd.checkout_id},
                ) from None
            if constraint == "payment_orders_pkey":
                async with self._reader.connect() as conn:
                    taken = await repo.existing_order_ids(conn, [o.payment_order_id for o in cmd.orders])
                raise AlreadyExists(
                    "PAYMENT_ORDER_ALREADY_EXISTS",
                    f"payment order {', '.join(taken) or '?'} already exists",
                    {"payment_order_id": ",".join(taken)},
                ) from None
            raise
        if not approved:
            return event, []  # held or declined: nothing to register now
        return event, orders

    # -- PSP registration (resumable) -----------------------------------------------------------
    @staticmethod
    def _needs_registration(event: Any, order: Any) -> bool:
        state = OrderState(order.state)
        if state not in (S.NOT_STARTED, S.EXECUTING, S.UNKNOWN):
            return False  # held for review, or already decided
        if event.mode == "HOSTED":
            return event.psp_session_id is None
        return order.psp_reference is None

    async def drive(self, checkout_id: str) -> None:
        """Register with the PSP whatever the checkout still needs; safe to repeat."""
        async with self._reader.connect() as conn:
            event = await repo.get_event(conn, checkout_id)
            orders = await repo.orders_of_checkout(conn, checkout_id)
        await self._drive(event, orders)

    async def _drive(self, event: Any, orders: Sequence[Any]) -> list[Any]:
        """Register what the checkout still needs; return the rows of the orders whose outcome was
        recorded by a one-statement move (direct mode), as they now stand."""
        pending = [o for o in orders if self._needs_registration(event, o)]
        if not pending:
            return []
        if event.mode == "HOSTED":
            await self._register_session(event, pending)
            return []
        rows = await asyncio.gather(*(self._register_intent(event, o) for o in pending))
        return [row for row in rows if row is not None]

    async def _register_session(self, event: Any, orders: Sequence[Any]) -> None:
        try:
            session = await self._psp.create_checkout_session(
                checkout_id=event.checkout_id,
                currency=event.currency,
                items=[LineItem(o.payment_order_id, o.seller_account, o.amount_minor) for o in orders],
                success_url=event.success_url,
                cancel_url=event.cancel_url,
                customer_email=(event.buyer_info or {}).get("email") or None,
                idempotency_key=f"{event.checkout_id}:session",
            )
        except PspError as exc:
            await self._record_failure(event, [o.payment_order_id for o in orders], exc, "psp:create_session")
            return
        async with self._engine.begin() as conn:
            await repo.update_event(
                conn, event.checkout_id, psp_session_id=session.session_id, hosted_page_url=session.url
            )
            for order in await repo.orders_by_ids(
                conn, [o.payment_order_id for o in orders], for_update=True
            ):
                fields = {"psp_reference": session.payment_intent_id} if session.payment_intent_id else {}
                await self._move(
                    conn, order, S.EXECUTING, "psp:session_created", session.session_id, **fields
                )

    async def _register_intent(self, event: Any, order: Any) -> Any | None:
        """Create and confirm the order's PaymentIntent and record the outcome; return the order's row
        as it now stands when the outcome was recorded in one statement, or was found recorded
        already by the PSP's webhook (None otherwise: the caller reads the order)."""
        try:
            pi = await self._psp.create_payment_intent(
                payment_order_id=order.payment_order_id,
                checkout_id=event.checkout_id,
                seller_account=order.seller_account,
                amount_minor=order.amount_minor,
                currency=order.currency,
                payment_method=event.payment_method,
                return_url=self._settings.return_url,
                idempotency_key=order.payment_order_id,
            )
        except PspError as exc:
            await self._record_failure(event, [order.payment_order_id], exc, "psp:create_intent")
            return None
        outcome = outcome_from_payment_intent(pi, direct_mode=True)
        fields, detail = self._outcome_change(outcome)
        moved = await self._move_at_once(order, outcome.state, "psp:confirm", detail, **fields)
        if moved is not None:
            return moved
        if outcome.state is S.SUCCESS:
            # Usually the PSP's webhook recorded this very success first: then there is nothing to do.
            async with self._driver.connection() as conn:
                now = await repo.get_order_plain(conn, order.payment_order_id)
            if now is not None and now.state == S.SUCCESS and now.psp_reference == outcome.psp_reference:
                return now  # as it stands, committed: the answer needs no further read
        async with self._engine.begin() as conn:
            locked = await repo.get_order(conn, order.payment_order_id, for_update=True)
            await self._apply_outcome(conn, locked, outcome, "psp:confirm")
        return None

    async def _record_failure(self, event: Any, order_ids: Sequence[str], exc: PspError, cause: str) -> None:
        async with self._engine.begin() as conn:
            for order in await repo.orders_by_ids(conn, order_ids, for_update=True):
                if isinstance(exc, PspUnavailable):
                    # We do not know whether the PSP acted: never FAILED, the janitor asks again.
                    await self._move(conn, order, S.UNKNOWN, cause, exc.message)
                elif isinstance(exc, PspDeclined) and exc.payment_intent:
                    outcome = outcome_from_payment_intent(
                        exc.payment_intent, direct_mode=event.mode == "DIRECT"
                    )
                    if outcome.state is not S.FAILED:
                        outcome = PspOutcome(S.FAILED, outcome.psp_reference, exc.code, exc.message)
                    else:
                        outcome = PspOutcome(
                            S.FAILED,
                            outcome.psp_reference,
                            exc.code or outcome.failure_code,
                            exc.message or outcome.failure_message,
                        )
                    await self._apply_outcome(conn, order, outcome, cause)
                else:
                    kind = "declined" if isinstance(exc, PspDeclined) else "rejected"
                    log.warning(
                        f"PSP {kind} the request", payment_order_id=order.payment_order_id, code=exc.code
                    )
                    await self._move(
                        conn,
                        order,
                        S.FAILED,
                        cause,
                        exc.message,
                        failure_code=exc.code,
                        failure_message=exc.message,
                    )

    # -- webhooks -------------------------------------------------------------------------------
    async def apply_event_at_once(self, event_type: str, payload: bytes) -> list[str] | None:
        """The common PaymentIntent events without a transaction; None when the full path must decide.

        - Any outcome event whose orders all have their money captured already changes nothing (the
          table allows only refunds from there): typically the ``payment_intent.succeeded`` that
          follows our own confirmation. Answered from one read: ``[]``.
        - A direct-mode ``payment_intent.succeeded`` that beats our own record of the confirmation
          moves its order with the one-statement move (history row and settlement event included):
          ``[order id]``. The move is conditional on the order's state, so a redelivery, or our own
          confirmation answer arriving later, finds it captured and changes nothing.
        Neither leaves an idempotency record: the order's state is what makes them idempotent.
        Anything else, including a payload we cannot read, takes the full path.
        """
        try:
            body = json.loads(payload)
            kind = event_type or body.get("type", "")
            intent = body["data"]["object"]
            intent_id = intent["id"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if kind not in OUTCOME_EVENTS or not isinstance(intent_id, str) or not intent_id:
            return None
        metadata = intent.get("metadata")
        order_id = metadata.get("payment_order_id") if isinstance(metadata, dict) else None  # direct mode
        async with self._driver.connection() as conn:
            if await repo.intent_orders_all_captured(conn, intent_id):
                return []
            if kind != "payment_intent.succeeded" or intent.get("status") != "succeeded":
                return None
            if not isinstance(order_id, str) or not order_id:
                return None
            order = await repo.get_order_plain(conn, order_id)
        if order is None or order.psp_reference not in (None, intent_id):
            return None
        cause = f"psp_event:{kind} {body.get('id', '')}".strip()
        moved = await self._move_at_once(order, S.SUCCESS, cause, intent_id, psp_reference=intent_id)
        return None if moved is None else [order_id]

    async def handle_psp_event(self, conn: AsyncConnection, event_type: str, payload: bytes) -> list[str]:
        """Apply one verified PSP event inside the caller's transaction; return the orders it changed."""
        try:
            body = json.loads(payload)
            obj = body["data"]["object"]
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument(
                "INVALID_PAYLOAD", "payload is not a PSP event with data.object", field="payload"
            ) from None
        kind = event_type or body.get("type", "")
        cause = f"psp_event:{kind}"
        detail = body.get("id", "")
        changed: list[str] = []
        if kind in OUTCOME_EVENTS:
            orders, event = await self._orders_for_intent(conn, obj)
            if not orders:
                return []
            outcome = outcome_from_payment_intent(obj, direct_mode=event.mode == "DIRECT")
            for order in orders:
                if outcome.state is S.EXECUTING and event.mode == "HOSTED":
                    # One attempt on the hosted page, not the payment's end: note declines while open.
                    if kind == "payment_intent.payment_failed" and order.state in repo.UNCERTAIN_STATES:
                        err = obj.get("last_payment_error") or {}
                        code = err.get("decline_code") or err.get("code") or "declined"
                        await repo.add_transition(
                            conn,
                            order.payment_order_id,
                            order.state,
                            order.state,
                            cause,
                            f"attempt declined on the hosted page: {code}",
                        )
                    continue
                if await self._apply_outcome(conn, order, outcome, f"{cause} {detail}".strip()):
                    changed.append(order.payment_order_id)
        elif kind in CHECKOUT_OUTCOME_EVENTS:
            event = await self._event_for_session(conn, obj)
            if event is None:
                return []
            orders = await repo.orders_of_checkout(conn, event.checkout_id, for_update=True)
            if event.psp_session_id is None:
                await repo.update_event(conn, event.checkout_id, psp_session_id=obj.get("id"))
            pi = obj.get("payment_intent")
            pi_id = pi.get("id") if isinstance(pi, dict) else pi
            if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
                paid = obj.get("payment_status") in ("paid", "no_payment_required")
                target = S.SUCCESS if paid else S.PENDING
                for order in orders:
                    fields = {"psp_reference": pi_id} if pi_id else {}
                    if target is S.PENDING:
                        fields["pending_reason"] = PendingReason.PSP_PROCESSING.value
                    if await self._move(conn, order, target, cause, detail, **fields):
                        changed.append(order.payment_order_id)
            elif kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
                code = "expired" if kind.endswith("expired") else "async_payment_failed"
                for order in orders:
                    if await self._move(
                        conn,
                        order,
                        S.FAILED,
                        cause,
                        detail,
                        failure_code=code,
                        failure_message=f"checkout session {code.replace('_', ' ')}",
                    ):
                        changed.append(order.payment_order_id)
        elif kind in REFUND_EVENTS:
            changed = await self._apply_refund_object(conn, obj, cause)
        return changed

    async def _orders_for_intent(self, conn: AsyncConnection, pi: dict) -> tuple[list[Any], Any]:
        intent_id = pi.get("id")
        orders = []
        if isinstance(intent_id, str):
            orders = await repo.orders_by_psp_reference(conn, intent_id, for_update=True)
        meta = pi.get("metadata")
        meta = {k: v for k, v in meta.items() if isinstance(v, str) and v} if isinstance(meta, dict) else {}
        if not orders and "payment_order_id" in meta:
            # The PSP's event can beat our own record of the PaymentIntent: find the order by our id.
            orders = await repo.orders_by_ids(conn, [meta["payment_order_id"]], for_update=True)
        if not orders and "checkout_id" in meta:
            orders = await repo.orders_of_checkout(conn, meta["checkout_id"], for_update=True)
        if not orders:
            log.info("PSP event for a payment that is not ours", payment_intent=pi.get("id"))
            return [], None
        return orders, await repo.get_event(conn, orders[0].checkout_id)

    async def _event_for_session(self, conn: AsyncConnection, session: dict) -> Any:
        event = await repo.get_event_by_session(conn, session.get("id", ""))
        if event is None:
            ref = session.get("client_reference_id") or (session.get("metadata") or {}).get("checkout_id")
            if ref:
                event = await repo.get_event(conn, ref)
        return event

    # -- operator review ------------------------------------------------------------------------
    async def review(self, payment_order_id: str, approve: bool, reviewer: str, note: str) -> Any:
        async with self._engine.begin() as conn:
            order = await self.get_order(conn, payment_order_id)
            held = [
                o
                for o in await repo.orders_of_checkout(conn, order.checkout_id, for_update=True)
                if o.state == S.PENDING.value and o.pending_reason == PendingReason.RISK_REVIEW.value
            ]
            if not any(o.payment_order_id == payment_order_id for o in held):
                raise FailedPrecondition(
                    "ORDER_NOT_IN_REVIEW",
                    f"order {payment_order_id} is not waiting for review",
                    {"state": order.state},
                )
            detail = f"{reviewer or 'operator'}: {note}".strip(": ")
            for o in held:
                if approve:
                    await self._move(conn, o, S.EXECUTING, "review:approve", detail)
                else:
                    await self._move(
                        conn,
                        o,
                        S.FAILED,
                        "review:decline",
                        detail,
                        failure_code="RISK_DECLINED",
                        failure_message=note or "declined by risk review",
                    )
        if approve:
            await self.drive(order.checkout_id)
        async with self._reader.connect() as conn:
            return await repo.get_order(conn, payment_order_id)

    # -- janitor --------------------------------------------------------------------------------
    async def janitor_pass(self) -> int:
        """Ask the PSP about every order that has been uncertain for too long. Returns orders looked at."""
        async with self._reader.connect() as conn:
            due = await repo.due_uncertain_orders(conn, self._settings.janitor_batch_size)
        checkouts = sorted({row.checkout_id for row in due})
        for checkout_id in checkouts:
            try:
                await self._resolve_checkout(checkout_id)
            except Exception:
                log.exception("janitor could not resolve a checkout", checkout_id=checkout_id)
        await self._reschedule([row.payment_order_id for row in due])
        return len(due)

    async def _resolve_checkout(self, checkout_id: str) -> None:
        await self.drive(checkout_id)  # registrations that never happened or timed out
        async with self._reader.connect() as conn:
            event = await repo.get_event(conn, checkout_id)
            orders = await repo.orders_of_checkout(conn, checkout_id)
        uncertain = [
            o
            for o in orders
            if o.state in repo.UNCERTAIN_STATES and o.pending_reason != PendingReason.RISK_REVIEW.value
        ]
        if not uncertain:
            return
        if event is None:  # its orders reference it: a missing checkout is a broken invariant
            raise Internal("CHECKOUT_MISSING", f"checkout {checkout_id!r} of uncertain orders is missing")
        if event.mode == "HOSTED" and event.psp_session_id:
            try:
                session = await self._psp.retrieve_checkout_session(event.psp_session_id)
            except PspError as exc:
                log.warning("janitor: PSP unavailable", checkout_id=checkout_id, error=exc.message)
                return
            status, paid = (
                session.get("status"),
                session.get("payment_status") in ("paid", "no_payment_required"),
            )
            async with self._engine.begin() as conn:
                pi = session.get("payment_intent")
                pi_id = pi.get("id") if isinstance(pi, dict) else pi
                for order in await repo.orders_by_ids(
                    conn, [o.payment_order_id for o in uncertain], for_update=True
                ):
                    if status == "complete" and paid:
                        await self._move(
                            conn,
                            order,
                            S.SUCCESS,
                            "janitor",
                            "checkout session complete",
                            **({"psp_reference": pi_id} if pi_id else {}),
                        )
                    elif status == "expired":
                        await self._move(
                            conn,
                            order,
                            S.FAILED,
                            "janitor",
                            "checkout session expired",
                            failure_code="expired",
                            failure_message="checkout session expired",
                        )
            return
        for order in uncertain:
            try:
                if order.psp_reference:
                    pi = await self._psp.retrieve_payment_intent(order.psp_reference)
                else:
                    since = int(order.created_at.timestamp()) - 300
                    pi = await self._psp.find_payment_intent(order.payment_order_id, since)
                    if pi is None:
                        continue  # still unknown: rescheduled with backoff, alerted at its deadline
            except PspError as exc:
                log.warning(
                    "janitor: PSP unavailable", payment_order_id=order.payment_order_id, error=exc.message
                )
                continue
            async with self._engine.begin() as conn:
                locked = await repo.get_order(conn, order.payment_order_id, for_update=True)
                await self._apply_outcome(
                    conn, locked, outcome_from_payment_intent(pi, event.mode == "DIRECT"), "janitor"
                )

    async def _reschedule(self, order_ids: Sequence[str]) -> None:
        settings = self._settings
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            for order in await repo.orders_by_ids(conn, order_ids, for_update=True):
                if order.state not in repo.UNCERTAIN_STATES:
                    continue
                attempts = order.janitor_attempts + 1
                delay = min(
                    settings.janitor_first_check_seconds * 2**attempts, settings.janitor_max_backoff_seconds
                )
                values: dict[str, Any] = {
                    "janitor_attempts": attempts,
                    "next_check_at": now + timedelta(seconds=max(delay, 1.0)),
                }
                past = (now - order.created_at).total_seconds() > settings.order_deadline_seconds
                if past and order.alerted_at is None:
                    ORDERS_PAST_DEADLINE.inc()
                    log.error(
                        "payment order past its deadline and still uncertain",
                        payment_order_id=order.payment_order_id,
                        state=order.state,
                        age_seconds=int((now - order.created_at).total_seconds()),
                    )
                    values["alerted_at"] = now
                await repo.set_janitor_schedule(conn, order.payment_order_id, **values)

    async def janitor_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.janitor_pass()
            except Exception:
                log.exception("janitor pass failed; will retry")
            await asyncio.sleep(
                max(0.0, self._settings.janitor_interval_seconds - (time.monotonic() - started))
            )

    # -- refunds --------------------------------------------------------------------------------
    async def create_refund(
        self, payment_order_id: str, amount_minor: int, reason: str, idempotency_key: str
    ) -> tuple[Any, Any]:
        if amount_minor < 0:
            raise InvalidArgument("AMOUNT_NOT_POSITIVE", "refund amount must be positive", field="amount")
        if reason and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise InvalidArgument(
                "INVALID_REFUND_REASON",
                "reason must be duplicate, fraudulent or requested_by_customer",
                field="reason",
            )
        refund_id = refund_id_for(payment_order_id, idempotency_key)
        async with self._engine.begin() as conn:
            refund = await repo.get_refund(conn, refund_id)
            if refund is None:
                refund = await self._reserve_refund(conn, payment_order_id, amount_minor, reason, refund_id)
        if refund.state == "PENDING" and refund.psp_reference is None:
            await self._send_refund(refund)
        async with self._reader.connect() as conn:
            return await repo.get_refund(conn, refund_id), await repo.get_order(conn, payment_order_id)

    async def _reserve_refund(
        self, conn: AsyncConnection, payment_order_id: str, amount: int, reason: str, refund_id: str
    ) -> Any:
        order = await repo.get_order(conn, payment_order_id, for_update=True)
        if order is None:
            raise NotFound(
                "PAYMENT_ORDER_NOT_FOUND",
                f"no payment order {payment_order_id!r}",
                {"payment_order_id": payment_order_id},
            )
        if OrderState(order.state) not in CAPTURED or order.state == S.REFUNDED.value:
            raise FailedPrecondition(
                "ORDER_NOT_REFUNDABLE", f"order {payment_order_id} is {order.state}", {"state": order.state}
            )
        refundable = order.amount_minor - order.refunded_minor - order.refund_reserved_minor
        amount = amount or refundable
        if step := _off_step(amount, order.currency):
            raise InvalidArgument("AMOUNT_PRECISION_EXCEEDED", step, field="amount")
        if amount <= 0 or amount > refundable:
            raise FailedPrecondition(
                "REFUND_EXCEEDS_CAPTURED",
                f"refund of {amount} exceeds the {refundable} still refundable",
                {"refundable_minor": str(refundable)},
            )
        await repo.insert_refund(
            conn,
            {
                "refund_id": refund_id,
                "payment_order_id": payment_order_id,
                "amount_minor": amount,
                "currency": order.currency,
                "state": "PENDING",
                "reason": reason or None,
            },
        )
        await repo.update_order(
            conn, payment_order_id, refund_reserved_minor=order.refund_reserved_minor + amount
        )
        await repo.add_transition(
            conn, payment_order_id, order.state, order.state, "refund:requested", f"{refund_id} for {amount}"
        )
        return await repo.get_refund(conn, refund_id)

    @staticmethod
    async def _order_of_refund(conn: AsyncConnection, refund: Any, for_update: bool = False) -> Any:
        # A refund references its order: a missing order is a broken invariant, not a caller's error.
        order = await repo.get_order(conn, refund.payment_order_id, for_update=for_update)
        if order is None:
            raise Internal(
                "PAYMENT_ORDER_MISSING",
                f"payment order {refund.payment_order_id!r} of refund {refund.refund_id!r} is missing",
            )
        return order

    async def _send_refund(self, refund: Any) -> None:
        async with self._reader.connect() as conn:
            order = await self._order_of_refund(conn, refund)
        try:
            result = await self._psp.create_refund(
                payment_intent_id=order.psp_reference,
                amount_minor=refund.amount_minor,
                currency=refund.currency,
                reason=refund.reason,
                refund_id=refund.refund_id,
                idempotency_key=refund.refund_id,
            )
        except PspUnavailable as exc:
            log.warning(
                "refund outcome unknown; the PSP will be asked again",
                refund_id=refund.refund_id,
                error=exc.message,
            )
            return
        except PspError as exc:
            result = {
                "id": None,
                "status": "failed",
                "failure_reason": exc.code,
                "metadata": {"refund_id": refund.refund_id},
            }
        async with self._engine.begin() as conn:
            await self._apply_refund_object(
                conn, {**result, "metadata": {"refund_id": refund.refund_id}}, "psp:refund"
            )

    async def _apply_refund_object(self, conn: AsyncConnection, obj: dict, cause: str) -> list[str]:
        refund_id = (obj.get("metadata") or {}).get("refund_id")
        refund = await repo.get_refund(conn, refund_id, for_update=True) if refund_id else None
        if refund is None and obj.get("id"):
            refund = await repo.refund_by_psp_reference(conn, obj["id"])
            refund = await repo.get_refund(conn, refund.refund_id, for_update=True) if refund else None
        if refund is None:
            return []
        if obj.get("id") and refund.psp_reference is None:
            await repo.update_refund(conn, refund.refund_id, psp_reference=obj["id"])
        status = obj.get("status")
        if refund.state != "PENDING" or status not in ("succeeded", "failed", "canceled"):
            return []
        order = await self._order_of_refund(conn, refund, for_update=True)
        reserved = order.refund_reserved_minor - refund.amount_minor
        if status == "succeeded":
            await repo.update_refund(conn, refund.refund_id, state="SUCCEEDED")
            refunded = order.refunded_minor + refund.amount_minor
            target = S.REFUNDED if refunded == order.amount_minor else S.PARTIALLY_REFUNDED
            await repo.update_order(
                conn, order.payment_order_id, refunded_minor=refunded, refund_reserved_minor=reserved
            )
            await self._move(conn, order, target, cause, f"{refund.refund_id} refunded {refund.amount_minor}")
            if target == OrderState(order.state):  # PARTIALLY_REFUNDED again: still worth a history line
                await repo.add_transition(
                    conn,
                    order.payment_order_id,
                    order.state,
                    order.state,
                    cause,
                    f"{refund.refund_id} refunded {refund.amount_minor}",
                )
            await self._settlement.refund_succeeded(
                conn,
                await repo.get_order(conn, order.payment_order_id),
                await repo.get_refund(conn, refund.refund_id),
            )
        else:
            await repo.update_refund(
                conn, refund.refund_id, state="FAILED", failure_reason=obj.get("failure_reason") or status
            )
            await repo.update_order(conn, order.payment_order_id, refund_reserved_minor=reserved)
            await repo.add_transition(
                conn,
                order.payment_order_id,
                order.state,
                order.state,
                cause,
                f"{refund.refund_id} failed: {obj.get('failure_reason') or status}",
            )
        return [order.payment_order_id]
