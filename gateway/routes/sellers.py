"""A seller's wallet for internal teams (scope ``admin``): balance and movements, read from the wallet
service; the gateway calls only its read RPCs.

Why ``admin``: a wallet is any seller's money, and no API key is bound to one seller. A ``payments`` key
belongs to a checkout client, which has no need to read sellers' balances. Should keys ever be bound to a
seller, such a key would read this route for its own seller only.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Path, Query, Request
from pydantic import BaseModel, Field

from gateway import paging, schemas
from gateway.guard import admin_router
from gateway.upstream import call
from svckit.errors import InvalidArgument
from svckit.gen.common.v1 import money_pb2
from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.money import MoneyError, format_amount, normalize_currency

router = admin_router("/v1/sellers", "sellers")


class ReferenceOut(BaseModel):
    kind: str = Field(description="payment_order, refund, payout or adjustment", examples=["payment_order"])
    id: str = Field(description="The id of that order, refund, payout or adjustment.")


class MovementOut(BaseModel):
    movement_id: str
    kind: str = Field(description="credit, debit, reserve, release or capture", examples=["credit"])
    amount: str = Field(description="Always positive; `kind` says which way it moved.", examples=["25.00"])
    currency: str
    available_after: str = Field(description="The available balance right after this movement.")
    reserved_after: str = Field(description="The reserved balance right after this movement.")
    reference: ReferenceOut
    reservation_id: str | None = Field(
        description="The pay-out reservation of a reserve, release or capture."
    )
    created_at: str | None


class WalletOut(BaseModel):
    seller_account: str
    currency: str
    available: str = Field(description="What the seller can be paid out.", examples=["122.50"])
    reserved: str = Field(description="Held for a pay-out under way.", examples=["0.00"])
    updated_at: str | None = Field(description="Time of the last movement; null for a wallet never moved.")
    movements: list[MovementOut] = Field(description="This page of movements, newest first.")
    next_page_token: str | None = Field(
        description="Pass as `page_token` for the next (older) movements; null on the last page."
    )


def _amount(money: money_pb2.Money) -> str:
    return format_amount(money.amount_minor, money.currency)


def _movement(m: pb.Movement) -> MovementOut:
    return MovementOut(
        movement_id=m.movement_id,
        kind=pb.MovementKind.Name(m.kind).removeprefix("MOVEMENT_KIND_").lower(),
        amount=_amount(m.amount),
        currency=m.amount.currency,
        available_after=_amount(m.available_after),
        reserved_after=_amount(m.reserved_after),
        reference=ReferenceOut(
            kind=pb.ReferenceKind.Name(m.reference.kind).removeprefix("REFERENCE_KIND_").lower(),
            id=m.reference.id,
        ),
        reservation_id=m.reservation_id or None,
        created_at=schemas.timestamp(m.create_time),
    )


@router.get(
    "/{seller_account}/wallet",
    response_model=WalletOut,
    summary="A seller's wallet in one currency: balances and movements, newest first",
    description=(
        "The balances are read with each page; the movements page back in time: follow "
        "`next_page_token` until it is null (a page token is valid only for the same wallet). A seller "
        "that never received money in the currency has an empty wallet (zero balances, no movements), "
        "not a 404."
    ),
    responses={
        400: {
            "description": f"bad parameter: {paging.LIST_ERRORS}, `INVALID_CURRENCY`, `UNKNOWN_CURRENCY`; "
            "`errors[].field` names it"
        },
    },
)
async def get_seller_wallet(
    seller_account: Annotated[str, Path(pattern=schemas.SELLER_PATTERN, description="The seller account.")],
    currency: Annotated[str, Query(description="ISO 4217 code of the wallet.", examples=["USD"])],
    request: Request,
    page_size: paging.PageSize = 0,
    page_token: paging.PageToken = "",
) -> WalletOut:
    try:
        code = normalize_currency(currency)
    except MoneyError as exc:
        raise InvalidArgument(exc.reason, f"currency: {exc}", field="currency") from None
    wallets = request.app.state.upstreams.wallet
    deadline = request.app.state.settings.upstream_timeout_seconds
    (wallet, _), (page, _) = await asyncio.gather(
        call(wallets.GetWallet, pb.GetWalletRequest(seller_id=seller_account, currency=code), deadline),
        call(
            wallets.ListMovements,
            pb.ListMovementsRequest(
                seller_id=seller_account,
                currency=code,
                page_size=paging.page_size(page_size),
                page_token=page_token,
            ),
            deadline,
        ),
    )
    w = wallet.wallet
    return WalletOut(
        seller_account=seller_account,
        currency=code,
        available=_amount(w.available),
        reserved=_amount(w.reserved),
        updated_at=schemas.timestamp(w.update_time),
        movements=[_movement(m) for m in page.movements],
        next_page_token=paging.next_token(page.next_page_token),
    )
