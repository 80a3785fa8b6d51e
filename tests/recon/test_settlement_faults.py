"""Seeded faults in the PSP's settlement file, produced by the simulator's fault switches (each aimed at one
cart's row), are each found with their code and classification, and nothing else is flagged."""

from __future__ import annotations

import datetime as dt

from tests.recon import test_settlement_run as base
from tests.recon.test_settlement_run import (
    _checkout,
    _fresh_start,
    _mismatches,
    _pay,
    _report_csv,
    _run,
    _settled,
)

recon = base.recon  # the fixture: recon's ports as the ``recon`` identity


async def test_each_seeded_fault_of_the_file_is_found_with_its_code(shared_psp, services, recon):
    t0 = dt.datetime.now(dt.UTC)
    sim = shared_psp
    carts = [[600, 400], [2000], [3000], [1500]]
    try:
        paid, data = await _day_with_faults(sim, services, recon, carts)
        injected = {f["kind"] for f in sim.admin.injected_faults()}
    finally:
        sim.admin.clear_faults()  # rules and their record
    other_amount, fee_off, twice, _ = (_checkout(orders) for orders in paid)
    assert injected == {
        "settlement_amount_changed",
        "settlement_fee_changed",
        "settlement_duplicate_row",
        "settlement_missing_row",
        "settlement_extra_row",
    }

    # Three days on, the grace period (2 days) is over for the cart whose row the PSP left out.
    window = (t0, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    report = await _run(
        recon, data, expected_window=window, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    )
    assert report.state == "SUCCEEDED", report
    assert report.mismatches_by_code == {
        "AMOUNT_DIFFERS": 1,
        "FEE_DIFFERS": 1,
        "DUPLICATE_ROW": 1,
        "UNMATCHED_ROW": 1,
        "MISSING_FROM_PSP": 1,
    }
    found = {m.code: m for m in await _mismatches(recon, report.run_id)}
    assert (found["AMOUNT_DIFFERS"].our_reference, found["AMOUNT_DIFFERS"].classification) == (
        f"checkout:{other_amount}",
        "manual",
    )
    assert found["AMOUNT_DIFFERS"].differences == [
        {"field": "amount_minor", "ours": "1000", "theirs": "1050"}
    ]
    # 2.9 % of 20.00 + 0.30 = 0.88 expected; the PSP took 0.89: within tolerance, booked with the PSP's fee.
    assert (found["FEE_DIFFERS"].our_reference, found["FEE_DIFFERS"].state) == (
        f"checkout:{fee_off}",
        "auto_fixed",
    )
    assert found["FEE_DIFFERS"].differences == [{"field": "fee_minor", "ours": "88", "theirs": "89"}]
    assert (found["DUPLICATE_ROW"].classification, found["DUPLICATE_ROW"].amount_minor) == ("manual", 3000)
    assert twice in data.decode()
    assert (found["UNMATCHED_ROW"].classification, found["UNMATCHED_ROW"].amount_minor) == (
        "unclassified",
        777,
    )
    assert (found["MISSING_FROM_PSP"].our_reference, found["MISSING_FROM_PSP"].classification) == (
        f"order:{paid[3][0]}",
        "manual",
    )
    assert report.booked == 2  # the fee-differs charge and the duplicated one once; never the other amount


async def _day_with_faults(sim, services, recon, carts):
    """Pay the carts, then arm one fault per cart (aimed by its checkout id) and fetch the day's report."""
    start = _fresh_start(sim)
    paid = [await _pay(recon, amounts) for amounts in carts]
    await _settled(services, [o for orders in paid for o in orders])
    aimed = zip(
        (
            "settlement_amount_changed",
            "settlement_fee_changed",
            "settlement_duplicate_row",
            "settlement_missing_row",
        ),
        paid,
        strict=True,
    )
    sim.admin.set_faults(
        [
            {"kind": kind, "target": _checkout(orders), "count": 1, "amount_delta_minor": delta}
            for (kind, orders), delta in zip(aimed, (50, 1, 0, 0), strict=True)
        ]
        + [{"kind": "settlement_extra_row", "count": 1, "amount_delta_minor": 777}]
    )
    return paid, _report_csv(sim, start)
