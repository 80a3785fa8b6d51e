"""PSP webhooks in: ``POST /v1/webhooks/stripe``, authenticated by its signature alone.

The signature is checked on the raw bytes (re-serialised JSON would not match). A verified event is
handed to ``PaymentService.HandlePspEvent`` with the event id as idempotency key, so a redelivery is a
replay. What the PSP is told decides whether it delivers again:

* applied, accepted (recorded durably, applied after the answer: pay-out events), ignored, or a
  replay → 200;
* a transient fault (service down, deadline, key in use by a concurrent delivery, an internal error
  or an unimplemented RPC that a deploy may fix) → a 5xx/409 problem, so the PSP retries (Stripe keeps
  trying for up to three days);
* a terminal refusal (the service understood the event and said no: INVALID_ARGUMENT, NOT_FOUND,
  FAILED_PRECONDITION, ALREADY_EXISTS, OUT_OF_RANGE) → 200 with a warning and the
  ``gateway_webhook_events_total{outcome="rejected"}`` metric. Redelivering the same bytes would get
  the same answer, and an endpoint that keeps failing is eventually disabled by the PSP, which would
  lose the good events with the poison one. The event stays listed at the PSP, and the payment
  service's janitor asks the PSP about any order it leaves stuck.
"""

from __future__ import annotations

import json
import re
import time

import grpc
import stripe
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway import metrics
from gateway.problems import ApiProblem
from gateway.upstream import call
from svckit.context import idempotency_key_var
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.grpc_errors import from_rpc_error
from svckit.logging import get_logger
from svckit.psp_signature import signature_time

log = get_logger(__name__)
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

TERMINAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
"""Refusals that a redelivery of the same event cannot change; everything else is worth a retry."""

_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")


def is_terminal(code: grpc.StatusCode) -> bool:
    return code in TERMINAL_CODES


def _event_id_for_log(payload: bytes) -> str | None:
    """The event id of an unverified body, only if it looks like one (never log attacker-chosen text)."""
    try:
        value = json.loads(payload).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and _EVENT_ID.match(value) else None


def _refuse(payload: bytes, why: str) -> ApiProblem:
    metrics.WEBHOOK_SIGNATURE_FAILURES.labels("stripe").inc()
    log.warning("webhook signature refused", provider="stripe", event_id=_event_id_for_log(payload), why=why)
    return ApiProblem(400, "INVALID_SIGNATURE", f"Stripe-Signature could not be verified: {why}")


@router.post(
    "/stripe",
    summary="Stripe webhook endpoint (signature-authenticated; no API key)",
    description=(
        "Verifies `Stripe-Signature` (HMAC-SHA256 of `{t}.{raw body}`, `t` at most 300 s from now either "
        "way) with the "
        "endpoint secret and hands the event to the payment service. 200 means: do not send it again."
    ),
    responses={
        200: {"description": "received", "content": {"application/json": {"example": {"received": True}}}},
        400: {
            "description": "missing, malformed, wrong or stale signature (`INVALID_SIGNATURE`), or a "
            "signed body that is not an event (`INVALID_PAYLOAD`)"
        },
        503: {"description": "the payment service is unavailable; the PSP retries"},
    },
)
async def stripe_webhook(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    payload = await request.body()
    signature = request.headers.get("stripe-signature")
    if settings.stripe_webhook_secret is None:
        raise _refuse(payload, "no webhook secret is configured (development)")
    if not signature:
        raise _refuse(payload, "the Stripe-Signature header is missing")
    # The SDK's own check of the signature; the event itself is only forwarded, so it is read as plain
    # JSON (building the SDK's Event object would cost more than the check).
    try:
        stripe.WebhookSignature.verify_header(
            payload,
            signature,
            settings.stripe_webhook_secret.get_secret_value(),
            tolerance=settings.webhook_tolerance_seconds,
        )
    except stripe.SignatureVerificationError as exc:
        # Messages are Stripe's ("No signatures found matching the expected signature for payload",
        # "Timestamp outside the tolerance zone", ...); they never contain the secret.
        raise _refuse(payload, str(exc.user_message or exc).split(" for payload")[0]) from None
    except (ValueError, TypeError, AttributeError):  # signed, but not UTF-8
        raise ApiProblem(400, "INVALID_PAYLOAD", "the signed body is not a JSON event") from None
    # The SDK only refuses old timestamps; one from the future would stay replayable until then.
    signed_at = signature_time(signature)
    if signed_at is None or signed_at > time.time() + settings.webhook_tolerance_seconds:
        raise _refuse(payload, "Timestamp outside the tolerance zone (in the future)")
    try:
        event = json.loads(payload)
    except ValueError:
        raise ApiProblem(400, "INVALID_PAYLOAD", "the signed body is not a JSON event") from None
    if not isinstance(event, dict):
        raise ApiProblem(400, "INVALID_PAYLOAD", "the signed body is not a JSON event")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id) or not isinstance(event_type, str):
        raise ApiProblem(400, "INVALID_PAYLOAD", "the event has no valid id or type")

    token = idempotency_key_var.set(event_id)
    try:
        reply, replayed = await call(
            request.app.state.upstreams.payment.HandlePspEvent,
            # The signature goes along: the payment service verifies the event itself.
            pb.HandlePspEventRequest(
                event_id=event_id, event_type=event_type, payload=payload, stripe_signature=signature
            ),
            settings.webhook_upstream_timeout_seconds,
        )
    except grpc.aio.AioRpcError as exc:
        if not is_terminal(exc.code()):
            metrics.WEBHOOK_EVENTS.labels("stripe", "retry").inc()
            raise  # problems.py maps it (503 for unavailable/deadline); the PSP will deliver again
        err = from_rpc_error(exc)
        metrics.WEBHOOK_EVENTS.labels("stripe", "rejected").inc()
        log.warning(
            "webhook event rejected by the payment service; acknowledged so it is not redelivered",
            event_id=event_id,
            event_type=event_type,
            reason=err.reason,
            detail=err.message,
        )
        return JSONResponse({"received": True})
    finally:
        idempotency_key_var.reset(token)
    # accepted: recorded by the payment service to be applied shortly (pay-out events: its inbox).
    outcome = "applied" if reply.applied else "accepted" if reply.accepted else "ignored"
    metrics.WEBHOOK_EVENTS.labels("stripe", outcome).inc()
    log.info(
        "webhook event handled",
        event_id=event_id,
        event_type=event_type,
        outcome=outcome,
        replayed=replayed,
        payment_order_ids=list(reply.payment_order_ids),
    )
    return JSONResponse({"received": True})
