"""The PSP port and its Stripe adapter (the unmodified ``stripe`` SDK, pointed at a configurable base URL).

Every call that moves money carries our own id as the PSP idempotency key, so a retry — by a client
re-sending the same request, or by the janitor — can never charge twice; and since the PSP forgets a key
after 24 h, a create resent after a lost answer first asks the PSP whether the earlier attempt made it
(``StripePsp._create_once``). Errors come out
as three kinds, because they mean three different things for an order:

    PspError
    ├── PspDeclined     the PSP refused the payment (card declined, blocked): final for direct mode
    ├── PspRejected     the PSP refused our request as invalid: final, and a bug or bad token
    └── PspUnavailable  we do not know what happened (timeout, connection drop, 5xx, 409, 429):
                        the order becomes UNKNOWN and the janitor asks again with the same key

One module past the usual size: the port and its one adapter side by side, so every call's
idempotency key and error translation can be checked against the port in one place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import aiohttp
import stripe

from payment_svc import psp_objects
from payment_svc.psp_objects import (
    AccountView,
    CheckoutSessionView,
    PaymentIntentView,
    PayoutView,
    RefundView,
    TransferView,
)
from svckit.logging import get_logger

if TYPE_CHECKING:
    from stripe.params import PaymentIntentListParams, RefundCreateParams, RefundListParams
    from stripe.params.checkout import SessionCreateParams

log = get_logger(__name__)

T = TypeVar("T")

RESEND_BACKOFF_SECONDS = 0.5
"""The first pause before a create whose outcome is unknown is looked up and sent again; doubled each time."""

PRODUCT_NAME_MAX_LENGTH = 250
"""The longest product name this adapter sends (a whole order's items can add up to more)."""


class PspError(Exception):
    def __init__(self, code: str, message: str, payment_intent: PaymentIntentView | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.payment_intent = payment_intent


class PspDeclined(PspError):
    pass


class PspRejected(PspError):
    pass


class PspUnavailable(PspError):
    def __init__(self, code: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(code, message)
        self.retryable = retryable
        """Whether sending again may help, by the SDK's rule (the PSP's ``Stripe-Should-Retry``)."""


@dataclass(frozen=True)
class LineItem:
    payment_order_id: str
    seller_account: str
    amount_minor: int
    bought: list[dict[str, Any]] = field(default_factory=list)
    """What the buyer bought in this order (``{"name", "quantity"}``), as the client sent it."""

    def display_name(self) -> str:
        """What the hosted page shows for the order: its items ("2 \u00d7 Lamp, Shade"), or the order id
        when the client sent none. One PSP line item per order, since the order's amount is what is
        charged and the items carry no prices of their own."""
        if not self.bought:
            return f"Order {self.payment_order_id}"
        text = ", ".join(
            f"{item['quantity']} \u00d7 {item['name']}" if item["quantity"] != 1 else item["name"]
            for item in self.bought
        )
        if len(text) > PRODUCT_NAME_MAX_LENGTH:
            text = text[: PRODUCT_NAME_MAX_LENGTH - 1].rstrip() + "…"
        return text


@dataclass(frozen=True)
class HostedSession:
    session_id: str
    url: str
    payment_intent_id: str | None


class PspPort(Protocol):
    async def close(self) -> None:
        """Release connections; the port is not used afterwards."""
        ...

    async def create_checkout_session(
        self,
        *,
        checkout_id: str,
        currency: str,
        items: list[LineItem],
        success_url: str,
        cancel_url: str,
        customer_email: str | None,
        idempotency_key: str,
    ) -> HostedSession: ...

    async def create_payment_intent(
        self,
        *,
        checkout_id: str,
        payment_order_ids: Sequence[str],
        amount_minor: int,
        currency: str,
        payment_method: str,
        return_url: str | None,
        idempotency_key: str,
    ) -> PaymentIntentView:
        """Create and confirm one PaymentIntent for the checkout's orders (their sum)."""
        ...

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentView: ...

    async def find_payment_intent(self, checkout_id: str, created_since: int) -> PaymentIntentView | None: ...

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSessionView: ...

    async def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount_minor: int,
        currency: str,
        reason: str | None,
        refund_id: str,
        idempotency_key: str,
    ) -> RefundView: ...

    async def find_refund(self, payment_intent_id: str, refund_id: str) -> RefundView | None: ...

    async def create_account(
        self, *, email: str, seller_account: str, idempotency_key: str
    ) -> AccountView: ...

    async def retrieve_account(self, account_id: str) -> AccountView: ...

    async def create_transfer(
        self, *, amount_minor: int, currency: str, destination: str, payout_id: str, idempotency_key: str
    ) -> TransferView: ...

    async def create_payout(
        self, *, amount_minor: int, currency: str, account: str, payout_id: str, idempotency_key: str
    ) -> PayoutView: ...

    async def find_transfer(self, payout_id: str) -> TransferView | None: ...

    async def find_payout(self, account: str, payout_id: str) -> PayoutView | None: ...

    async def retrieve_payout(self, psp_payout_id: str, account: str) -> PayoutView: ...

    async def reverse_transfer(
        self, *, transfer_id: str, amount_minor: int, currency: str, payout_id: str, idempotency_key: str
    ) -> str: ...


# Stripe's API unit differs from the ISO 4217 minor unit we keep for a few currencies: ISK is
# two-decimal at Stripe (100 = 1 króna) but has no minor unit in ISO 4217. Every amount leaves for
# the PSP through this, and the payment service reads no amount back from the PSP's objects.
_STRIPE_SCALE: dict[str, int] = {"ISK": 100}


def stripe_amount(amount_minor: int, currency: str) -> int:
    """Our ISO minor units of ``currency`` as the integer Stripe's API expects."""
    return amount_minor * _STRIPE_SCALE.get(currency.upper(), 1)


def iso_amount(stripe_units: int, currency: str) -> int | None:
    """Stripe's integer amount of ``currency`` as our ISO minor units; None when it is not a whole number
    of them (an amount only the PSP knows, such as a dispute's)."""
    scale = _STRIPE_SCALE.get(currency.upper(), 1)
    return stripe_units // scale if stripe_units % scale == 0 else None


# Stripe's metadata limits: 50 keys, values of at most 500 characters.
METADATA_VALUE_MAX_CHARS = 500


def intent_metadata(checkout_id: str, payment_order_ids: Sequence[str]) -> Mapping[str, str]:
    """A checkout's PaymentIntent metadata: the checkout id, and its orders' ids when they fit in one
    value (our database maps the PaymentIntent to its orders either way)."""
    metadata = {"checkout_id": checkout_id}
    joined = ",".join(payment_order_ids)
    if len(joined) <= METADATA_VALUE_MAX_CHARS:
        metadata["payment_order_ids"] = joined
    return metadata


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, stripe.StripeResponse):  # a raw request's answer, already plain JSON
        return cast(dict[str, Any], obj.data)
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _may_retry(exc: stripe.StripeError) -> bool:
    """The SDK's rule for an answered request: the PSP's ``Stripe-Should-Retry`` decides, else retry."""
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    return headers.get("stripe-should-retry") != "false"


class StripePsp:
    """PspPort over ``stripe.StripeClient`` (async methods, aiohttp transport, bounded timeouts and retries)."""

    def __init__(self, api_key: str, base_url: str, timeout_seconds: float, max_network_retries: int) -> None:
        # aiohttp rather than the SDK's default httpx transport: a third of the client CPU per call
        # (0.8 vs 2.6 ms for a create-and-confirm on this machine), the largest single cost of a pay-in.
        self._http = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=timeout_seconds))
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": base_url.rstrip("/")},
            max_network_retries=max_network_retries,
            http_client=self._http,
        )
        self._resends = max_network_retries

    async def _create_once(
        self,
        what: str,
        send: Callable[[], Awaitable[Any]],
        find: Callable[[], Awaitable[T | None]],
        parse: Callable[[dict[str, Any]], T],
    ) -> T:
        """Send a create that moves money, and before each resend after an unknown outcome ask the PSP
        whether the earlier attempt made the object (``find``, by our ids in its metadata).

        ``send`` must switch off the SDK's own retries: they resend under the same idempotency key and
        trust the PSP to still know it, which it does not once its 24 h are over (chaos seed 324: the
        answer was lost, the PSP's clock passed the key's age before the SDK's retry, a second charge).
        A resend goes only after a look-up that answered "none"; when the look-up fails too, the last
        error is raised and the janitor asks again later."""
        pause = RESEND_BACKOFF_SECONDS
        for attempt in range(self._resends + 1):
            if attempt:
                await asyncio.sleep(pause)
                pause *= 2
                try:
                    found = await find()
                except PspUnavailable:
                    continue  # still unknown: not resent blind
                if found is not None:
                    log.info("create found at the PSP after a lost answer", what=what)
                    return found
            try:
                return parse(await self._call(what, send()))
            except PspUnavailable as exc:
                unknown = exc
                if not exc.retryable:
                    break
        raise unknown

    async def close(self) -> None:
        await self._http.close_async()

    async def _call(self, what: str, coro: Any) -> dict[str, Any]:
        try:
            return _as_dict(await coro)
        except stripe.CardError as exc:
            err = exc.error
            code = getattr(err, "decline_code", None) or exc.code or "card_declined"
            pi = getattr(err, "payment_intent", None)
            raise PspDeclined(
                code, exc.user_message or str(exc), psp_objects.payment_intent(_as_dict(pi)) if pi else None
            ) from None
        except stripe.APIConnectionError as exc:
            raise PspUnavailable(
                "psp_unreachable", f"{what}: {exc.user_message or exc}", retryable=exc.should_retry
            ) from None
        except stripe.RateLimitError as exc:
            raise PspUnavailable(
                "psp_unreachable", f"{what}: {exc.user_message or exc}", retryable=_may_retry(exc)
            ) from None
        except stripe.IdempotencyError as exc:
            # Same key, different parameters: our own bug, never a reason to charge again.
            raise PspRejected("idempotency_error", f"{what}: {exc.user_message or exc}") from None
        except stripe.InvalidRequestError as exc:
            raise PspRejected(exc.code or "invalid_request", f"{what}: {exc.user_message or exc}") from None
        except stripe.AuthenticationError as exc:
            raise PspUnavailable("psp_authentication", f"{what}: {exc.user_message or exc}") from None
        except (
            stripe.APIError
        ) as exc:  # 5xx, 409 (after the SDK's retries where they are on): outcome unknown
            raise PspUnavailable(
                "psp_error",
                f"{what}: HTTP {exc.http_status}: {exc.user_message or exc}",
                retryable=_may_retry(exc),
            ) from None
        except stripe.StripeError as exc:
            raise PspUnavailable("psp_error", f"{what}: {exc}") from None

    async def create_checkout_session(
        self,
        *,
        checkout_id: str,
        currency: str,
        items: list[LineItem],
        success_url: str,
        cancel_url: str,
        customer_email: str | None,
        idempotency_key: str,
    ) -> HostedSession:
        params: SessionCreateParams = {
            "mode": "payment",
            "client_reference_id": checkout_id,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {"checkout_id": checkout_id},
            "payment_intent_data": {"metadata": {"checkout_id": checkout_id}, "transfer_group": checkout_id},
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": stripe_amount(item.amount_minor, currency),
                        "product_data": {
                            "name": item.display_name(),
                            "metadata": {
                                "payment_order_id": item.payment_order_id,
                                "seller_account": item.seller_account,
                            },
                        },
                    },
                }
                for item in items
            ],
        }
        if customer_email:
            params["customer_email"] = customer_email
        session = await self._call(
            "create checkout session",
            self._client.v1.checkout.sessions.create_async(
                params=params, options={"idempotency_key": idempotency_key}
            ),
        )
        pi = session.get("payment_intent")
        pi_id = pi.get("id") if isinstance(pi, dict) else pi
        return HostedSession(session_id=session["id"], url=session.get("url") or "", payment_intent_id=pi_id)

    async def create_payment_intent(
        self,
        *,
        checkout_id: str,
        payment_order_ids: Sequence[str],
        amount_minor: int,
        currency: str,
        payment_method: str,
        return_url: str | None,
        idempotency_key: str,
    ) -> PaymentIntentView:
        params: dict[str, Any] = {
            "amount": stripe_amount(amount_minor, currency),
            "currency": currency.lower(),
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "confirm": True,
            "transfer_group": checkout_id,
            "metadata": dict(intent_metadata(checkout_id, payment_order_ids)),
        }
        if return_url:
            params["return_url"] = return_url
        # The hot call of every direct-mode checkout goes through the SDK's raw request: the same
        # transport, retries, idempotency key and typed errors, without building StripeObjects only to
        # turn them back into dicts (about 5 % of the service's CPU per order).
        since = int(time.time()) - 300  # the PSP's clock and ours may differ
        return await self._create_once(
            "create payment intent",
            lambda: self._client.raw_request_async(
                "post",
                "/v1/payment_intents",
                idempotency_key=idempotency_key,
                max_network_retries=0,
                **params,
            ),
            lambda: self.find_payment_intent(checkout_id, since),
            psp_objects.payment_intent,
        )

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentView:
        pi = await self._call(
            "retrieve payment intent", self._client.v1.payment_intents.retrieve_async(payment_intent_id)
        )
        return psp_objects.payment_intent(pi)

    async def find_payment_intent(
        self, checkout_id: str, created_since: int, max_pages: int = 20
    ) -> PaymentIntentView | None:
        """The PaymentIntent whose metadata names our checkout, among those created since a Unix time.

        Used when a create's answer was lost and its key keeps replaying an error: the PSP may still have
        made the PaymentIntent, and our metadata is how we recognise it.
        """
        params: PaymentIntentListParams = {"limit": 100, "created": {"gte": created_since}}
        for _ in range(max_pages):
            page = await self._call(
                "list payment intents", self._client.v1.payment_intents.list_async(params=params)
            )
            for pi in page.get("data", []):
                if (pi.get("metadata") or {}).get("checkout_id") == checkout_id:
                    return psp_objects.payment_intent(pi)
            if not page.get("has_more") or not page.get("data"):
                return None
            params["starting_after"] = page["data"][-1]["id"]
        return None

    async def retrieve_checkout_session(self, session_id: str) -> CheckoutSessionView:
        session = await self._call(
            "retrieve checkout session", self._client.v1.checkout.sessions.retrieve_async(session_id)
        )
        return psp_objects.checkout_session(session)

    async def create_refund(
        self,
        *,
        payment_intent_id: str,
        amount_minor: int,
        currency: str,
        reason: str | None,
        refund_id: str,
        idempotency_key: str,
    ) -> RefundView:
        params: RefundCreateParams = {
            "payment_intent": payment_intent_id,
            "amount": stripe_amount(amount_minor, currency),
            "metadata": {"refund_id": refund_id},
        }
        if reason:
            params["reason"] = reason
        return await self._create_once(
            "create refund",
            lambda: self._client.v1.refunds.create_async(
                params=params, options={"idempotency_key": idempotency_key, "max_network_retries": 0}
            ),
            lambda: self.find_refund(payment_intent_id, refund_id),
            psp_objects.refund,
        )

    async def find_refund(
        self, payment_intent_id: str, refund_id: str, max_pages: int = 20
    ) -> RefundView | None:
        """The PaymentIntent's refund whose metadata names our refund, if the PSP made one.

        Used when a refund's answer was lost and its key may keep replaying a stored error (the PSP
        refunded, then failed to answer): the refunds of the intent are how we recognise it.
        """
        params: RefundListParams = {"payment_intent": payment_intent_id, "limit": 100}
        for _ in range(max_pages):
            page = await self._call("list refunds", self._client.v1.refunds.list_async(params=params))
            for refund in page.get("data", []):
                if (refund.get("metadata") or {}).get("refund_id") == refund_id:
                    return psp_objects.refund(refund)
            if not page.get("has_more") or not page.get("data"):
                return None
            params["starting_after"] = page["data"][-1]["id"]
        return None

    # -- Connect: accounts, transfers and payouts (pay-outs to sellers) --------------------------

    async def create_account(self, *, email: str, seller_account: str, idempotency_key: str) -> AccountView:
        params: dict[str, Any] = {"type": "custom", "metadata": {"seller_account": seller_account}}
        if email:
            params["email"] = email
        acct = await self._call(
            "create account",
            self._client.v1.accounts.create_async(
                params=cast(Any, params), options={"idempotency_key": idempotency_key}
            ),
        )
        return psp_objects.account(acct)

    async def retrieve_account(self, account_id: str) -> AccountView:
        acct = await self._call("retrieve account", self._client.v1.accounts.retrieve_async(account_id))
        return psp_objects.account(acct)

    async def create_transfer(
        self, *, amount_minor: int, currency: str, destination: str, payout_id: str, idempotency_key: str
    ) -> TransferView:
        """Move a pay-out's amount from the platform to the seller's connected account."""
        # A run's two calls per seller go through the raw request, like the checkout's PaymentIntent:
        # no StripeObjects built only to be turned back into dicts.
        return await self._create_once(
            "create transfer",
            lambda: self._client.raw_request_async(
                "post",
                "/v1/transfers",
                idempotency_key=idempotency_key,
                max_network_retries=0,
                amount=stripe_amount(amount_minor, currency),
                currency=currency.lower(),
                destination=destination,
                transfer_group=payout_id,
                metadata={"payout_id": payout_id},
            ),
            lambda: self.find_transfer(payout_id),
            psp_objects.transfer,
        )

    async def create_payout(
        self, *, amount_minor: int, currency: str, account: str, payout_id: str, idempotency_key: str
    ) -> PayoutView:
        """Pay the amount out of the connected account to the seller's bank."""
        return await self._create_once(
            "create payout",
            lambda: self._client.raw_request_async(
                "post",
                "/v1/payouts",
                idempotency_key=idempotency_key,
                max_network_retries=0,
                stripe_account=account,
                amount=stripe_amount(amount_minor, currency),
                currency=currency.lower(),
                metadata={"payout_id": payout_id},
            ),
            lambda: self.find_payout(account, payout_id),
            lambda po: psp_objects.payout(po, account),
        )

    async def find_transfer(self, payout_id: str) -> TransferView | None:
        """The transfer a pay-out made, by its transfer group (our payout id); None when there is none.

        Asked before a resumed pay-out sends its transfer again: the PSP keeps an idempotency key 24 h,
        so a retry after that would transfer twice."""
        listed = await self._call(
            "list transfers",
            self._client.raw_request_async("get", "/v1/transfers", transfer_group=payout_id, limit=1),
        )
        found = [
            t for t in listed.get("data") or [] if (t.get("metadata") or {}).get("payout_id") == payout_id
        ]
        return psp_objects.transfer(found[0]) if found else None

    async def find_payout(self, account: str, payout_id: str) -> PayoutView | None:
        """The payout a pay-out made from the seller's connected account, by our payout id in its
        metadata (an account makes about one a period, so its latest 100 hold it); None when none."""
        listed = await self._call(
            "list payouts",
            self._client.raw_request_async("get", "/v1/payouts", stripe_account=account, limit=100),
        )
        for po in listed.get("data") or []:
            if (po.get("metadata") or {}).get("payout_id") == payout_id:
                return psp_objects.payout(po, account)
        return None

    async def retrieve_payout(self, psp_payout_id: str, account: str) -> PayoutView:
        po = await self._call(
            "retrieve payout",
            self._client.v1.payouts.retrieve_async(psp_payout_id, options={"stripe_account": account}),
        )
        return psp_objects.payout(po, account)

    async def reverse_transfer(
        self, *, transfer_id: str, amount_minor: int, currency: str, payout_id: str, idempotency_key: str
    ) -> str:
        """Bring a transfer's money back from the connected account to the platform; the reversal's id."""
        trr = await self._call(
            "reverse transfer",
            self._client.v1.transfers.reversals.create_async(
                transfer_id,
                params={
                    "amount": stripe_amount(amount_minor, currency),
                    "metadata": {"payout_id": payout_id},
                },
                options={"idempotency_key": idempotency_key},
            ),
        )
        return str(trr["id"])
