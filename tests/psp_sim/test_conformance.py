"""Every object the simulator answers with, driven through the unmodified ``stripe`` SDK, validated against
Stripe's published OpenAPI schemas (a committed extract: ``stripe_spec/``, see its README).

What the schemas enforce: each required property present, no ``null`` where Stripe's schema does not
allow one (a property Stripe leaves out must be left out), the right types and enums; lists in Stripe's
list shape; ``expand[]`` turning an expandable id into the object.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import stripe

from psp_sim.testing import SimServer

SPEC = Path(__file__).with_name("stripe_spec") / "schemas.json"


def _to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema 2020-12: ``nullable`` becomes ``null`` allowed, refs point at ``$defs``."""
    if isinstance(node, list):
        return [_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {
        k: ({p: _to_json_schema(s) for p, s in v.items()} if k == "properties" else _to_json_schema(v))
        for k, v in node.items()
        if k != "nullable" and not k.startswith("x-")
    }
    if "$ref" in out:
        out["$ref"] = "#/$defs/" + out["$ref"].rsplit("/", 1)[-1]
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text(encoding="utf-8"))


@cache
def _validator(name: str) -> Any:
    spec = _spec()
    defs = {k: _to_json_schema(v) for k, v in spec["schemas"].items()}
    root = spec["lists"][name] if name.startswith("/") else {"$ref": f"#/components/schemas/{name}"}
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **_to_json_schema(root),
        "$defs": defs,
    }
    return jsonschema_rs.Draft202012Validator(schema)


def _explain(schema: Any, value: Any, where: str, out: list[str]) -> None:
    """Where in ``value`` the OpenAPI ``schema`` is not met, to the property (the validator's anyOf
    messages only name the outer object)."""
    defs = _spec()["schemas"]
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if value is None:
        if not schema.get("nullable"):
            out.append(f"{where}: null where Stripe's schema does not allow it (leave it out)")
        return
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        if any(_fits(b, value) for b in branches):
            return
        # None fits: descend into the one of the value's JSON type, to name the property at fault.
        same_type = [b for b in branches if _json_type(b, defs) == _json_type_of(value)]
        if same_type:
            _explain(same_type[0], value, where, out)
        else:
            out.append(f"{where}: {json.dumps(value)[:80]} fits none of {len(branches)} schemas")
        return
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties", {})
        out.extend(
            f"{where}.{req}: required, missing" for req in schema.get("required", []) if req not in value
        )
        for key, sub in value.items():
            if key in props:
                _explain(props[key], sub, f"{where}.{key}", out)
            elif isinstance(schema.get("additionalProperties"), dict):
                _explain(schema["additionalProperties"], sub, f"{where}.{key}", out)
        return
    if kind == "array" and isinstance(value, list):
        for i, item in enumerate(value):
            _explain(schema.get("items", {}), item, f"{where}[{i}]", out)
        return
    if not _fits(schema, value):
        out.append(f"{where}: {json.dumps(value)[:80]} is not {kind or ''} {schema.get('enum', '')}".rstrip())


def _json_type(schema: Any, defs: dict[str, Any]) -> str | None:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema.get("type") or ("object" if "properties" in schema else None)


def _json_type_of(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}
    return kinds.get(type(value), "null")


def _fits(schema: Any, value: Any) -> bool:
    defs = {k: _to_json_schema(v) for k, v in _spec()["schemas"].items()}
    return bool(
        jsonschema_rs.Draft202012Validator({**_to_json_schema(schema), "$defs": defs}).is_valid(value)
    )


def _problems(name: str, body: Any) -> list[str]:
    if _validator(name).is_valid(body):
        return []
    root = _spec()["lists"][name] if name.startswith("/") else {"$ref": f"#/components/schemas/{name}"}
    out: list[str] = []
    _explain(root, body, f"{name} {body.get('id', '')}".strip(), out)
    return out or [f"{name}: {e}" for e in _validator(name).iter_errors(body)]


def _expandable(name: str) -> list[str]:
    return list(_spec()["schemas"][name].get("x-expandableFields", []))


