"""Settlement files: report runs through the SDK, CSV fetched with auth, sums, units, faults, CLI."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe

from psp_sim.money import to_major
from psp_sim.reporting import ITEMIZED_3_COLUMNS
from psp_sim.testing import SimServer

REPORT = "balance_change_from_activity.itemized.3"
AUTH = {"Authorization": "Bearer sk_test_psp_sim"}


def _activity(sim: SimServer, client: Any) -> None:
    """A day of activity: charges (one JPY, one BHD), a refund, a transfer, a payout, a failed payment."""
    pi = client.v1.payment_intents.create(
        params={
            "amount": 12345,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "confirm": True,
            "metadata": {"order": "A-1"},
        }
    )
    client.v1.payment_intents.create(
        params={"amount": 5000, "currency": "jpy", "payment_method": "pm_card_visa", "confirm": True}
    )
    client.v1.payment_intents.create(
        params={"amount": 12345, "currency": "bhd", "payment_method": "pm_card_visa", "confirm": True}
    )
    with pytest.raises(stripe.CardError):
        client.v1.payment_intents.create(
            params={
                "amount": 999,
                "currency": "usd",
                "payment_method": "pm_card_visa_chargeDeclined",
                "confirm": True,
            }
        )
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2345})
    client.v1.transfers.create(params={"amount": 4000, "currency": "usd", "destination": "acct_seller1"})
    client.v1.payouts.create(params={"amount": 1000, "currency": "usd"})


def _run(sim: SimServer, client: Any, **parameters: Any) -> tuple[Any, list[dict[str, str]]]:
    now = sim.admin.now()
    parameters.setdefault("interval_start", now - 3600)
    parameters.setdefault("interval_end", now + 1)
    sim.admin.advance(seconds=2)  # interval_end must not be in the future
    run = client.v1.reporting.report_runs.create(params={"report_type": REPORT, "parameters": parameters})
    resp = httpx.get(run.result.url, headers={"Authorization": f"Bearer {sim.api_key}"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    return run, list(csv.DictReader(io.StringIO(resp.text)))


def test_report_run_and_file(sim: SimServer, client: Any) -> None:
    _activity(sim, client)
    run, rows = _run(sim, client)
    assert run.id.startswith("frr_") and run.status == "succeeded" and run.result.object == "file"
    assert client.v1.reporting.report_runs.retrieve(run.id).result.id == run.result.id
    assert client.v1.files.retrieve(run.result.id).size == len(
        httpx.get(run.result.url, headers=AUTH).content
    )
    report_type = client.v1.reporting.report_types.retrieve(REPORT)
    assert report_type.default_columns == list(ITEMIZED_3_COLUMNS[:12])
    assert [r.id for r in client.v1.reporting.report_runs.list().data] == [run.id]
    assert list(rows[0]) == list(ITEMIZED_3_COLUMNS[:12])
    cats = sorted(r["reporting_category"] for r in rows)
    assert cats == ["charge", "charge", "charge", "payout", "refund", "transfer"]
    assert httpx.get(run.result.url).status_code == 401  # authenticated like the API


def test_rows_sum_to_the_simulators_balance_movements(sim: SimServer, client: Any) -> None:
    _activity(sim, client)
    _, rows = _run(sim, client)
    state = sim.admin.state("balance_transaction")
    platform = [bt for bt in state["objects"]["balance_transaction"] if bt["id"] not in state["owners"]]
    assert {r["balance_transaction_id"] for r in rows} == {bt["id"] for bt in platform}
    for cur in ("usd", "jpy", "bhd"):
        for col, field in (("gross", "amount"), ("fee", "fee"), ("net", "net")):
            csv_sum = sum((Decimal(r[col]) for r in rows if r["currency"] == cur), Decimal(0))
            sim_sum = to_major(sum(bt[field] for bt in platform if bt["currency"] == cur), cur)
            assert csv_sum == sim_sum, (cur, col)
    for r in rows:
        assert Decimal(r["gross"]) - Decimal(r["fee"]) == Decimal(r["net"])


def test_major_units_follow_the_currency_exponent(sim: SimServer, client: Any) -> None:
    _activity(sim, client)
    _, rows = _run(sim, client, columns=["currency", "gross", "fee", "net", "reporting_category"])
    charges = {r["currency"]: r for r in rows if r["reporting_category"] == "charge"}
    assert charges["usd"]["gross"] == "123.45" and charges["usd"]["fee"] == "3.88"
    assert charges["jpy"]["gross"] == "5000" and charges["jpy"]["fee"] == "175"  # 145 + 30 yen
    assert charges["bhd"]["gross"] == "12.345" and charges["bhd"]["fee"] == "0.388"
    refund = next(r for r in rows if r["reporting_category"] == "refund")
    assert refund["gross"] == "-23.45" and refund["fee"] == "0.00"


def test_columns_filters_and_metadata(sim: SimServer, client: Any) -> None:
    _activity(sim, client)
    cols = [
        "balance_transaction_id",
        "reporting_category",
        "charge_id",
        "payment_intent_id",
        "card_brand",
        "payment_metadata[order]",
        "connected_account_id",
    ]
    _, rows = _run(sim, client, columns=cols, currency="usd")
    assert list(rows[0]) == cols and {r["reporting_category"] for r in rows} == {
        "charge",
        "refund",
        "payout",
        "transfer",
    }
    charge = next(r for r in rows if r["reporting_category"] == "charge")
    assert charge["payment_metadata[order]"] == "A-1" and charge["card_brand"] == "visa"
    assert charge["payment_intent_id"].startswith("pi_")
    assert (
        next(r for r in rows if r["reporting_category"] == "transfer")["connected_account_id"]
        == "acct_seller1"
    )
    _, refunds = _run(sim, client, reporting_category="refund")
    assert len(refunds) == 1


def test_interval_is_half_open_and_validated(sim: SimServer, client: Any) -> None:
    _activity(sim, client)
    now = sim.admin.now()
    _, empty = _run(sim, client, interval_start=now - 7200, interval_end=now - 3600)
    assert empty == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.reporting.report_runs.create(
            params={"report_type": REPORT, "parameters": {"interval_start": now, "interval_end": now - 1}}
        )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.reporting.report_runs.create(
            params={"report_type": REPORT, "parameters": {"interval_start": now, "interval_end": now + 86400}}
        )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.reporting.report_runs.create(
            params={"report_type": "nope.1", "parameters": {"interval_start": now - 10, "interval_end": now}}
        )


def test_timezone_column(sim: SimServer, client: Any) -> None:
    _activity(sim, client)
    _, rows = _run(sim, client, timezone="Asia/Tokyo", columns=["created_utc", "created"])
    from datetime import datetime, timedelta

    utc = datetime.strptime(rows[0]["created_utc"], "%Y-%m-%d %H:%M:%S")
    assert datetime.strptime(rows[0]["created"], "%Y-%m-%d %H:%M:%S") - utc == timedelta(hours=9)


@pytest.mark.parametrize(
    "kind",
    [
        "settlement_missing_row",
        "settlement_extra_row",
        "settlement_amount_changed",
        "settlement_fee_changed",
        "settlement_currency_changed",
        "settlement_duplicate_row",
    ],
)
def test_settlement_faults_are_injected_and_recorded(sim: SimServer, client: Any, kind: str) -> None:
    _activity(sim, client)
    _, honest = _run(sim, client)
    sim.admin.set_faults([{"kind": kind, "count": 1, "amount_delta_minor": 7}])
    _, faulty = _run(sim, client)
    (rec,) = sim.admin.injected_faults(kind)
    target = rec["detail"]["balance_transaction_id"]
    by_id = {r["balance_transaction_id"]: r for r in honest}
    faulty_by_id = {r["balance_transaction_id"]: r for r in faulty}
    if kind == "settlement_missing_row":
        assert target in by_id and target not in faulty_by_id and len(faulty) == len(honest) - 1
    elif kind == "settlement_extra_row":
        assert target not in by_id and target in faulty_by_id and len(faulty) == len(honest) + 1
    elif kind == "settlement_duplicate_row":
        assert [r["balance_transaction_id"] for r in faulty].count(target) == 2 and len(faulty) == len(
            honest
        ) + 1
        assert [r for r in faulty if r["balance_transaction_id"] == target] == [by_id[target]] * 2
    elif kind == "settlement_currency_changed":
        assert faulty_by_id[target]["currency"] != by_id[target]["currency"]
    else:
        col = "gross" if kind == "settlement_amount_changed" else "fee"
        cur = by_id[target]["currency"]
        assert Decimal(faulty_by_id[target][col]) - Decimal(by_id[target][col]) == to_major(7, cur)
    # The fault fired once; the next file is honest again.
    _, again = _run(sim, client)
    assert len(again) == len(honest) and len(sim.admin.injected_faults(kind)) == 1


def test_a_settlement_fault_aimed_at_a_row_touches_only_it_and_waits_for_a_report_that_has_it(
    sim: SimServer, client: Any
) -> None:
    _activity(sim, client)
    sim.admin.set_faults(
        [
            {"kind": "settlement_amount_changed", "target": "A-1", "count": 1, "amount_delta_minor": 5},
            {"kind": "settlement_missing_row", "target": "no-such-metadata", "count": 1},
        ]
    )
    columns = ["balance_transaction_id", "reporting_category", "gross", "payment_metadata[order]"]
    _, faulty = _run(sim, client, columns=columns)
    (rec,) = sim.admin.injected_faults()
    assert rec["kind"] == "settlement_amount_changed"
    [touched] = [r for r in faulty if r["balance_transaction_id"] == rec["detail"]["balance_transaction_id"]]
    assert touched["payment_metadata[order]"] == "A-1"  # the charge or the refund of order A-1, nothing else
    # The rule without a row in this report did not fire, so it still waits (count unspent).
    rules = {r["kind"]: r for r in sim.admin.state()["faults"]["rules"]}
    assert (rules["settlement_missing_row"]["fired"], rules["settlement_amount_changed"]["fired"]) == (0, 1)


def test_settlement_cli(sim: SimServer, client: Any, tmp_path) -> None:
    _activity(sim, client)
    now = sim.admin.now()
    sim.admin.advance(seconds=2)
    out = tmp_path / "settlement.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "psp_sim",
            "settlement",
            "--url",
            sim.base_url,
            "--api-key",
            sim.api_key,
            "--start",
            str(now - 3600),
            "--end",
            str(now + 1),
            "--out",
            str(out),
            "--column",
            "balance_transaction_id",
            "--column",
            "net",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["balance_transaction_id", "net"] and len(rows) == 6
