"""Pay-outs for operators (scope ``admin``): sellers, pay-out runs, pay-outs and seller statements."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Header, Path, Query, Request, Response

from gateway import payout_schemas as ps
from gateway.guard import admin_router
from gateway.schemas import ID_PATTERN, SELLER_PATTERN
from gateway.upstream import call, mark_replayed
from svckit.gen.payments.v1 import payout_service_pb2 as pb

router = admin_router("/v1/admin", "payouts")

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255)]
SellerPath = Annotated[str, Path(pattern=SELLER_PATTERN, description="The seller account.")]
IdPath = Annotated[str, Path(pattern=ID_PATTERN)]


def _deadline(request: Request) -> float:
    return request.app.state.settings.upstream_timeout_seconds


@router.post(
    "/sellers",
    status_code=201,
    response_model=ps.SellerOut,
    summary="Register a seller for pay-outs",
    responses={
        400: {
            "description": "invalid seller (`INVALID_SELLER_ACCOUNT`, `UNKNOWN_CURRENCY`, `NEGATIVE_MINIMUM`, ...)"
        },
        409: {"description": "already registered (`SELLER_ALREADY_EXISTS`)"},
    },
)
async def register_seller(
    body: ps.SellerBody, request: Request, response: Response, idempotency_key: IdempotencyKey
) -> ps.SellerOut:
    reply, replayed = await call(
        request.app.state.upstreams.payouts.RegisterSeller, ps.register_request(body), _deadline(request)
    )
    mark_replayed(response, replayed)
    return ps.seller_out(reply.seller)


@router.get("/sellers", response_model=ps.SellerListOut, summary="Sellers, by account, optionally filtered")
async def list_sellers(
    request: Request,
    seller_account_prefix: Annotated[
        str, Query(max_length=128, description="Accounts starting with this.")
    ] = "",
    state: Annotated[Literal["active", "payouts_paused", "blocked"] | None, Query()] = None,
    page_size: Annotated[int, Query(ge=0, le=1000)] = 0,
    page_token: Annotated[str, Query(max_length=2048)] = "",
) -> ps.SellerListOut:
    reply, _ = await call(
        request.app.state.upstreams.payouts.ListSellers,
        pb.ListSellersRequest(
            seller_account_prefix=seller_account_prefix,
            state=ps.SELLER_STATES[state] if state else pb.SELLER_STATE_UNSPECIFIED,
            page_size=page_size,
            page_token=page_token,
        ),
        _deadline(request),
    )
    return ps.SellerListOut(
        sellers=[ps.seller_out(s) for s in reply.sellers], next_page_token=reply.next_page_token or None
    )


@router.get("/sellers/{seller_account}", response_model=ps.SellerOut, summary="A seller's pay-out settings")
async def get_seller(seller_account: SellerPath, request: Request) -> ps.SellerOut:
    reply, _ = await call(
        request.app.state.upstreams.payouts.GetSeller,
        pb.GetSellerRequest(seller_account=seller_account),
        _deadline(request),
    )
    return ps.seller_out(reply.seller)


@router.patch(
    "/sellers/{seller_account}",
    response_model=ps.SellerOut,
    summary="Change a seller's pay-out settings, pause, resume or block it",
    description="`state`: `payouts_paused` (needs `state_reason`), `active` (resumes) or `blocked`.",
)
async def update_seller(
    seller_account: SellerPath,
    body: ps.SellerPatch,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey,
) -> ps.SellerOut:
    payouts = request.app.state.upstreams.payouts
    update = ps.update_request(seller_account, body)
    replayed = False
    reply = None
    if update is not None:
        reply, replayed = await call(payouts.UpdateSeller, update, _deadline(request))
    if body.state == "payouts_paused":
        pause = pb.PauseSellerRequest(seller_account=seller_account, reason=body.state_reason or "")
        reply, replayed = await call(payouts.PauseSeller, pause, _deadline(request))
    if reply is None:  # an empty PATCH: the seller as it is
        reply, _ = await call(
            payouts.GetSeller, pb.GetSellerRequest(seller_account=seller_account), _deadline(request)
        )
    mark_replayed(response, replayed)
    return ps.seller_out(reply.seller)


@router.post(
    "/sellers/{seller_account}/debt-write-offs",
    status_code=201,
    response_model=ps.DebtWriteOffOut,
    summary="Write off (part of) a seller's debt as a bad debt",
    description="Posts Dr `expense:bad_debt/<CUR>` / Cr `asset:seller_receivable:<seller>/<CUR>`. "
    "A retry with the same `Idempotency-Key` writes off once.",
    responses={
        400: {
            "description": "bad amount, currency or no reason (`AMOUNT_NOT_POSITIVE`, `MISSING_FIELD`, ...)"
        },
        409: {"description": "more than the seller owes (`WRITE_OFF_EXCEEDS_DEBT`)"},
    },
)
async def write_off_debt(
    seller_account: SellerPath,
    body: ps.DebtWriteOffBody,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey,
) -> ps.DebtWriteOffOut:
    reply, replayed = await call(
        request.app.state.upstreams.payouts.WriteOffSellerDebt,
        ps.write_off_request(seller_account, body),
        _deadline(request),
    )
    mark_replayed(response, replayed)
    return ps.write_off_out(seller_account, reply)


@router.post(
    "/payout-runs",
    status_code=202,
    response_model=ps.PayoutRunOut,
    summary="Start (or, with dry_run, preview and record) the pay-out run of a period",
    description="One pay-out per seller and period, however often the run is started. A real run "
    "continues in the background: `GET /v1/admin/payout-runs/{run_id}` shows its progress.",
    responses={400: {"description": "bad or unfinished period (`INVALID_PERIOD`, `PERIOD_NOT_ENDED`)"}},
)
async def start_payout_run(
    body: ps.PayoutRunBody, request: Request, response: Response, idempotency_key: IdempotencyKey
) -> ps.PayoutRunOut:
    reply, replayed = await call(
        request.app.state.upstreams.payouts.StartPayoutRun,
        pb.StartPayoutRunRequest(
            period=body.period, dry_run=body.dry_run, seller_accounts=body.seller_accounts
        ),
        _deadline(request),
    )
    mark_replayed(response, replayed)
    return ps.run_out(reply.run)


@router.get("/payout-runs", response_model=ps.PayoutRunListOut, summary="Runs, newest first")
async def list_payout_runs(
    request: Request,
    period: Annotated[str, Query(max_length=16)] = "",
    page_size: Annotated[int, Query(ge=0, le=1000)] = 0,
    page_token: Annotated[str, Query(max_length=2048)] = "",
) -> ps.PayoutRunListOut:
    reply, _ = await call(
        request.app.state.upstreams.payouts.ListPayoutRuns,
        pb.ListPayoutRunsRequest(period=period, page_size=page_size, page_token=page_token),
        _deadline(request),
    )
    return ps.PayoutRunListOut(
        runs=[ps.run_out(r) for r in reply.runs], next_page_token=reply.next_page_token or None
    )


@router.get("/payout-runs/{run_id}", response_model=ps.PayoutRunOut, summary="A run with its progress")
async def get_payout_run(run_id: IdPath, request: Request) -> ps.PayoutRunOut:
    reply, _ = await call(
        request.app.state.upstreams.payouts.GetPayoutRun,
        pb.GetPayoutRunRequest(run_id=run_id),
        _deadline(request),
    )
    return ps.run_out(reply.run)


@router.get("/payouts", response_model=ps.PayoutListOut, summary="Pay-outs, newest first")
async def list_payouts(
    request: Request,
    seller_account: Annotated[str, Query(pattern=SELLER_PATTERN)] | None = None,
    period: Annotated[str, Query(max_length=16)] | None = None,
    state: Annotated[str, Query(max_length=32)] | None = None,
    page_size: Annotated[int, Query(ge=0, le=1000)] = 0,
    page_token: Annotated[str, Query(max_length=2048)] = "",
) -> ps.PayoutListOut:
    reply, _ = await call(
        request.app.state.upstreams.payouts.ListPayouts,
        pb.ListPayoutsRequest(
            seller_account=seller_account or "",
            period=period or "",
            state=ps.payout_state(state) if state else 0,  # type: ignore[arg-type]  # an enum number
            page_size=page_size,
            page_token=page_token,
        ),
        _deadline(request),
    )
    return ps.PayoutListOut(
        payouts=[ps.payout_out(p) for p in reply.payouts], next_page_token=reply.next_page_token or None
    )


@router.get("/payouts/{payout_id}", response_model=ps.PayoutDetailOut, summary="A pay-out with its history")
async def get_payout(payout_id: IdPath, request: Request) -> ps.PayoutDetailOut:
    reply, _ = await call(
        request.app.state.upstreams.payouts.GetPayout,
        pb.GetPayoutRequest(payout_id=payout_id),
        _deadline(request),
    )
    return ps.payout_detail_out(reply)


@router.get(
    "/sellers/{seller_account}/statements/{period}",
    response_model=ps.StatementOut,
    summary="A seller's statement of a period (JSON, or CSV with `Accept: text/csv`)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def get_statement(
    seller_account: SellerPath,
    period: Annotated[str, Path(max_length=16)],
    request: Request,
    currency: Annotated[str, Query(min_length=3, max_length=3)] | None = None,
) -> ps.StatementOut | Response:
    reply, _ = await call(
        request.app.state.upstreams.payouts.GetStatement,
        pb.GetStatementRequest(seller_account=seller_account, period=period, currency=currency or ""),
        _deadline(request),
    )
    statement = ps.statement_out(reply)
    if "text/csv" in request.headers.get("accept", ""):
        filename = f"statement-{seller_account}-{period}.csv"
        return Response(
            ps.statement_csv(statement),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return statement
