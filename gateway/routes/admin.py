"""Operator actions on payments (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Request, Response

from gateway import schemas
from gateway.guard import admin_router
from gateway.upstream import call, mark_replayed
from svckit.gen.payments.v1 import payment_service_pb2 as pb

router = admin_router("/v1/admin", "admin")

_DECISIONS = {"approve": pb.REVIEW_DECISION_APPROVE, "decline": pb.REVIEW_DECISION_DECLINE}


@router.post(
    "/payments/{payment_order_id}/review",
    response_model=schemas.PaymentOrderOut,
    summary="Approve or decline a payment order held for risk review",
    description="The reviewer recorded in the order history is the API key's name and id.",
    responses={
        404: {"description": "unknown order (`PAYMENT_ORDER_NOT_FOUND`)"},
        409: {"description": "the order is not waiting for review (`ORDER_NOT_IN_REVIEW`)"},
    },
)
async def review_payment_order(
    payment_order_id: Annotated[str, Path(pattern=schemas.ID_PATTERN)],
    body: schemas.ReviewBody,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255)],
) -> schemas.PaymentOrderOut:
    key = request.state.api_key
    reply, replayed = await call(
        request.app.state.upstreams.payment.ReviewPaymentOrder,
        pb.ReviewPaymentOrderRequest(
            payment_order_id=payment_order_id,
            decision=_DECISIONS[body.decision],
            reviewer=f"{key.name} ({key.id})",
            note=body.note,
        ),
        request.app.state.settings.upstream_timeout_seconds,
    )
    mark_replayed(response, replayed)
    return schemas.order_out(reply.payment_order)
