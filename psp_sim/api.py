"""Route handlers: Stripe's v1 endpoints, the hosted pages, and the ``/_sim/*`` admin API.

Handlers are synchronous on purpose: a handler runs to completion between awaits, so the state needs no
lock. Each returns a dict (JSON 200), or a :class:`Response` for HTML, redirects and files.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from psp_sim import domain, hosted, reporting, states
from psp_sim import params as P
from psp_sim.engine import PREFIX_KIND, Simulator, created_filter
from psp_sim.errors import StripeError, invalid, missing
from psp_sim.faults import FaultEngine
from psp_sim.forms import parse_params
from psp_sim.idempotency import IdempotencyStore
from psp_sim.webhooks import WebhookDispatcher


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, Any]
    body: dict[str, Any]
    raw_body: bytes
    headers: dict[str, str]
    request_id: str
    account: str | None = None
    idempotency_key: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return self.body if self.method == "POST" else self.query


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def redirect(url: str) -> Response:
    return Response(303, b"", headers=[(b"location", url.encode())])


def html(text: str, status: int = 200) -> Response:
    return Response(status, text.encode())


@dataclass
class Context:
    sim: Simulator
    faults: FaultEngine
    webhooks: WebhookDispatcher
    idempotency: IdempotencyStore


Handler = Callable[..., Any]


# ------------------------------------------------------------------------------------------ helpers


def _no_connect(req: Request) -> None:
    if req.account:
        raise invalid(
            "The simulator supports Stripe-Account only on payouts, balance, balance transactions, events "
            "and accounts.",
            param="Stripe-Account",
        )


def _expand(sim: Simulator, obj: dict[str, Any], req: Request) -> dict[str, Any]:
    paths = P.string_list(req.params, "expand")
    if not paths:
        return obj
    obj = copy.copy(obj)
    for path in paths:
        _expand_path(sim, obj, path.split("."))
    return obj


def _expand_path(sim: Simulator, obj: dict[str, Any], parts: list[str]) -> None:
    head, rest = parts[0], parts[1:]
    if head == "data" and isinstance(obj.get("data"), list):
        obj["data"] = [copy.copy(o) for o in obj["data"]]
        for item in obj["data"]:
            if rest:
                _expand_path(sim, item, rest)
        return
    value = obj.get(head)
    if isinstance(value, str) and value.split("_", 1)[0] in PREFIX_KIND and value in sim.objects:
        obj[head] = value = copy.copy(sim.objects[value])
    if rest and isinstance(value, dict):
        obj[head] = value = copy.copy(value)
        _expand_path(sim, value, rest)


def _list(
    ctx: Context,
    req: Request,
    kind: str,
    url: str,
    account: str | None = None,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    created_ok = created_filter(req.query)
    items = (
        o
        for o in ctx.sim.newest_first(kind, account)
        if created_ok(o["created"]) and (where is None or where(o))
    )
    return _expand(ctx.sim, ctx.sim.paginate(items, req.query, url), req)


# ------------------------------------------------------------------------------------------ payment intents


def pi_create(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, domain.PI_CREATE_PARAMS)
    return _expand(ctx.sim, domain.create_payment_intent(ctx.sim, req.body), req)


def pi_list(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    customer = P.string(req.query, "customer")
    return _list(
        ctx,
        req,
        "payment_intent",
        "/v1/payment_intents",
        where=(lambda o: o["customer"] == customer) if customer else None,
    )


def pi_get(ctx: Context, req: Request, pi_id: str) -> dict[str, Any]:
    _no_connect(req)
    return _expand(ctx.sim, ctx.sim.get("payment_intent", pi_id, "payment_intent"), req)


def pi_update(ctx: Context, req: Request, pi_id: str) -> dict[str, Any]:
    _no_connect(req)
    pi = ctx.sim.get("payment_intent", pi_id, "payment_intent")
    P.check_known(
        req.body,
        frozenset(
            {
                "metadata",
                "description",
                "payment_method",
                "amount",
                "expand",
                "transfer_group",
                "receipt_email",
            }
        ),
    )
    states.require(pi, "update")
    if "metadata" in req.body:
        meta = dict(pi["metadata"])
        for k, v in P.mapping(req.body, "metadata").items():
            if v == "":
                meta.pop(k, None)
            else:
                meta[k] = v
        pi["metadata"] = meta
    for key in ("description", "transfer_group", "receipt_email"):
        if key in req.body:
            pi[key] = P.string(req.body, key)
    if P.integer(req.body, "amount", minimum=1):
        pi["amount"] = P.integer(req.body, "amount")
    if payment_method := P.string(req.body, "payment_method"):
        pi["payment_method"], _ = domain.resolve_payment_method(ctx.sim, payment_method)
        if pi["status"] == "requires_payment_method":
            states.move(pi, "requires_confirmation")
    return _expand(ctx.sim, pi, req)


def pi_confirm(ctx: Context, req: Request, pi_id: str) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, domain.PI_CONFIRM_PARAMS)
    pi = ctx.sim.get("payment_intent", pi_id, "payment_intent")
    return _expand(ctx.sim, domain.confirm_payment_intent(ctx.sim, pi, req.body), req)


def pi_cancel(ctx: Context, req: Request, pi_id: str) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, frozenset({"cancellation_reason", "expand"}))
    pi = ctx.sim.get("payment_intent", pi_id, "payment_intent")
    return _expand(ctx.sim, domain.cancel_payment_intent(ctx.sim, pi, req.body), req)


def pi_capture(ctx: Context, req: Request, pi_id: str) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, frozenset({"amount_to_capture", "expand", "metadata"}))
    pi = ctx.sim.get("payment_intent", pi_id, "payment_intent")
    return _expand(ctx.sim, domain.capture_payment_intent(ctx.sim, pi, req.body), req)


# ------------------------------------------------------------------------------------------ other objects


def pm_create(ctx: Context, req: Request) -> dict[str, Any]:
    P.check_known(req.body, frozenset({"type", "card", "billing_details", "metadata", "expand"}))
    return domain.create_payment_method(ctx.sim, req.body)


def _getter(kind: str, noun: str, connect: bool = False) -> Handler:
    def get(ctx: Context, req: Request, obj_id: str) -> dict[str, Any]:
        if not connect:
            _no_connect(req)
        return _expand(ctx.sim, ctx.sim.get(kind, obj_id, noun, req.account if connect else None), req)

    return get


def dispute_update(ctx: Context, req: Request, dp_id: str) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, domain.DISPUTE_UPDATE_PARAMS)
    dp = ctx.sim.get("dispute", dp_id, "dispute")
    return _expand(ctx.sim, domain.update_dispute(ctx.sim, dp, req.body), req)


def dispute_close(ctx: Context, req: Request, dp_id: str) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, frozenset({"expand"}))
    dp = ctx.sim.get("dispute", dp_id, "dispute")
    return _expand(ctx.sim, domain.close_dispute(ctx.sim, dp), req)


def cs_create(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, domain.CS_CREATE_PARAMS)
    return _expand(ctx.sim, domain.create_checkout_session(ctx.sim, req.body), req)


def cs_expire(ctx: Context, req: Request, cs_id: str) -> dict[str, Any]:
    _no_connect(req)
    cs = ctx.sim.get("checkout.session", cs_id, "checkout.session")
    return _expand(ctx.sim, domain.expire_checkout_session(ctx.sim, cs), req)


def cs_list(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    pi = P.string(req.query, "payment_intent")
    return _list(
        ctx,
        req,
        "checkout.session",
        "/v1/checkout/sessions",
        where=(lambda o: o["payment_intent"] == pi) if pi else None,
    )


def refund_create(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, domain.REFUND_PARAMS)
    return _expand(ctx.sim, domain.create_refund(ctx.sim, req.body), req)


def refund_list(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    pi, ch = P.string(req.query, "payment_intent"), P.string(req.query, "charge")
    return _list(
        ctx,
        req,
        "refund",
        "/v1/refunds",
        where=lambda o: (not pi or o["payment_intent"] == pi) and (not ch or o["charge"] == ch),
    )


def charge_list(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    pi = P.string(req.query, "payment_intent")
    return _list(
        ctx, req, "charge", "/v1/charges", where=(lambda o: o["payment_intent"] == pi) if pi else None
    )


def account_create(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, domain.ACCOUNT_PARAMS)
    return domain.create_account(ctx.sim, req.body)


def account_get(ctx: Context, req: Request, acct_id: str) -> dict[str, Any]:
    obj = ctx.sim.objects.get(acct_id)
    if obj is None or obj["object"] != "account":
        raise missing("account", acct_id)
    return obj


def transfer_create(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, domain.TRANSFER_PARAMS)
    return _expand(ctx.sim, domain.create_transfer(ctx.sim, req.body), req)


def transfer_list(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    dest, group = P.string(req.query, "destination"), P.string(req.query, "transfer_group")
    return _list(
        ctx,
        req,
        "transfer",
        "/v1/transfers",
        where=lambda o: (
            (not dest or o["destination"] == dest) and (not group or o["transfer_group"] == group)
        ),
    )


def transfer_reversal_create(ctx: Context, req: Request, tr_id: str) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, domain.TRANSFER_REVERSAL_PARAMS)
    return _expand(ctx.sim, domain.create_transfer_reversal(ctx.sim, tr_id, req.body), req)


def transfer_reversal_list(ctx: Context, req: Request, tr_id: str) -> dict[str, Any]:
    _no_connect(req)
    ctx.sim.get("transfer", tr_id, "transfer")
    return _list(
        ctx,
        req,
        "transfer_reversal",
        f"/v1/transfers/{tr_id}/reversals",
        where=lambda o: o["transfer"] == tr_id,
    )


def transfer_reversal_get(ctx: Context, req: Request, tr_id: str, trr_id: str) -> dict[str, Any]:
    _no_connect(req)
    trr = ctx.sim.get("transfer_reversal", trr_id, "transfer_reversal")
    if trr["transfer"] != tr_id:
        raise missing("transfer_reversal", trr_id)
    return _expand(ctx.sim, trr, req)


def payout_create(ctx: Context, req: Request) -> dict[str, Any]:
    P.check_known(req.body, domain.PAYOUT_PARAMS)
    if req.account:
        domain._account_or_create(ctx.sim, req.account, "Stripe-Account")
    return _expand(ctx.sim, domain.create_payout(ctx.sim, req.body, req.account), req)


def payout_list(ctx: Context, req: Request) -> dict[str, Any]:
    status = P.string(req.query, "status")
    return _list(
        ctx,
        req,
        "payout",
        "/v1/payouts",
        account=req.account,
        where=(lambda o: o["status"] == status) if status else None,
    )


def bt_list(ctx: Context, req: Request) -> dict[str, Any]:
    sim = ctx.sim
    payout, type_ = P.string(req.query, "payout"), P.string(req.query, "type")
    source, currency = P.string(req.query, "source"), P.string(req.query, "currency")
    if payout:
        sim.get("payout", payout, "payout", req.account)

    def where(o: dict[str, Any]) -> bool:
        return (
            (not payout or sim.bt_payout.get(o["id"]) == payout)
            and (not type_ or o["type"] == type_)
            and (not source or o["source"] == source)
            and (not currency or o["currency"] == currency)
        )

    return _list(
        ctx, req, "balance_transaction", "/v1/balance_transactions", account=req.account, where=where
    )


def balance_get(ctx: Context, req: Request) -> dict[str, Any]:
    return ctx.sim.balance_object(req.account)


def event_list(ctx: Context, req: Request) -> dict[str, Any]:
    sim = ctx.sim
    type_ = P.string(req.query, "type")
    types = set(P.string_list(req.query, "types"))
    delivery = P.string(req.query, "delivery_success")
    created_ok = created_filter(req.query)

    def match(e: Any) -> bool:
        if e.account != req.account or not created_ok(e.created):
            return False
        if type_ and not (e.type == type_ or (type_.endswith("*") and e.type.startswith(type_[:-1]))):
            return False
        if types and e.type not in types:
            return False
        return delivery is None or (delivery == "true") == e.delivered

    items = (e for e in reversed(sim.events) if match(e))
    return sim.paginate(items, req.query, "/v1/events", id_of=lambda e: e.id, render=lambda e: e.render())


def event_get(ctx: Context, req: Request, evt_id: str) -> dict[str, Any]:
    rec = ctx.sim.events_by_id.get(evt_id)
    if rec is None or rec.account != req.account:
        raise missing("event", evt_id)
    return rec.render()


def report_run_create(ctx: Context, req: Request) -> dict[str, Any]:
    _no_connect(req)
    P.check_known(req.body, frozenset({"report_type", "parameters", "expand"}))
    return reporting.create_report_run(ctx.sim, ctx.faults, req.body)


def report_run_list(ctx: Context, req: Request) -> dict[str, Any]:
    return _list(ctx, req, "reporting.report_run", "/v1/reporting/report_runs")


def report_type_get(ctx: Context, req: Request, type_id: str) -> dict[str, Any]:
    return reporting.report_type_object(ctx.sim, type_id)


def file_contents(ctx: Context, req: Request, file_id: str) -> Response:
    content = ctx.sim.files.get(file_id)
    if content is None:
        raise missing("file", file_id)
    return Response(
        200,
        content,
        "text/csv; charset=utf-8",
        [(b"content-disposition", f'attachment; filename="{file_id}.csv"'.encode())],
    )


# ------------------------------------------------------------------------------------------ hosted pages


def checkout_page(ctx: Context, req: Request, cs_id: str) -> Response:
    cs = ctx.sim.objects.get(cs_id)
    if cs is None or cs["object"] != "checkout.session":
        return html("<h1>Not found</h1>", 404)
    if cs["status"] != "open":
        if cs["status"] == "complete":
            return redirect(domain.checkout_result_url(ctx.sim, cs) or "/")
        return html(hosted.gone_page(cs), 410)
    if req.method == "GET":
        return html(hosted.checkout_page(cs, ctx.sim.cs_private[cs_id]["line_items"]))
    form = parse_params(req.raw_body)
    if form.get("action") == "cancel":
        return redirect((cs["cancel_url"] or cs["success_url"]).replace("{CHECKOUT_SESSION_ID}", cs_id))
    outcome, value = domain.checkout_pay(ctx.sim, cs, form)
    if outcome == "error" or value is None:
        return html(hosted.checkout_page(cs, ctx.sim.cs_private[cs_id]["line_items"], value), 402)
    return redirect(value)


def checkout_return(ctx: Context, req: Request, cs_id: str) -> Response:
    """Where the 3DS page sends a Checkout buyer: on to success_url, or back to the form with the error."""
    cs = ctx.sim.objects.get(cs_id)
    if cs is None or cs["object"] != "checkout.session":
        return html("<h1>Not found</h1>", 404)
    url = domain.checkout_result_url(ctx.sim, cs) if cs["payment_intent"] else None
    if url:
        return redirect(url)
    if cs["status"] != "open":
        return html(hosted.gone_page(cs), 410)
    pi = ctx.sim.objects[cs["payment_intent"]] if cs["payment_intent"] else None
    err = (pi or {}).get("last_payment_error") or {}
    return html(hosted.checkout_page(cs, ctx.sim.cs_private[cs_id]["line_items"], err.get("message")), 402)


def challenge(ctx: Context, req: Request, pi_id: str) -> Response:
    sim = ctx.sim
    pi = sim.objects.get(pi_id)
    if pi is None or pi["object"] != "payment_intent":
        return html("<h1>Not found</h1>", 404)
    attempt = sim.pi_attempts.get(pi_id)
    if req.method == "GET":
        if pi["status"] != "requires_action":
            return html(hosted.result_page(pi), 409)
        return html(hosted.challenge_page(pi))
    if pi["status"] != "requires_action" or attempt is None:
        return html(hosted.result_page(pi), 409)
    action = parse_params(req.raw_body).get("action")
    if action not in ("complete", "fail"):
        return html("<h1>Unknown action</h1>", 400)
    domain.complete_authentication(sim, pi, passed=action == "complete")
    if attempt["return_url"]:
        if pi_id in sim.pi_checkout:
            return redirect(attempt["return_url"])
        return redirect(hosted.return_url_for(pi, attempt["return_url"]))
    return html(hosted.result_page(pi))


def landing(ctx: Context, req: Request) -> Response:
    return html(hosted.landing_page(req.query))


# ------------------------------------------------------------------------------------------ admin


def _json_body(req: Request) -> dict[str, Any]:
    if not req.raw_body:
        return {}
    try:
        data = json.loads(req.raw_body)
    except ValueError:
        data = parse_params(req.raw_body)
    if not isinstance(data, dict):
        raise invalid("Expected a JSON object.")
    return data


def admin_state(ctx: Context, req: Request) -> dict[str, Any]:
    sim = ctx.sim
    kinds = P.string_list(req.query, "kinds") or sorted(sim.lists)
    objects = {k: [sim.objects[i] for i in sim.lists.get(k, [])] for k in kinds}
    return {
        "now": sim.now(),
        "clock_offset": sim.clock.offset,
        "objects": objects,
        "owners": {i: a for i, a in sim.owner.items() if a},
        "balances": [
            {"account": a, "currency": c, "available": v[0], "pending": v[1]}
            for (a, c), v in sim.balances.items()
        ],
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "created": e.created,
                "account": e.account,
                "object_id": e.data["id"],
                "delivered": e.delivered,
            }
            for e in sim.events
        ],
        "payout_of_balance_transaction": dict(sim.bt_payout),
        "webhook_endpoints": [e.public() for e in ctx.webhooks.endpoints],
        "webhook_pending": ctx.webhooks.pending(),
        "faults": ctx.faults.describe(),
        "injected_faults": ctx.faults.injected_list(),
        "idempotency_keys": len(ctx.idempotency.snapshot()),
    }


def admin_reset(ctx: Context, req: Request) -> dict[str, Any]:
    body = _json_body(req)
    ctx.sim.reset()
    ctx.idempotency.clear()
    ctx.webhooks.reset()
    if body.get("faults", True):
        ctx.faults.clear()
    return {"reset": True, "now": ctx.sim.now()}


def admin_clock(ctx: Context, req: Request) -> dict[str, Any]:
    return {"now": ctx.sim.now(), "offset": ctx.sim.clock.offset}


def admin_advance(ctx: Context, req: Request) -> dict[str, Any]:
    body = _json_body(req)
    seconds = (
        int(body.get("seconds", 0))
        + 60 * int(body.get("minutes", 0))
        + 3600 * int(body.get("hours", 0))
        + 86400 * int(body.get("days", 0))
    )
    if seconds < 0:
        raise invalid("The clock only moves forward.", param="seconds")
    ctx.sim.clock.advance(seconds)
    ran = ctx.sim.run_due()
    ctx.webhooks.wake()
    return {"now": ctx.sim.now(), "offset": ctx.sim.clock.offset, "timers_run": ran}


def admin_faults_get(ctx: Context, req: Request) -> dict[str, Any]:
    return ctx.faults.describe()


def admin_faults_set(ctx: Context, req: Request) -> dict[str, Any]:
    body = _json_body(req)
    try:
        ctx.faults.configure(body.get("faults", []), seed=body.get("seed"), replace=body.get("replace", True))
    except (TypeError, ValueError) as e:
        raise invalid(str(e), param="faults") from None
    return ctx.faults.describe()


def admin_faults_clear(ctx: Context, req: Request) -> dict[str, Any]:
    ctx.faults.clear()
    return ctx.faults.describe()


def admin_injected(ctx: Context, req: Request) -> dict[str, Any]:
    kind = P.string(req.query, "kind")
    items = [i for i in ctx.faults.injected_list() if not kind or i["kind"] == kind]
    return {"object": "list", "data": items}


def admin_endpoints(ctx: Context, req: Request) -> dict[str, Any]:
    if req.method == "POST":
        body = _json_body(req)
        url = body.get("url")
        if not isinstance(url, str):
            raise invalid("url is required", param="url")
        try:
            ep = ctx.webhooks.add_endpoint(url, body.get("secret"), body.get("enabled_events"))
        except ValueError as e:
            raise invalid(str(e), param="url") from None
        return ep.public(with_secret=True)  # the one answer with the secret: configure the receiver
    return {
        "object": "list",
        "data": [e.public() for e in ctx.webhooks.endpoints],
        "default_secret_last4": ctx.webhooks.default_secret[-4:],
    }


def admin_endpoint_delete(ctx: Context, req: Request, ep_id: str) -> dict[str, Any]:
    return {"id": ep_id, "deleted": ctx.webhooks.remove_endpoint(ep_id)}


def admin_deliveries(ctx: Context, req: Request) -> dict[str, Any]:
    return {
        "object": "list",
        "data": ctx.webhooks.attempts,
        "pending": ctx.webhooks.pending(),
        "idle": ctx.webhooks.idle,
    }


def admin_payouts_run(ctx: Context, req: Request) -> dict[str, Any]:
    body = _json_body(req)
    return {"object": "list", "data": domain.run_automatic_payouts(ctx.sim, body.get("account"))}


def admin_health(ctx: Context, req: Request) -> dict[str, Any]:
    return {"ok": True, "now": ctx.sim.now()}


# ------------------------------------------------------------------------------------------ routing

ID = r"([A-Za-z0-9_.\-]+)"

# (method, pattern, handler, kind) — kind: "api" (auth, JSON, idempotency), "page" (HTML), "admin" (JSON).
ROUTES: list[tuple[str, str, Handler, str]] = [
    ("POST", "/v1/payment_intents", pi_create, "api"),
    ("GET", "/v1/payment_intents", pi_list, "api"),
    ("GET", f"/v1/payment_intents/{ID}", pi_get, "api"),
    ("POST", f"/v1/payment_intents/{ID}", pi_update, "api"),
    ("POST", f"/v1/payment_intents/{ID}/confirm", pi_confirm, "api"),
    ("POST", f"/v1/payment_intents/{ID}/cancel", pi_cancel, "api"),
    ("POST", f"/v1/payment_intents/{ID}/capture", pi_capture, "api"),
    ("POST", "/v1/payment_methods", pm_create, "api"),
    ("GET", f"/v1/payment_methods/{ID}", _getter("payment_method", "PaymentMethod"), "api"),
    ("POST", "/v1/checkout/sessions", cs_create, "api"),
    ("GET", "/v1/checkout/sessions", cs_list, "api"),
    ("GET", f"/v1/checkout/sessions/{ID}", _getter("checkout.session", "checkout.session"), "api"),
    ("POST", f"/v1/checkout/sessions/{ID}/expire", cs_expire, "api"),
    ("GET", "/v1/charges", charge_list, "api"),
    ("GET", f"/v1/charges/{ID}", _getter("charge", "charge"), "api"),
    ("POST", "/v1/refunds", refund_create, "api"),
    ("GET", "/v1/refunds", refund_list, "api"),
    ("GET", f"/v1/refunds/{ID}", _getter("refund", "refund"), "api"),
    ("GET", f"/v1/disputes/{ID}", _getter("dispute", "dispute"), "api"),
    ("POST", f"/v1/disputes/{ID}", dispute_update, "api"),
    ("POST", f"/v1/disputes/{ID}/close", dispute_close, "api"),
    ("POST", "/v1/accounts", account_create, "api"),
    ("GET", f"/v1/accounts/{ID}", account_get, "api"),
    ("POST", "/v1/transfers", transfer_create, "api"),
    ("GET", "/v1/transfers", transfer_list, "api"),
    ("GET", f"/v1/transfers/{ID}", _getter("transfer", "transfer"), "api"),
    ("POST", f"/v1/transfers/{ID}/reversals", transfer_reversal_create, "api"),
    ("GET", f"/v1/transfers/{ID}/reversals", transfer_reversal_list, "api"),
    ("GET", f"/v1/transfers/{ID}/reversals/{ID}", transfer_reversal_get, "api"),
    ("POST", "/v1/payouts", payout_create, "api"),
    ("GET", "/v1/payouts", payout_list, "api"),
    ("GET", f"/v1/payouts/{ID}", _getter("payout", "payout", connect=True), "api"),
    ("GET", "/v1/balance", balance_get, "api"),
    ("GET", "/v1/balance_transactions", bt_list, "api"),
    (
        "GET",
        f"/v1/balance_transactions/{ID}",
        _getter("balance_transaction", "balance_transaction", True),
        "api",
    ),
    ("GET", "/v1/events", event_list, "api"),
    ("GET", f"/v1/events/{ID}", event_get, "api"),
    ("POST", "/v1/reporting/report_runs", report_run_create, "api"),
    ("GET", "/v1/reporting/report_runs", report_run_list, "api"),
    (
        "GET",
        f"/v1/reporting/report_runs/{ID}",
        _getter("reporting.report_run", "reporting.report_run"),
        "api",
    ),
    ("GET", f"/v1/reporting/report_types/{ID}", report_type_get, "api"),
    ("GET", f"/v1/files/{ID}", _getter("file", "file"), "api"),
    ("GET", f"/v1/files/{ID}/contents", file_contents, "api"),
    ("GET", f"/c/pay/{ID}", checkout_page, "page"),
    ("POST", f"/c/pay/{ID}", checkout_page, "page"),
    ("GET", f"/c/return/{ID}", checkout_return, "page"),
    ("GET", f"/3ds/{ID}", challenge, "page"),
    ("POST", f"/3ds/{ID}", challenge, "page"),
    ("GET", "/_sim/landing", landing, "page"),
    ("GET", "/_sim/health", admin_health, "admin"),
    ("GET", "/_sim/state", admin_state, "admin"),
    ("POST", "/_sim/reset", admin_reset, "admin"),
    ("GET", "/_sim/clock", admin_clock, "admin"),
    ("POST", "/_sim/clock/advance", admin_advance, "admin"),
    ("GET", "/_sim/faults", admin_faults_get, "admin"),
    ("POST", "/_sim/faults", admin_faults_set, "admin"),
    ("DELETE", "/_sim/faults", admin_faults_clear, "admin"),
    ("GET", "/_sim/faults/injected", admin_injected, "admin"),
    ("GET", "/_sim/webhook_endpoints", admin_endpoints, "admin"),
    ("POST", "/_sim/webhook_endpoints", admin_endpoints, "admin"),
    ("DELETE", f"/_sim/webhook_endpoints/{ID}", admin_endpoint_delete, "admin"),
    ("GET", "/_sim/webhooks/deliveries", admin_deliveries, "admin"),
    ("POST", "/_sim/payouts/run", admin_payouts_run, "admin"),
]


class Router:
    """Exact paths by dict lookup (the hot path), parameterised ones by regex."""

    def __init__(self) -> None:
        self.exact: dict[tuple[str, str], tuple[Handler, str]] = {}
        self.patterns: list[tuple[str, re.Pattern[str], Handler, str]] = []
        self.paths: set[str] = set()
        for method, pattern, handler, kind in ROUTES:
            if "(" in pattern:
                self.patterns.append((method, re.compile(pattern + "$"), handler, kind))
            else:
                self.exact[(method, pattern)] = (handler, kind)
                self.paths.add(pattern)

    def match(self, method: str, path: str) -> tuple[Handler, str, tuple[str, ...]] | Literal[False] | None:
        """(handler, kind, args); False if the path exists under another method; None if unknown."""
        hit = self.exact.get((method, path))
        if hit is not None:
            return hit[0], hit[1], ()
        other_method = path in self.paths
        for m, rx, handler, kind in self.patterns:
            found = rx.match(path)
            if found:
                if m == method:
                    return handler, kind, found.groups()
                other_method = True
        return False if other_method else None


def unknown_route(method: str, path: str) -> StripeError:
    return StripeError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")
