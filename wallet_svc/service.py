"""The wallet's use cases: reads, the five movements and batches of credits and debits. Plain values
and the unit of work in, domain values (``wallet_svc.domain``) or DomainError out; no transport.

Every change of a balance is a movement (credit, debit, reserve, release, capture) written in one
transaction of the unit of work (``wallet_svc.uow``) together with the balance change; see
``repository`` for how the non-negativity check and the change are one statement under the wallet's
row lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from svckit import pagination
from svckit.errors import DomainError, FailedPrecondition, Internal, InvalidArgument, NotFound
from svckit.idempotency import StoredAnswer
from svckit.money import Money
from svckit.protobuf import window_position
from wallet_svc import repository
from wallet_svc.domain import (
    DEFAULT_PAGE_SIZE,
    INT64_MAX,
    KIND_EFFECT,
    MAX_PAGE_SIZE,
    BatchItem,
    ItemOutcome,
    Movement,
    MovementKind,
    MovementResult,
    Page,
    Reference,
    ReferenceKind,
    Reservation,
    ReservationState,
    ShortfallResult,
    Wallet,
    next_reservation_state,
    validate_amount,
    validate_currency,
    validate_reference,
    validate_reference_filter,
    validate_reservation_id,
    validate_seller_id,
)
from wallet_svc.repository import BatchMovement, MovementSpec
from wallet_svc.uow import WalletUnitOfWork, balance_limit

# ---- row → domain --------------------------------------------------------------------------------


def _wallet(row: Any) -> Wallet:
    return Wallet(
        seller_id=row.seller_id,
        available=Money(row.available_minor, row.currency),
        reserved=Money(row.reserved_minor, row.currency),
        updated_at=row.updated_at,
    )


def _empty_wallet(seller_id: str, currency: str) -> Wallet:
    return Wallet(seller_id=seller_id, available=Money(0, currency), reserved=Money(0, currency))


def _movement(row: Any) -> Movement:
    return Movement(
        id=row.id,
        seller_id=row.seller_id,
        kind=MovementKind(row.kind),
        amount=Money(row.amount_minor, row.currency),
        available_after=Money(row.available_after_minor, row.currency),
        reserved_after=Money(row.reserved_after_minor, row.currency),
        reference=Reference(ReferenceKind(row.reference_kind), row.reference_id),
        reservation_id=row.reservation_id,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
    )


def _wallet_after(movement: Movement) -> Wallet:
    # The movement carries the balances it produced; its time is the wallet's update time
    # (both are now() of the same transaction).
    return Wallet(movement.seller_id, movement.available_after, movement.reserved_after, movement.created_at)


def _reservation(row: Any) -> Reservation:
    c = row.currency
    return Reservation(
        id=row.id,
        seller_id=row.seller_id,
        state=ReservationState(row.state),
        amount=Money(row.amount_minor, c),
        released=Money(row.released_minor, c),
        captured=Money(row.captured_minor, c),
        remaining=Money(row.remaining_minor, c),
        reference=Reference(ReferenceKind(row.reference_kind), row.reference_id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _spec(
    kind: MovementKind,
    seller_id: str,
    amount: Money,
    reference: Reference,
    idempotency_key: str,
    reservation_id: str | None = None,
) -> MovementSpec:
    da, dr = KIND_EFFECT[kind]
    return MovementSpec(
        seller_id=seller_id,
        currency=amount.currency,
        kind=kind.value,
        amount_minor=amount.amount_minor,
        available_delta_minor=da * amount.amount_minor,
        reserved_delta_minor=dr * amount.amount_minor,
        reference_kind=reference.kind.value,
        reference_id=reference.id,
        idempotency_key=idempotency_key,
        reservation_id=reservation_id,
    )


class WalletService:
    # ---- reads ----------------------------------------------------------------------------------

    async def get_wallet(self, uow: WalletUnitOfWork, seller_id: str, currency: str) -> Wallet:
        seller_id, currency = validate_seller_id(seller_id), validate_currency(currency)
        async with uow.read() as conn:
            row = await repository.get_wallet(conn, seller_id, currency)
        if row is None:
            return Wallet(seller_id, Money(0, currency), Money(0, currency))
        return _wallet(row)

    async def get_wallets(self, uow: WalletUnitOfWork, keys: Sequence[tuple[str, str]]) -> list[Wallet]:
        """:meth:`get_wallet` for many (seller_id, currency) in one read, in request order. An invalid
        item is refused with GetWallet's reason, its field naming the item."""
        checked: list[tuple[str, str]] = []
        for i, (seller_id, currency) in enumerate(keys):
            try:
                checked.append((validate_seller_id(seller_id), validate_currency(currency)))
            except InvalidArgument as err:
                field = f"wallets[{i}].{err.metadata.get('field', '')}".rstrip(".")
                raise InvalidArgument(err.reason, err.message, field=field) from None
        async with uow.read() as conn:
            rows = {(r.seller_id, r.currency): r for r in await repository.get_wallets(conn, checked)}
        return [
            _wallet(rows[key]) if key in rows else Wallet(key[0], Money(0, key[1]), Money(0, key[1]))
            for key in checked
        ]

    async def list_wallets(
        self, uow: WalletUnitOfWork, seller_id: str, page_size: int, page_token: str
    ) -> Page[Wallet]:
        seller = validate_seller_id(seller_id) if seller_id else None
        limit = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        after = pagination.decode_token(page_token, ["wallets", seller], list)
        if after is not None and not (len(after) == 2 and all(isinstance(x, str) for x in after)):
            raise InvalidArgument("INVALID_PAGE_TOKEN", "page_token is malformed", field="page_token")
        async with uow.read() as conn:
            rows = await repository.list_wallets(conn, seller, tuple(after) if after else None, limit + 1)
        items = [_wallet(r) for r in rows[:limit]]
        token = ""
        if len(rows) > limit:
            last = rows[limit - 1]
            token = pagination.encode_token(["wallets", seller], [last.seller_id, last.currency])
        return Page(items, token)

    async def list_movements(
        self,
        uow: WalletUnitOfWork,
        seller_id: str,
        currency: str,
        page_size: int,
        page_token: str,
        reference_id: str = "",
        window: tuple[datetime, datetime] | None = None,
    ) -> Page[Movement]:
        if window is not None and not seller_id and not currency:
            return await self._movements_made(uow, page_size, page_token, reference_id, window)
        seller_id, currency = validate_seller_id(seller_id), validate_currency(currency)
        if window is not None:
            return await self._movements_made(
                uow, page_size, page_token, reference_id, window, seller_id, currency
            )
        reference_id = validate_reference_filter(reference_id)
        limit = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        # The unfiltered listing keeps its old token shape, so tokens already issued stay valid.
        listing = ["movements", seller_id, currency] + ([reference_id] if reference_id else [])
        before = pagination.decode_token(page_token, listing, int)
        # A lookup by reference may decide a reconciliation mismatch: it reads the primary, never a lagging standby.
        async with uow.read() if reference_id else uow.listing_read() as conn:
            rows = await repository.list_movements(conn, seller_id, currency, before, limit + 1, reference_id)
        items = [_movement(r) for r in rows[:limit]]
        token = pagination.encode_token(listing, rows[limit - 1].id) if len(rows) > limit else ""
        return Page(items, token)

    async def _movements_made(
        self,
        uow: WalletUnitOfWork,
        page_size: int,
        page_token: str,
        reference_id: str,
        window: tuple[datetime, datetime],
        seller_id: str = "",
        currency: str = "",
    ) -> Page[Movement]:
        """Movements made in the window, oldest first: every wallet's, or one wallet's."""
        reference_id = validate_reference_filter(reference_id)
        limit = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        listing = ["made", seller_id, currency, reference_id, window[0].isoformat(), window[1].isoformat()]
        after = window_position(pagination.decode_token(page_token, listing, list), int)
        async with uow.read() as conn:
            rows = await repository.movements_made(
                conn, window, seller_id, currency, reference_id, after, limit + 1
            )
        items = [_movement(r) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        token = pagination.encode_token(listing, [last.created_at.isoformat(), last.id]) if last else ""
        return Page(items, token)

    async def get_reservation(self, uow: WalletUnitOfWork, reservation_id: str) -> Reservation:
        reservation_id = validate_reservation_id(reservation_id)
        async with uow.read() as conn:
            row = await repository.get_reservation(conn, reservation_id)
        if row is None:
            raise _reservation_not_found(reservation_id)
        return _reservation(row)

    # ---- movements --------------------------------------------------------------------------------

    async def credit(
        self,
        uow: WalletUnitOfWork,
        seller_id: str,
        amount_minor: int,
        currency: str,
        reference: tuple[ReferenceKind | None, str],
        idempotency_key: str,
    ) -> MovementResult:
        seller_id = validate_seller_id(seller_id)
        amount = validate_amount(amount_minor, currency)
        ref = validate_reference(*reference)
        spec = _spec(MovementKind.CREDIT, seller_id, amount, ref, idempotency_key)
        async with uow.transaction() as conn:
            row = await repository.record_movement(conn, spec, create_wallet=True)
        if row is None:  # an upsert always returns its row
            raise Internal("WALLET_NOT_WRITTEN", "the credit did not return the wallet")
        movement = _movement(row)
        return MovementResult(movement, _wallet_after(movement))

    async def debit(
        self,
        uow: WalletUnitOfWork,
        seller_id: str,
        amount_minor: int,
        currency: str,
        reference: tuple[ReferenceKind | None, str],
        idempotency_key: str,
    ) -> MovementResult:
        seller_id = validate_seller_id(seller_id)
        amount = validate_amount(amount_minor, currency)
        ref = validate_reference(*reference)
        async with uow.transaction() as conn:
            row = await repository.record_movement(
                conn, _spec(MovementKind.DEBIT, seller_id, amount, ref, idempotency_key)
            )
            if row is None:
                raise await self._insufficient_funds(conn, seller_id, amount)
        movement = _movement(row)
        return MovementResult(movement, _wallet_after(movement))

    async def debit_up_to(
        self,
        uow: WalletUnitOfWork,
        seller_id: str,
        amount_minor: int,
        currency: str,
        reference: tuple[ReferenceKind | None, str],
        idempotency_key: str,
    ) -> ShortfallResult:
        """Debit what is available, at most the amount; the rest is the shortfall (a seller's debt,
        which the caller books). The wallet never goes negative, and a refund is never refused."""
        seller_id = validate_seller_id(seller_id)
        amount = validate_amount(amount_minor, currency)
        ref = validate_reference(*reference)
        async with uow.transaction() as conn:
            # The lock keeps a concurrent Reserve from taking what we are about to debit.
            row = await repository.get_wallet(conn, seller_id, amount.currency, for_update=True)
            available = row.available_minor if row is not None else 0
            take = min(available, amount.amount_minor)
            if take == 0:
                wallet = _wallet(row) if row is not None else _empty_wallet(seller_id, amount.currency)
                return ShortfallResult(None, wallet, amount.amount_minor)
            spec = _spec(MovementKind.DEBIT, seller_id, Money(take, amount.currency), ref, idempotency_key)
            mrow = await repository.record_movement(conn, spec)
            if mrow is None:  # the wallet is locked and holds ``take``: the books are broken
                raise Internal("WALLET_NOT_WRITTEN", "the debit of the available balance was refused")
        movement = _movement(mrow)
        return ShortfallResult(movement, _wallet_after(movement), amount.amount_minor - take)

    async def reserve(
        self,
        uow: WalletUnitOfWork,
        seller_id: str,
        amount_minor: int,
        currency: str,
        reference: tuple[ReferenceKind | None, str],
        idempotency_key: str,
    ) -> MovementResult:
        seller_id = validate_seller_id(seller_id)
        amount = validate_amount(amount_minor, currency)
        ref = validate_reference(*reference)
        reservation_id = f"rsv_{uuid.uuid4().hex}"
        spec = _spec(MovementKind.RESERVE, seller_id, amount, ref, idempotency_key, reservation_id)
        async with uow.transaction() as conn:
            rows = await repository.reserve(conn, spec)
            if rows is None:
                raise await self._insufficient_funds(conn, seller_id, amount)
        movement = _movement(rows[0])
        return MovementResult(movement, _wallet_after(movement), _reservation(rows[1]))

    async def release(
        self,
        uow: WalletUnitOfWork,
        reservation_id: str,
        amount: tuple[int, str] | None,
        reference: tuple[ReferenceKind | None, str],
        idempotency_key: str,
    ) -> MovementResult:
        return await self._settle(
            uow, MovementKind.RELEASE, reservation_id, amount, reference, idempotency_key
        )

    async def capture(
        self,
        uow: WalletUnitOfWork,
        reservation_id: str,
        amount: tuple[int, str] | None,
        reference: tuple[ReferenceKind | None, str],
        idempotency_key: str,
    ) -> MovementResult:
        return await self._settle(
            uow, MovementKind.CAPTURE, reservation_id, amount, reference, idempotency_key
        )

    async def _settle(
        self,
        uow: WalletUnitOfWork,
        kind: MovementKind,
        reservation_id: str,
        amount: tuple[int, str] | None,
        reference: tuple[ReferenceKind | None, str],
        idempotency_key: str,
    ) -> MovementResult:
        """Release or capture: take a part (or all that remains) out of a reservation."""
        reservation_id = validate_reservation_id(reservation_id)
        requested = validate_amount(*amount) if amount is not None else None
        ref = validate_reference(*reference)
        async with uow.transaction() as conn:
            # Lock order is wallet, then reservation, as in Reserve (which locks the wallet and then
            # creates the reservation): no two transactions can wait on each other in a cycle.
            if await repository.lock_wallet_of_reservation(conn, reservation_id) is None:
                raise _reservation_not_found(reservation_id)
            row = await repository.get_reservation(conn, reservation_id, for_update=True)
            if row is None:
                raise _reservation_not_found(reservation_id)
            reservation = _reservation(row)
            if requested is not None and requested.currency != reservation.amount.currency:
                raise InvalidArgument(
                    "CURRENCY_MISMATCH",
                    f"reservation {reservation_id} is in {reservation.amount.currency}, not {requested.currency}",
                    field="amount.currency",
                )
            take = requested.amount_minor if requested is not None else reservation.remaining.amount_minor
            # A closed reservation has no way forward, whatever the amount (also an unset one, i.e. 0).
            state = next_reservation_state(reservation, take)
            updated = await repository.settle_reservation(
                conn,
                reservation_id,
                released_minor=take if kind is MovementKind.RELEASE else 0,
                captured_minor=take if kind is MovementKind.CAPTURE else 0,
                state=state.value,
            )
            spec = _spec(kind, reservation.seller_id, Money(take, reservation.amount.currency), ref, idempotency_key,
                         reservation_id)  # fmt: skip
            mrow = await repository.record_movement(conn, spec)
            if mrow is None:
                # reserved always covers the open reservations; if not, the books are broken: refuse loudly.
                raise Internal(
                    "WALLET_RESERVED_BELOW_RESERVATIONS",
                    f"wallet of reservation {reservation_id} holds less reserved money than the reservation",
                )
        movement = _movement(mrow)
        return MovementResult(movement, _wallet_after(movement), _reservation(updated))

    async def _insufficient_funds(
        self, conn: AsyncConnection, seller_id: str, amount: Money
    ) -> FailedPrecondition:
        row = await repository.get_wallet(conn, seller_id, amount.currency)
        return _insufficient(row.available_minor if row is not None else 0, amount)

    # ---- batches ----------------------------------------------------------------------------------

    async def apply_batch(
        self, uow: WalletUnitOfWork, items: Sequence[BatchItem | DomainError]
    ) -> list[ItemOutcome]:
        """Apply credits, debits, reservations and captures, each on its own, in one transaction; one
        outcome per item.

        Every item gets exactly the answer its single call would get at that point, in the same order
        of checks: the key's stored answer (replay, or IDEMPOTENCY_KEY_REUSED), then
        IDEMPOTENCY_KEY_IN_USE, then validation, then (captures) the reservation, then funds/limits
        against the running balances. An item given as a DomainError was refused by the caller (bad
        key, duplicate) and is passed through. The (scope, key) pairs must be distinct. A few
        statements whatever the size: probe the keys, read the captures' reservations, lock the
        wallets (fixed order) and draw movement ids, lock the reservations, write balances,
        reservations, movements and answers.
        """
        return await uow.batch(lambda unit: self._apply_batch(unit, items))

    async def _apply_batch(
        self, uow: WalletUnitOfWork, items: Sequence[BatchItem | DomainError]
    ) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome | None] = [None] * len(items)
        keyed = [(i, item) for i, item in enumerate(items) if not isinstance(item, DomainError)]
        for i, item in enumerate(items):
            if isinstance(item, DomainError):
                outcomes[i] = item
        probes = await uow.probe_keys([item.key for _, item in keyed])

        pending: list[tuple[int, BatchItem, MovementSpec]] = []
        captures: list[tuple[int, BatchItem, Reference, Money | None]] = []
        for (i, item), probe in zip(keyed, probes, strict=True):
            if probe is not None:  # the stored answer, or the key's refusal
                outcomes[i] = probe
                continue
            try:
                if item.kind is MovementKind.CAPTURE:
                    validate_reservation_id(item.reservation_id)
                    requested = (
                        validate_amount(item.amount_minor, item.currency) if item.amount_given else None
                    )
                    captures.append((i, item, validate_reference(*item.reference), requested))
                    continue
                seller_id = validate_seller_id(item.seller_id)
                amount = validate_amount(item.amount_minor, item.currency)
                ref = validate_reference(*item.reference)
            except DomainError as err:
                outcomes[i] = err
                continue
            # A reservation's id is drawn now, as the single Reserve does before its statement.
            rsv = f"rsv_{uuid.uuid4().hex}" if item.kind is MovementKind.RESERVE else None
            pending.append((i, item, _spec(item.kind, seller_id, amount, ref, item.key.key, rsv)))

        if pending or captures:
            await self._apply_pending(uow, pending, captures, outcomes)
        done = [o for o in outcomes if o is not None]
        if len(done) != len(outcomes):
            raise RuntimeError("a batch item was left without an outcome")
        return done

    async def _apply_pending(
        self,
        uow: WalletUnitOfWork,
        pending: list[tuple[int, BatchItem, MovementSpec]],
        captures: list[tuple[int, BatchItem, Reference, Money | None]],
        outcomes: list[ItemOutcome | None],
    ) -> None:
        async with uow.transaction() as conn:
            # The wallets of the captures' reservations (a reservation never changes wallet).
            found = await repository.reservation_wallets(
                conn, [it.reservation_id for _, it, _, _ in captures]
            )
            # Only a credit may create a wallet (as with the single RPCs).
            create: dict[tuple[str, str], bool] = {}
            for _, item, spec in pending:
                wallet = (spec.seller_id, spec.currency)
                create[wallet] = create.get(wallet, False) or item.kind is MovementKind.CREDIT
            for _, item, _, _ in captures:
                if item.reservation_id in found:
                    create.setdefault(found[item.reservation_id], False)
            locked = await repository.lock_wallets(
                conn, list(create), list(create.values()), len(pending) + len(captures)
            )
            # Wallet before reservation: the one lock order (see _settle).
            reservations = {
                row.id: _reservation(row) for row in await repository.lock_reservations(conn, sorted(found))
            }

            # Decide in request order against the running balances and reservations, under the locks.
            work: list[tuple[int, BatchItem, MovementSpec | None, tuple[Reference, Money | None] | None]] = [
                (i, item, spec, None) for i, item, spec in pending
            ] + [(i, item, None, (ref, requested)) for i, item, ref, requested in captures]
            work.sort(key=lambda w: w[0])
            balances = dict(locked.balances)
            ids = iter(locked.movement_ids)
            accepted: list[BatchMovement] = []
            deltas: dict[tuple[str, str], tuple[int, int]] = {}
            opened: list[Reservation] = []
            settled: dict[str, Reservation] = {}
            for i, item, planned, capture in work:
                reservation: Reservation | None = None
                if capture is not None:
                    try:
                        spec, reservation = self._capture_item(item, capture, reservations, locked.now)
                    except DomainError as err:
                        outcomes[i] = err
                        continue
                else:
                    assert planned is not None  # every non-capture item was planned above
                    spec = planned
                wallet = (spec.seller_id, spec.currency)
                available, reserved = balances.get(wallet, (0, 0))
                after, reserved_after = (
                    available + spec.available_delta_minor,
                    reserved + spec.reserved_delta_minor,
                )
                if after > INT64_MAX or reserved_after > INT64_MAX:
                    outcomes[i] = balance_limit()
                    continue
                if after < 0 or (item.kind is MovementKind.RESERVE and wallet not in balances):
                    outcomes[i] = _insufficient(available, Money(spec.amount_minor, spec.currency))
                    continue
                if reserved_after < 0:
                    # reserved always covers the open reservations; if not, the books are broken.
                    outcomes[i] = Internal(
                        "WALLET_RESERVED_BELOW_RESERVATIONS",
                        f"wallet of reservation {spec.reservation_id} holds less reserved money than the reservation",
                    )
                    continue
                if item.kind is MovementKind.RESERVE:
                    reservation = _new_reservation(spec, locked.now)
                    opened.append(reservation)
                elif reservation is not None:  # a capture: later captures of it see this one
                    reservations[reservation.id] = settled[reservation.id] = reservation
                balances[wallet] = (after, reserved_after)
                da, dr = deltas.get(wallet, (0, 0))
                deltas[wallet] = (da + spec.available_delta_minor, dr + spec.reserved_delta_minor)
                movement = Movement(
                    id=next(ids),
                    seller_id=spec.seller_id,
                    kind=item.kind,
                    amount=Money(spec.amount_minor, spec.currency),
                    available_after=Money(after, spec.currency),
                    reserved_after=Money(reserved_after, spec.currency),
                    reference=Reference(ReferenceKind(spec.reference_kind), spec.reference_id),
                    reservation_id=spec.reservation_id,
                    idempotency_key=spec.idempotency_key,
                    created_at=locked.now,
                )
                result = MovementResult(movement, _wallet_after(movement), reservation)
                answer = uow.answer(item.key, result)
                outcomes[i] = StoredAnswer(answer, replayed=False)
                accepted.append(
                    BatchMovement(
                        id=movement.id,
                        spec=spec,
                        available_after_minor=after,
                        reserved_after_minor=reserved_after,
                        key=item.key,
                        response=answer,
                    )
                )
            if accepted and not await repository.write_batch(
                conn, accepted, deltas, locked.now, opened, list(settled.values())
            ):
                raise Internal("BATCH_NOT_WRITTEN", "a locked wallet of the batch was not updated")

    @staticmethod
    def _capture_item(
        item: BatchItem,
        capture: tuple[Reference, Money | None],
        reservations: dict[str, Reservation],
        now: datetime,
    ) -> tuple[MovementSpec, Reservation]:
        """A capture item's movement and the reservation after it, checked as ``_settle`` checks."""
        ref, requested = capture
        reservation = reservations.get(item.reservation_id)
        if reservation is None:
            raise _reservation_not_found(item.reservation_id)
        currency = reservation.amount.currency
        if requested is not None and requested.currency != currency:
            raise InvalidArgument(
                "CURRENCY_MISMATCH",
                f"reservation {reservation.id} is in {currency}, not {requested.currency}",
                field="amount.currency",
            )
        take = requested.amount_minor if requested is not None else reservation.remaining.amount_minor
        state = next_reservation_state(reservation, take)
        spec = _spec(MovementKind.CAPTURE, reservation.seller_id, Money(take, currency), ref, item.key.key,
                     reservation.id)  # fmt: skip
        after = replace(
            reservation,
            state=state,
            captured=Money(reservation.captured.amount_minor + take, currency),
            remaining=Money(reservation.remaining.amount_minor - take, currency),
            updated_at=now,
        )
        return spec, after


def _new_reservation(spec: MovementSpec, now: datetime) -> Reservation:
    assert spec.reservation_id is not None
    amount = Money(spec.amount_minor, spec.currency)
    return Reservation(
        id=spec.reservation_id,
        seller_id=spec.seller_id,
        state=ReservationState.OPEN,
        amount=amount,
        released=Money(0, spec.currency),
        captured=Money(0, spec.currency),
        remaining=amount,
        reference=Reference(ReferenceKind(spec.reference_kind), spec.reference_id),
        created_at=now,
        updated_at=now,
    )


def _insufficient(available_minor: int, amount: Money) -> FailedPrecondition:
    return FailedPrecondition(
        "INSUFFICIENT_FUNDS",
        f"available is {Money(available_minor, amount.currency)}; {amount} requested",
        {
            "available_minor": available_minor,
            "requested_minor": amount.amount_minor,
            "currency": amount.currency,
        },
    )


def _reservation_not_found(reservation_id: str) -> NotFound:
    return NotFound(
        "RESERVATION_NOT_FOUND", f"no reservation {reservation_id!r}", {"reservation_id": reservation_id}
    )
