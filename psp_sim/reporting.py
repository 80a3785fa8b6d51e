"""Settlement files: Stripe's ``balance_change_from_activity.itemized.3`` report as CSV.

Money columns are major units via Decimal and the currency exponent; the interval is
``[interval_start, interval_end)`` on balance-transaction ``created``. Settlement faults are applied here,
after the honest rows are built, and each is recorded with the row it touched.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psp_sim import params as P
from psp_sim.engine import Simulator
from psp_sim.errors import invalid
from psp_sim.faults import FaultEngine
from psp_sim.money import to_major

REPORT_TYPE = "balance_change_from_activity.itemized.3"

_ADDR = ("line1", "line2", "city", "state", "postal_code", "country")
ITEMIZED_3_COLUMNS: tuple[str, ...] = (
    "balance_transaction_id",
    "created_utc",
    "created",
    "available_on_utc",
    "available_on",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "customer_facing_amount",
    "customer_facing_currency",
    "regulatory_tag",
    "automatic_payout_id",
    "automatic_payout_effective_at_utc",
    "automatic_payout_effective_at",
    "customer_id",
    "customer_email",
    "customer_name",
    "customer_description",
    *(f"customer_shipping_address_{a}" for a in _ADDR),
    *(f"customer_address_{a}" for a in _ADDR),
    *(f"shipping_address_{a}" for a in _ADDR),
    *(f"card_address_{a}" for a in _ADDR),
    "charge_id",
    "payment_intent_id",
    "charge_created_utc",
    "charge_created",
    "invoice_id",
    "invoice_number",
    "subscription_id",
    "payment_method_type",
    "is_link",
    "card_brand",
    "card_funding",
    "card_country",
    "statement_descriptor",
    "dispute_reason",
    "connected_account_id",
    "connected_account_name",
    "connected_account_country",
    "connected_account_direct_charge_id",
    "trace_id",
    "trace_id_status",
)
# Stripe does not publish the itemized default set; the simulator uses the core columns (documented).
DEFAULT_COLUMNS: tuple[str, ...] = ITEMIZED_3_COLUMNS[:12]
_METADATA_PREFIXES = ("payment_metadata[", "refund_metadata[", "transfer_metadata[")

REPORT_PARAMS = frozenset(
    {
        "interval_start",
        "interval_end",
        "currency",
        "reporting_category",
        "timezone",
        "columns",
        "connected_account",
        "decimal_separator",
    }
)


def report_type_object(sim: Simulator, type_id: str) -> dict[str, Any]:
    if type_id != REPORT_TYPE:
        raise invalid(
            f"No such report type: {type_id}", param="report_type", code="resource_missing", status=404
        )
    now = sim.now()
    return {
        "id": REPORT_TYPE,
        "object": "reporting.report_type",
        "data_available_start": data_available_start(sim),
        "data_available_end": now,
        "default_columns": list(DEFAULT_COLUMNS),
        "livemode": False,
        "name": "Balance change from activity (itemized)",
        "updated": now,
        "version": 3,
    }


def data_available_start(sim: Simulator) -> int:
    # Anything the simulator has created is reportable; a year of slack keeps "yesterday" intervals valid.
    return sim.started_at - 365 * 86_400


def validate(sim: Simulator, report_type: str, params: dict[str, Any]) -> dict[str, Any]:
    if report_type != REPORT_TYPE:
        raise invalid(f"Unsupported report type: {report_type}", param="report_type")
    P.check_known(params, REPORT_PARAMS)
    start = P.integer(params, "interval_start", required=True)
    end = P.integer(params, "interval_end", required=True)
    if start >= end:
        raise invalid("interval_start must be before interval_end.", param="parameters[interval_start]")
    if start < data_available_start(sim) or end > sim.now():
        raise invalid(
            "The requested interval is outside the range of available data "
            f"({data_available_start(sim)} to {sim.now()}).",
            param="parameters[interval_end]",
        )
    columns = P.string_list(params, "columns") or list(DEFAULT_COLUMNS)
    for col in columns:
        if col not in ITEMIZED_3_COLUMNS and not col.startswith(_METADATA_PREFIXES):
            raise invalid(f"Invalid column: {col}", param="parameters[columns]")
    tz_name = P.string(params, "timezone", default="Etc/UTC")
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(f"Invalid timezone: {tz_name}", param="parameters[timezone]") from None
    out: dict[str, Any] = {
        "interval_start": start,
        "interval_end": end,
        "columns": columns,
        "timezone": tz_name,
    }
    for key in ("currency", "reporting_category", "connected_account"):
        if P.string(params, key):
            out[key] = P.string(params, key)
    return out


def _fmt(ts: int | None, tz: dt.tzinfo) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts, tz=tz).strftime("%Y-%m-%d %H:%M:%S")


def build_rows(sim: Simulator, params: dict[str, Any]) -> list[dict[str, str]]:
    """One row per balance transaction of the account, oldest first, every column filled."""
    utc, tz = dt.UTC, ZoneInfo(params["timezone"])
    start, end = params["interval_start"], params["interval_end"]
    account = params.get("connected_account")
    rows = []
    for bt_id in sim.lists.get("balance_transaction", []):
        if sim.owner[bt_id] != account:
            continue
        bt = sim.objects[bt_id]
        if not start <= bt["created"] < end:
            continue
        if params.get("currency") and bt["currency"] != params["currency"]:
            continue
        if params.get("reporting_category") and bt["reporting_category"] != params["reporting_category"]:
            continue
        rows.append(_row(sim, bt, utc, tz))
    return rows


def _row(sim: Simulator, bt: dict[str, Any], utc: dt.tzinfo, tz: dt.tzinfo) -> dict[str, str]:
    cur = bt["currency"]
    row = dict.fromkeys(ITEMIZED_3_COLUMNS, "")
    row.update(
        balance_transaction_id=bt["id"],
        created_utc=_fmt(bt["created"], utc),
        created=_fmt(bt["created"], tz),
        available_on_utc=_fmt(bt["available_on"], utc),
        available_on=_fmt(bt["available_on"], tz),
        currency=cur,
        gross=str(to_major(bt["amount"], cur)),
        fee=str(to_major(bt["fee"], cur)),
        net=str(to_major(bt["net"], cur)),
        reporting_category=bt["reporting_category"],
        source_id=bt["source"],
        description=bt["description"] or "",
        customer_facing_amount=str(to_major(bt["amount"], cur)),
        customer_facing_currency=cur,
    )
    payout_id = sim.bt_payout.get(bt["id"])
    if payout_id and payout_id != bt["source"]:
        po = sim.objects[payout_id]
        row["automatic_payout_id"] = payout_id
        row["automatic_payout_effective_at_utc"] = _fmt(po["arrival_date"], utc)
        row["automatic_payout_effective_at"] = _fmt(po["arrival_date"], tz)
    src = sim.objects.get(bt["source"])
    charge = None
    if src is not None:
        if src["object"] == "charge":
            charge = src
        elif src["object"] in ("refund", "dispute"):
            charge = sim.objects.get(src["charge"])
            if src["object"] == "dispute":
                row["dispute_reason"] = src["reason"]
            for k, v in (src.get("metadata") or {}).items():
                row[f"refund_metadata[{k}]"] = v
        elif src["object"] == "transfer":
            row["connected_account_id"] = src["destination"]
            for k, v in src["metadata"].items():
                row[f"transfer_metadata[{k}]"] = v
        elif src["object"] == "payout" and src["trace_id"]["value"]:
            row["trace_id"] = src["trace_id"]["value"]
            row["trace_id_status"] = src["trace_id"]["status"]
    if charge is not None:
        pi = sim.objects.get(charge["payment_intent"])
        card = charge["payment_method_details"]["card"]
        row.update(
            charge_id=charge["id"],
            payment_intent_id=charge["payment_intent"] or "",
            charge_created_utc=_fmt(charge["created"], utc),
            charge_created=_fmt(charge["created"], tz),
            payment_method_type="card",
            is_link="false",
            card_brand=card["brand"],
            card_funding=card["funding"],
            card_country=card["country"],
            customer_id=charge["customer"] or "",
        )
        for k, v in ((pi or {}).get("metadata") or charge["metadata"]).items():
            row[f"payment_metadata[{k}]"] = v
    return row


def apply_faults(
    sim: Simulator, faults: FaultEngine, report_type: str, rows: list[dict[str, str]], run_id: str
) -> list[dict[str, str]]:
    if not faults.active:
        return rows
    rng = faults.rng
    for rule in faults.settlement(report_type):
        candidates = [i for i, r in enumerate(rows) if rule.target is None or _targets(r, rule.target)]
        if rule.kind != "settlement_extra_row" and not candidates:
            continue  # nothing to touch in this report: the rule waits for one that has its row
        if not faults.fire(rule):
            continue
        if rule.kind == "settlement_extra_row":
            cur = rows[0]["currency"] if rows else "usd"
            extra = dict.fromkeys(ITEMIZED_3_COLUMNS, "")
            amount = to_major(rule.amount_delta_minor, cur)
            extra.update(
                balance_transaction_id=sim.new_id("txn_"),
                created_utc=rows[-1]["created_utc"] if rows else "",
                currency=cur,
                gross=str(amount),
                fee=str(to_major(0, cur)),
                net=str(amount),
                reporting_category="charge",
                source_id=sim.new_id("ch_"),
                description="Unknown activity",
            )
            rows.append(extra)
            faults.record(
                rule, sim.now(), report_run=run_id, balance_transaction_id=extra["balance_transaction_id"]
            )
            continue
        idx = candidates[rng.randrange(len(candidates))]
        row = rows[idx]
        target = row["balance_transaction_id"]
        cur = row["currency"]
        if rule.kind == "settlement_missing_row":
            del rows[idx]
            faults.record(rule, sim.now(), report_run=run_id, balance_transaction_id=target)
        elif rule.kind == "settlement_duplicate_row":
            rows.insert(idx + 1, dict(row))  # the same balance transaction twice, as a buggy export would
            faults.record(rule, sim.now(), report_run=run_id, balance_transaction_id=target)
        elif rule.kind in ("settlement_amount_changed", "settlement_fee_changed"):
            col = "gross" if rule.kind == "settlement_amount_changed" else "fee"
            delta = to_major(rule.amount_delta_minor, cur)
            before = row[col]
            row[col] = str(Decimal(before) + delta)
            # Keep net = gross - fee so the row is self-consistent and only the comparison reveals it.
            row["net"] = str(Decimal(row["gross"]) - Decimal(row["fee"]))
            faults.record(
                rule,
                sim.now(),
                report_run=run_id,
                balance_transaction_id=target,
                column=col,
                before=before,
                after=row[col],
            )
        elif rule.kind == "settlement_currency_changed":
            before = row["currency"]
            row["currency"] = "eur" if before != "eur" else "usd"
            row["customer_facing_currency"] = row["currency"]
            faults.record(
                rule,
                sim.now(),
                report_run=run_id,
                balance_transaction_id=target,
                before=before,
                after=row["currency"],
            )
    return rows


_TARGET_COLUMNS = ("balance_transaction_id", "source_id", "charge_id", "payment_intent_id")


def _targets(row: dict[str, str], target: str) -> bool:
    if any(row.get(c) == target for c in _TARGET_COLUMNS):
        return True
    return any(k.endswith("]") and v == target for k, v in row.items())  # a metadata value


def render_csv(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return buf.getvalue().encode()


def create_report_run(sim: Simulator, faults: FaultEngine, p: dict[str, Any]) -> dict[str, Any]:
    report_type = P.string(p, "report_type", required=True)
    params = validate(sim, report_type, P.mapping(p, "parameters"))
    run_id = sim.new_id("frr_")
    rows = apply_faults(sim, faults, report_type, build_rows(sim, params), run_id)
    content = render_csv(rows, params["columns"])
    file_id = sim.new_id("file_")
    now = sim.now()
    sim.files[file_id] = content
    file_obj = {
        "id": file_id,
        "object": "file",
        "created": now,
        "expires_at": now + 7 * 86_400,
        "filename": f"{file_id}.csv",
        "purpose": "finance_report_run",
        "size": len(content),
        "title": None,
        "type": "csv",
        "url": f"{sim.public_base}/v1/files/{file_id}/contents",
    }
    sim.add(file_obj)
    # The run is generated synchronously, so it is created already succeeded (Stripe: pending first).
    run = {
        "id": run_id,
        "object": "reporting.report_run",
        "created": now,
        "error": None,
        "livemode": False,
        "parameters": params,
        "report_type": report_type,
        "result": file_obj,
        "status": "succeeded",
        "succeeded_at": now,
    }
    sim.add(run)
    sim.emit("reporting.report_run.succeeded", run)
    return run
