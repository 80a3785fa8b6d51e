"""Extract the Stripe schemas the simulator's conformance test needs from Stripe's OpenAPI spec3.

    .venv/bin/python tests/psp_sim/stripe_spec/extract.py /work/shared/reference/stripe-openapi/spec3-2023-08-16.yaml.gz

writes ``schemas.json`` next to this file: the component schemas of the objects the simulator returns,
the schemas they reference (an expandable field that points outside that set keeps only its id form and
an unchecked object), the list schemas of the list endpoints it serves, and the spec's version. Only
what validation reads is kept (descriptions and the like are dropped), so the file stays small.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOTS = (
    "payment_intent",
    "charge",
    "refund",
    "checkout.session",
    "payment_method",
    "event",
    "balance",
    "balance_transaction",
    "account",
    "bank_account",
    "transfer",
    "transfer_reversal",
    "payout",
    "dispute",
    "file",
    "reporting.report_run",
    "reporting.report_type",
    "error",
)
LIST_PATHS = (
    "/v1/payment_intents",
    "/v1/charges",
    "/v1/refunds",
    "/v1/checkout/sessions",
    "/v1/transfers",
    "/v1/payouts",
    "/v1/balance_transactions",
    "/v1/events",
    "/v1/reporting/report_runs",
)
KEEP = {
    "type", "properties", "required", "nullable", "anyOf", "oneOf", "allOf", "items", "enum", "$ref",
    "additionalProperties", "maxLength", "format", "title", "x-expandableFields", "x-expansionResources",
    "x-resourceId",
}  # fmt: skip
OUT = Path(__file__).with_name("schemas.json")


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _slim(node: Any, in_properties: bool = False) -> Any:
    """Only validation keywords; inside ``properties`` every key is a property name and stays."""
    if isinstance(node, list):
        return [_slim(v) for v in node]
    if not isinstance(node, dict):
        return node
    if in_properties:
        return {k: _slim(v) for k, v in node.items()}
    if "x-expansionResources" in node:
        # An expandable field: keep the expanded form only for objects this file describes.
        node = dict(node)
        node["anyOf"] = [
            a
            if "$ref" not in a or _name(a["$ref"]) in ROOTS
            else {"type": "object", "title": _name(a["$ref"])}
            for a in node["anyOf"]
        ]
        node["x-expansionResources"] = {
            "oneOf": [r for r in node["x-expansionResources"]["oneOf"] if _name(r["$ref"]) in ROOTS]
        }
    return {k: _slim(v, in_properties=k == "properties") for k, v in node.items() if k in KEEP}


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        if "$ref" in node:
            out.add(_name(node["$ref"]))
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    components = spec["components"]["schemas"]
    lists = {
        path: _slim(spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"])
        for path in LIST_PATHS
    }
    schemas: dict[str, Any] = {}
    todo: set[str] = set(ROOTS)
    _refs(lists, todo)
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        schemas[name] = _slim(components[name])
        found: set[str] = set()
        _refs(schemas[name], found)
        todo |= found - set(schemas)
    return {
        "source": "github.com/stripe/openapi openapi/spec3.yaml",
        "api_version": spec["info"]["version"],
        "roots": list(ROOTS),
        "lists": lists,
        "schemas": dict(sorted(schemas.items())),
    }


def main(path: str) -> None:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        spec = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    OUT.write_text(json.dumps(extract(spec), separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
