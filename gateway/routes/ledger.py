"""Operator endpoints for ledger accounts (finance staff create accounts and look them up)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.guard import bearer_scheme, guarded
from gateway.upstream import call, mark_replayed
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb

router = APIRouter(
    prefix="/v1/ledger",
    tags=["ledger"],
    route_class=guarded("admin"),
    dependencies=[Depends(bearer_scheme)],
    responses={401: {"description": "no valid API key"}, 403: {"description": "the key lacks `admin`"}},
)

_TYPES = {v: k.removeprefix("ACCOUNT_TYPE_").lower() for k, v in pb.AccountType.items()}


class CreateAccountBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=3, max_length=200, examples=["liability:seller_payable:seller_42/USD"])
    currency: str = Field(min_length=3, max_length=3, examples=["USD"])


class AccountOut(BaseModel):
    name: str
    type: str
    currency: str
    created_at: str


def _account(a: pb.Account) -> AccountOut:
    return AccountOut(
        name=a.name, type=_TYPES.get(a.type, "unspecified"), currency=a.currency,
        created_at=a.create_time.ToDatetime().isoformat() + "Z",
    )  # fmt: skip


@router.post(
    "/accounts",
    status_code=201,
    response_model=AccountOut,
    summary="Create a ledger account",
    responses={
        409: {"description": "name taken, or the idempotency key is in use"},
        422: {"description": "key reused"},
    },
)
async def create_account(
    body: CreateAccountBody,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1)],
) -> AccountOut:
    state = request.app.state
    reply, replayed = await call(
        state.upstreams.ledger.CreateAccount,
        pb.CreateAccountRequest(name=body.name, currency=body.currency),
        state.settings.upstream_timeout_seconds,
    )
    mark_replayed(response, replayed)
    return _account(reply.account)


@router.get("/accounts/{name:path}", response_model=AccountOut, summary="Fetch a ledger account by name")
async def get_account(name: str, request: Request) -> AccountOut:
    state = request.app.state
    reply, _ = await call(
        state.upstreams.ledger.GetAccount,
        pb.GetAccountRequest(name=name),
        state.settings.upstream_timeout_seconds,
    )
    return _account(reply.account)
