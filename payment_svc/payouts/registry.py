"""The seller registry: register (attaching a PSP connected account, or creating one), update, pause and
resume sellers. A payment order for a seller not registered still succeeds: its money waits in the
wallet until the seller is registered and paid by a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import (
    Schedule,
    SellerRow,
    SellerSettings,
    SellerState,
    check_seller_account,
    validate_settings,
)
from payment_svc.psp import PspRejected, PspUnavailable
from payment_svc.psp_objects import AccountView
from svckit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from svckit.pagination import decode_token, encode_token, page_size

UPDATABLE = frozenset(
    {
        "psp_account",
        "payout_currency",
        "schedule",
        "anchor_day",
        "minimum_payouts",
        "reserve_bps",
        "reserve_days",
        "state",
    }
)


def _not_found(seller_account: str) -> NotFound:
    return NotFound(
        "SELLER_NOT_FOUND", f"no registered seller {seller_account!r}", {"seller_account": seller_account}
    )


class SellerRegistry:
    def __init__(self, deps: PayoutDeps) -> None:
        self._d = deps

    async def _check_psp_account(self, account: str) -> AccountView:
        """The PSP must know an account we attach: a typo would strand a seller's pay-outs."""
        try:
            return await self._d.psp.retrieve_account(account)
        except PspRejected:
            raise InvalidArgument(
                "PSP_ACCOUNT_UNKNOWN", f"the PSP has no connected account {account!r}", field="psp_account"
            ) from None
        except PspUnavailable as exc:
            raise Unavailable("UPSTREAM_UNAVAILABLE", f"the PSP could not be asked: {exc.message}") from None

    async def register(self, settings: SellerSettings, create_psp_account: bool, email: str) -> SellerRow:
        validate_settings(settings)
        checked: AccountView | None = None
        if settings.psp_account:
            checked = await self._check_psp_account(settings.psp_account)
        elif create_psp_account:
            async with self._d.store.unit() as repo:
                if await repo.get_seller(settings.seller_account) is not None:
                    raise self._exists(settings.seller_account)
            try:
                account = await self._d.psp.create_account(
                    email=email,
                    seller_account=settings.seller_account,
                    # One account per seller, however often registration is retried.
                    idempotency_key=f"seller:{settings.seller_account}:account",
                )
            except PspUnavailable as exc:
                raise Unavailable(
                    "UPSTREAM_UNAVAILABLE", f"the PSP could not be asked: {exc.message}"
                ) from None
            settings = replace(settings, psp_account=account.id)
            checked = account
        async with self._d.store.unit() as repo:
            row = await repo.insert_seller(settings)
            if row is not None and checked is not None and settings.psp_account:
                # What the PSP just said about the account: a run soon after need not ask again.
                await repo.note_psp_account(settings.psp_account, checked.payouts_enabled, datetime.now(UTC))
                row = await repo.get_seller(settings.seller_account)
        if row is None:
            raise self._exists(settings.seller_account)
        return row

    @staticmethod
    def _exists(seller_account: str) -> AlreadyExists:
        return AlreadyExists(
            "SELLER_ALREADY_EXISTS",
            f"seller {seller_account!r} is registered",
            {"seller_account": seller_account},
        )

    async def update(
        self,
        seller_account: str,
        changes: SellerSettings,
        fields: Sequence[str],
        state: SellerState | None,
        state_reason: str,
    ) -> SellerRow:
        check_seller_account(seller_account)
        unknown = sorted(set(fields) - UPDATABLE)
        if unknown or not fields:
            raise InvalidArgument(
                "INVALID_UPDATE_FIELDS",
                f"update_fields must name some of {sorted(UPDATABLE)}"
                + (f", not {unknown}" if unknown else ""),
                field="update_fields",
            )
        if "state" in fields and state not in (SellerState.ACTIVE, SellerState.BLOCKED):
            raise InvalidArgument(
                "INVALID_SELLER_STATE",
                "state can be set to ACTIVE or BLOCKED (pause with PauseSeller)",
                field="state",
            )
        async with self._d.store.unit() as repo:
            current = await repo.get_seller(seller_account)
        if current is None:
            raise _not_found(seller_account)
        new = current.settings()
        mapping = {"minimum_payouts": "minimums"}
        for name in fields:
            if name != "state":
                attr = mapping.get(name, name)
                new = replace(new, **{attr: getattr(changes, attr)})
        validate_settings(new)
        checked: AccountView | None = None
        if "psp_account" in fields and new.psp_account and new.psp_account != current.psp_account:
            checked = await self._check_psp_account(new.psp_account)
        async with self._d.store.unit() as repo:
            if await repo.get_seller(seller_account, for_update=True) is None:
                raise _not_found(seller_account)
            row = await repo.update_seller(new)
            if checked is not None and new.psp_account:
                await repo.note_psp_account(new.psp_account, checked.payouts_enabled, datetime.now(UTC))
            if "state" in fields and state is not None:
                updated = await repo.set_seller_state(seller_account, state, state_reason)
                assert updated is not None  # locked above
                row = updated
        return row

    async def get(self, seller_account: str) -> SellerRow:
        check_seller_account(seller_account)
        async with self._d.store.unit() as repo:
            row = await repo.get_seller(seller_account)
        if row is None:
            raise _not_found(seller_account)
        return row

    async def list(
        self, requested_size: int, token: str, prefix: str = "", state: SellerState | None = None
    ) -> tuple[list[SellerRow], str]:
        """A page of sellers in account order, of those starting with ``prefix`` in ``state``."""
        size = page_size(requested_size, default=100, maximum=1000)
        if len(prefix) > 128:
            raise InvalidArgument(
                "INVALID_FILTER",
                "seller_account_prefix: at most 128 characters",
                field="seller_account_prefix",
            )
        # The filters are part of the listing: a token of one filter is refused by another.
        listing = ["sellers", prefix, state.value if state else ""] if prefix or state else "sellers"
        after = decode_token(token, listing, str) or ""
        async with self._d.store.unit() as repo:
            rows = await repo.list_sellers(after, size + 1, prefix, state.value if state else "")
        more = len(rows) > size
        rows = rows[:size]
        return rows, encode_token(listing, rows[-1].seller_account) if more else ""

    async def pause(self, seller_account: str, reason: str) -> SellerRow:
        if not reason.strip():
            raise InvalidArgument("MISSING_FIELD", "a pause needs a reason", field="reason")
        current = await self.get(seller_account)
        if current.state is SellerState.BLOCKED:
            raise FailedPrecondition("SELLER_BLOCKED", f"seller {seller_account!r} is blocked by risk")
        async with self._d.store.unit() as repo:
            row = await repo.set_seller_state(
                seller_account, SellerState.PAYOUTS_PAUSED, reason.strip()[:500]
            )
        assert row is not None  # exists (sellers are never deleted)
        return row

    async def resume(self, seller_account: str) -> SellerRow:
        current = await self.get(seller_account)
        if current.state is SellerState.BLOCKED:
            raise FailedPrecondition("SELLER_BLOCKED", f"seller {seller_account!r} is blocked by risk")
        async with self._d.store.unit() as repo:
            row = await repo.set_seller_state(seller_account, SellerState.ACTIVE, "")
        assert row is not None
        return row


def default_settings(seller_account: str) -> SellerSettings:
    return SellerSettings(seller_account, None, "USD", Schedule.MONTHLY, 1, {}, 0, 0)