class Conformance:
    """Validates raw answers (the bytes the SDK got, not its parsed objects) and collects what fails."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.kinds: set[str] = set()

    def check(self, result: Any, schema: str | None = None) -> Any:
        body = json.loads(result.last_response.body)
        name = schema or body["object"]
        self.kinds.add(name)
        self.problems += _problems(name, body)
        return result

    def check_list(self, result: Any, path: str) -> Any:
        self.check(result, path)
        assert result.data, f"{path} listed nothing: the scenario should have made some"
        for item in json.loads(result.last_response.body)["data"]:
            self.problems += _problems(item["object"], item)
        return result


def _account(client: Any) -> Any:
    return client.v1.accounts.create(
        params={
            "type": "custom",
            "country": "US",
            "email": "seller@example.com",
            "external_account": {
                "object": "bank_account",
                "country": "US",
                "currency": "usd",
                "routing_number": "110000000",
                "account_number": "000123456789",
            },
        }
    )


def test_every_object_kind_matches_stripes_schema(sim: SimServer, client: Any) -> None:
    c = Conformance()
    card = {"amount": 5000, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    # PaymentIntents in each state the simulator reaches, and what they make.
    pi = c.check(client.v1.payment_intents.create(params=card))
    c.check(client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"}))
    c.check(client.v1.payment_intents.create(params={**card, "capture_method": "manual"}))
    three_ds = c.check(client.v1.payment_intents.create(params={**card, "payment_method": "pm_card_threeDSecure2Required", "return_url": "http://shop.test/back"}))  # fmt: skip
    c.check(client.v1.payment_intents.cancel(three_ds.id))
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create(params={**card, "payment_method": "pm_card_visa_chargeDeclined"})
    err = declined.value.json_body
    assert err is not None
    c.problems += _problems("error", err)
    c.check(client.v1.payment_intents.retrieve(pi.id))
    c.check(client.v1.payment_methods.retrieve(pi.payment_method))
    c.check(client.v1.payment_methods.create(params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}))  # fmt: skip
    c.check(client.v1.charges.retrieve(pi.latest_charge))
    c.check(client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000}))
    fails = client.v1.payment_intents.create(params={**card, "payment_method": "pm_card_refundFail"})
    failing = c.check(client.v1.refunds.create(params={"payment_intent": fails.id}))
    disputed = client.v1.payment_intents.create(params={**card, "payment_method": "pm_card_createDispute"})
    dispute_event = client.v1.events.list(params={"type": "charge.dispute.created"}).data[0]
    c.check(client.v1.disputes.retrieve(dispute_event.data.object.id))
    assert disputed.status == "succeeded"
    # Checkout Sessions: open, paid through the hosted page, expired.
    line = {
        "price_data": {"currency": "usd", "unit_amount": 1200, "product_data": {"name": "Lamp"}},
        "quantity": 1,
    }
    session = {"mode": "payment", "success_url": "http://shop.test/ok", "cancel_url": "http://shop.test/no"}
    paid = c.check(client.v1.checkout.sessions.create(params={**session, "line_items": [line]}))
    form = {"cardnumber": "4242424242424242", "exp": "12/34", "cvc": "123", "name": "Ada", "action": "pay"}
    assert httpx.post(paid.url, data=form).status_code == 303
    c.check(client.v1.checkout.sessions.retrieve(paid.id))
    left = client.v1.checkout.sessions.create(params={**session, "line_items": [line]})
    c.check(client.v1.checkout.sessions.expire(left.id))
    # Connect: an account, a transfer to it, a payout from it; balances and their transactions.
    client.v1.payment_intents.create(
        params={**card, "amount": 20_000, "payment_method": "pm_card_bypassPending"}
    )
    acct = c.check(_account(client))
    c.check(client.v1.accounts.retrieve(acct.id))
    tr = c.check(
        client.v1.transfers.create(params={"amount": 5000, "currency": "usd", "destination": acct.id})
    )
    c.check(client.v1.transfers.retrieve(tr.id))
    c.check(client.v1.transfers.reversals.create(tr.id, params={"amount": 1000}))
    c.check(client.v1.transfers.retrieve(tr.id))  # with the reversal in its list
    on_acct = {"stripe_account": acct.id}
    po = c.check(client.v1.payouts.create(params={"amount": 3000, "currency": "usd"}, options=on_acct))
    sim.admin.advance(days=2)
    c.check(client.v1.payouts.retrieve(po.id, options=on_acct))
    failed_refund = c.check(client.v1.refunds.retrieve(failing.id))
    assert failed_refund.status == "failed" and failed_refund.failure_reason
    # A payout to a test bank account that fails.
    bad = client.v1.accounts.create(params={"type": "custom", "external_account": {"object": "bank_account", "country": "US", "currency": "usd", "account_number": "000111111116"}})  # fmt: skip
    client.v1.transfers.create(params={"amount": 1000, "currency": "usd", "destination": bad.id})
    bad_po = client.v1.payouts.create(
        params={"amount": 500, "currency": "usd"}, options={"stripe_account": bad.id}
    )
    sim.admin.advance(days=2)
    failed_po = c.check(client.v1.payouts.retrieve(bad_po.id, options={"stripe_account": bad.id}))
    assert failed_po.status == "failed" and failed_po.failure_code == "no_account"
    c.check(client.v1.balance.retrieve())
    c.check(client.v1.balance.retrieve(options=on_acct))
    # Settlement files.
    now = sim.admin.now()
    sim.admin.advance(seconds=2)
    run = c.check(
        client.v1.reporting.report_runs.create(
            params={
                "report_type": "balance_change_from_activity.itemized.3",
                "parameters": {"interval_start": now - 7 * 86_400, "interval_end": now + 1},
            }
        )
    )
    c.check(client.v1.reporting.report_runs.retrieve(run.id))
    c.check(client.v1.reporting.report_types.retrieve("balance_change_from_activity.itemized.3"))
    c.check(client.v1.files.retrieve(run.result.id))
    # Every list endpoint, and every event the scenario produced (each embeds its object).
    c.check_list(client.v1.payment_intents.list(params={"limit": 100}), "/v1/payment_intents")
    c.check_list(client.v1.charges.list(params={"limit": 100}), "/v1/charges")
    c.check_list(client.v1.refunds.list(), "/v1/refunds")
    c.check_list(client.v1.checkout.sessions.list(), "/v1/checkout/sessions")
    c.check_list(client.v1.transfers.list(), "/v1/transfers")
    c.check_list(client.v1.payouts.list(options=on_acct), "/v1/payouts")
    c.check_list(client.v1.reporting.report_runs.list(), "/v1/reporting/report_runs")
    txns = c.check_list(
        client.v1.balance_transactions.list(params={"limit": 100}), "/v1/balance_transactions"
    )
    c.check(client.v1.balance_transactions.retrieve(txns.data[0].id))
    events = c.check_list(client.v1.events.list(params={"limit": 100}), "/v1/events")
    c.check_list(client.v1.events.list(params={"limit": 100}, options=on_acct), "/v1/events")
    for ev in events.data:
        inner = ev.data.object.to_dict()
        c.problems += [f"in event {ev.type}: {p}" for p in _problems(inner["object"], inner)]
    c.check(client.v1.events.retrieve(events.data[0].id))

    assert not c.problems, "\n".join(sorted(set(c.problems)))
    # error was checked above; bank_account is only ever answered inside an account.
    driven = {k for k in c.kinds if not k.startswith("/")}
    assert driven >= set(_spec()["roots"]) - {"error", "bank_account"}, (
        "a kind the simulator returns was not driven"
    )


@pytest.mark.parametrize(
    ("kind", "field", "make"),
    [
        ("payment_intent", "latest_charge", "pi"),
        ("payment_intent", "payment_method", "pi"),
        ("charge", "balance_transaction", "charge"),
        ("charge", "payment_intent", "charge"),
        ("refund", "charge", "refund"),
        ("refund", "payment_intent", "refund"),
        ("refund", "balance_transaction", "refund"),
        ("checkout.session", "payment_intent", "session"),
    ],
)
def test_expandable_fields_expand(sim: SimServer, client: Any, kind: str, field: str, make: str) -> None:
    assert field in _expandable(kind)
    pi = client.v1.payment_intents.create(
        params={"amount": 800, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
    )
    expand = {"expand": [field]}
    if make == "pi":
        plain, expanded = pi, client.v1.payment_intents.retrieve(pi.id, params=expand)
    elif make == "charge":
        plain = client.v1.charges.retrieve(pi.latest_charge)
        expanded = client.v1.charges.retrieve(pi.latest_charge, params=expand)
    elif make == "refund":
        plain = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
        expanded = client.v1.refunds.retrieve(plain.id, params=expand)
    else:
        line = {
            "price_data": {"currency": "eur", "unit_amount": 800, "product_data": {"name": "Cup"}},
            "quantity": 1,
        }
        session = client.v1.checkout.sessions.create(
            params={"mode": "payment", "success_url": "http://s.test/ok", "line_items": [line]}
        )
        form = {
            "cardnumber": "4242424242424242",
            "exp": "12/34",
            "cvc": "123",
            "name": "Ada",
            "action": "pay",
        }
        assert httpx.post(session.url, data=form).status_code == 303  # its PaymentIntent exists once paid
        plain = client.v1.checkout.sessions.retrieve(session.id)
        expanded = client.v1.checkout.sessions.retrieve(session.id, params=expand)
    raw_plain = json.loads(plain.last_response.body)
    raw = json.loads(expanded.last_response.body)
    assert isinstance(raw_plain[field], str), f"{kind}.{field} is an id unless expanded"
    assert isinstance(raw[field], dict) and raw[field]["id"] == raw_plain[field]
    assert _problems(kind, raw) == []
    assert _problems(raw[field]["object"], raw[field]) == []
