"""The buyer's pages: where 3-D Secure returns to, and a status page for a checkout.

Both are reached by a browser without an API key, so neither trusts its query string:

- ``GET /v1/payments/return?payment_intent=…`` (the PSP's ``return_url`` after 3-D Secure) looks up the
  checkout that PaymentIntent pays and answers 303 to that checkout's own ``success_url`` /
  ``cancel_url``, or to its status page when it has none. It redirects nowhere else, so it is no open
  redirect. The query also carries the PaymentIntent's client secret: the access log records the path
  only, and nothing here logs or shows the query.
- ``GET /v1/checkouts/<id>/status?token=…`` shows the checkout's orders, amounts and states, reloading
  itself while one is not final. The token is an HMAC of the checkout id under the gateway's
  ``status_page_secret``: without it a checkout id shows nothing (the same 404 as an unknown checkout),
  so the pages cannot be enumerated.

Errors are small HTML pages, never problem+json: a person reads them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from gateway.config import GatewaySettings
from gateway.upstream import call
from svckit.errors import ErrorKind
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.grpc_errors import from_rpc_error
from svckit.logging import get_logger
from svckit.money import format_amount

log = get_logger(__name__)

router = APIRouter(include_in_schema=False)

_PAYMENT_INTENT = re.compile(r"^pi_[A-Za-z0-9]{1,250}$")
_CHECKOUT_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_TOKEN_CONTEXT = b"status-page:v1:"
"""Domain separation: a status token is never also a valid HMAC of the same id for another use."""

# What a buyer reads for each state; an order not yet final keeps the page refreshing.
_STATE_TEXT = {
    pb.PAYMENT_ORDER_STATE_NOT_STARTED: "Waiting for payment",
    pb.PAYMENT_ORDER_STATE_EXECUTING: "Waiting for payment",
    pb.PAYMENT_ORDER_STATE_PENDING: "Being confirmed",
    pb.PAYMENT_ORDER_STATE_UNKNOWN: "Being confirmed",
    pb.PAYMENT_ORDER_STATE_SUCCESS: "Paid",
    pb.PAYMENT_ORDER_STATE_FAILED: "Not paid",
    pb.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED: "Partly refunded",
    pb.PAYMENT_ORDER_STATE_REFUNDED: "Refunded",
}
_NOT_FINAL = frozenset(
    {
        pb.PAYMENT_ORDER_STATE_NOT_STARTED,
        pb.PAYMENT_ORDER_STATE_EXECUTING,
        pb.PAYMENT_ORDER_STATE_PENDING,
        pb.PAYMENT_ORDER_STATE_UNKNOWN,
    }
)
_CAPTURED = frozenset(
    {
        pb.PAYMENT_ORDER_STATE_SUCCESS,
        pb.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED,
        pb.PAYMENT_ORDER_STATE_REFUNDED,
    }
)

# The pages hold a signed link (and the return URL a client secret): no cache keeps them, no Referer
# carries them to the shop's site, no script runs, nothing loads from elsewhere.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

_templates = Environment(
    loader=PackageLoader("gateway", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


class StatusLinks:
    """Signs and checks the status-page links of checkouts."""

    def __init__(self, settings: GatewaySettings) -> None:
        if settings.status_page_secret is not None:
            self._key = settings.status_page_secret.get_secret_value().encode()
        else:
            self._key = secrets.token_bytes(32)
            log.warning(
                "no GATEWAY_STATUS_PAGE_SECRET: status-page links are signed with a key of this process "
                "and stop working when it restarts"
            )
        self._public_url = settings.public_url.rstrip("/") if settings.public_url else None

    def token(self, checkout_id: str) -> str:
        digest = hmac.new(self._key, _TOKEN_CONTEXT + checkout_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def valid(self, checkout_id: str, token: str) -> bool:
        return hmac.compare_digest(self.token(checkout_id).encode(), token.encode())

    def url(self, request: Request, checkout_id: str) -> str:
        base = self._public_url or str(request.base_url).rstrip("/")
        path = f"/v1/checkouts/{quote(checkout_id, safe='')}/status"
        return f"{base}{path}?{urlencode({'token': self.token(checkout_id)})}"


def status_links(request: Request) -> StatusLinks:
    return request.app.state.status_links


def _page(template: str, status: int, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def _message(status: int, title: str, detail: str) -> HTMLResponse:
    return _page("message.html", status, title=title, detail=detail)


def _not_found() -> HTMLResponse:
    return _message(
        404, "Payment not found", "This link does not lead to a payment. Check the link you were given."
    )


def _upstream_failed(exc: grpc.aio.AioRpcError) -> HTMLResponse:
    err = from_rpc_error(exc)
    if err.kind is ErrorKind.NOT_FOUND:
        return _not_found()
    log.warning("buyer page could not read the checkout", reason=err.reason)
    return _message(
        503, "Please try again", "We cannot show this payment right now. Reload the page in a moment."
    )


@router.get("/v1/payments/return")
async def payment_return(request: Request) -> Response:
    """Where the PSP sends the buyer after 3-D Secure (the payment service's ``return_url``)."""
    payment_intent = request.query_params.get("payment_intent", "")
    if not _PAYMENT_INTENT.match(payment_intent):
        return _message(
            400, "This payment link is not valid", "The link back from your bank is incomplete or damaged."
        )
    settings: GatewaySettings = request.app.state.settings
    try:
        reply, _ = await call(
            request.app.state.upstreams.payment.GetCheckoutByPaymentIntent,
            pb.GetCheckoutByPaymentIntentRequest(payment_intent_id=payment_intent),
            settings.upstream_timeout_seconds,
        )
    except grpc.aio.AioRpcError as exc:
        return _upstream_failed(exc)
    event: pb.PaymentEvent = reply.payment_event
    paid = _redirect_says_paid(event, request.query_params.get("redirect_status", ""))
    target = (event.success_url if paid else event.cancel_url) or status_links(request).url(
        request, event.checkout_id
    )
    return RedirectResponse(target, status_code=303, headers=_PAGE_HEADERS)


def _redirect_says_paid(event: pb.PaymentEvent, redirect_status: str) -> bool:
    """Our books decide when they already know; the PSP's ``redirect_status`` only while the webhook
    has not arrived yet. Either way the shop learns the outcome from the API, not from the landing."""
    states = {o.state for o in event.payment_orders}
    if states and states <= _CAPTURED:
        return True
    if states and states <= {pb.PAYMENT_ORDER_STATE_FAILED}:
        return False
    return redirect_status in ("succeeded", "processing")


@dataclass(frozen=True)
class _OrderView:
    id: str
    seller: str
    items: list[dict[str, Any]]
    amount: str
    refunded: str | None
    state: str
    state_text: str


def _money(minor: int, currency: str) -> str:
    return f"{format_amount(minor, currency)} {currency}"


def _headline(states: set[pb.PaymentOrderState]) -> str:
    if states & _NOT_FINAL:
        return "Your payment is being processed"
    if states <= _CAPTURED:
        return "Thank you, your payment is complete"
    if states <= {pb.PAYMENT_ORDER_STATE_FAILED}:
        return "Your payment did not go through"
    return "Part of your payment did not go through"


@router.get("/v1/checkouts/{checkout_id}/status")
async def checkout_status(checkout_id: str, request: Request) -> Response:
    """The buyer's status page of a checkout, reached through its signed link."""
    token = request.query_params.get("token", "")
    if not _CHECKOUT_ID.match(checkout_id) or not status_links(request).valid(checkout_id, token):
        return _not_found()  # a wrong token looks exactly like an unknown checkout
    settings: GatewaySettings = request.app.state.settings
    try:
        reply, _ = await call(
            request.app.state.upstreams.payment.GetCheckout,
            pb.GetCheckoutRequest(checkout_id=checkout_id),
            settings.upstream_timeout_seconds,
        )
    except grpc.aio.AioRpcError as exc:
        return _upstream_failed(exc)
    event: pb.PaymentEvent = reply.payment_event
    orders = [
        _OrderView(
            id=o.payment_order_id,
            seller=o.seller_account,
            items=[{"name": li.name, "quantity": li.quantity} for li in o.line_items],
            amount=_money(o.amount_minor, o.currency),
            refunded=_money(o.refunded_minor, o.currency) if o.refunded_minor else None,
            state=pb.PaymentOrderState.Name(o.state).removeprefix("PAYMENT_ORDER_STATE_").lower(),
            state_text=_STATE_TEXT.get(o.state, "Being confirmed"),
        )
        for o in event.payment_orders
    ]
    states = {o.state for o in event.payment_orders}
    currency = event.payment_orders[0].currency if event.payment_orders else ""
    return _page(
        "status.html",
        200,
        title="Payment status",
        headline=_headline(states),
        checkout_id=event.checkout_id,
        orders=orders,
        total=_money(sum(o.amount_minor for o in event.payment_orders), currency) if currency else "",
        refresh_seconds=settings.status_page_refresh_seconds if states & _NOT_FINAL else None,
    )
