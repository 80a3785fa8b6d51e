"""The parser's record path (what the first pass spools): the same values as the rows, timestamps checked as
strictly as datetime.fromisoformat, whatever the cache of parsed dates holds."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from recon_svc.settlement.parse import RowError, SettlementParser, SettlementRow, minor_units
from tests.recon.test_settlement_parse import _file, _row


def test_records_carry_what_the_rows_carry():
    data = _file(
        _row(),
        _row(balance_transaction_id="txn_2", created_utc="2026-11-20 23:59:59", currency="jpy", gross="500",
             fee="20", net="480"),
        _row(balance_transaction_id="txn_3", created_utc="2024-02-29 00:00:00"),
    )  # fmt: skip
    rows = list(SettlementParser(io.BytesIO(data)))
    records = list(SettlementParser(io.BytesIO(data)).records())
    assert all(isinstance(r, SettlementRow) for r in rows)
    assert [SettlementRow.from_record(r) for r in records if not isinstance(r, RowError)] == rows
    assert [r.to_record() for r in rows if isinstance(r, SettlementRow)] == records
    first, second, leap = (r for r in rows if isinstance(r, SettlementRow))
    assert first.created_utc == dt.datetime(2026, 11, 20, 10, 11, 12, tzinfo=dt.UTC)
    assert second.created_utc == dt.datetime(2026, 11, 20, 23, 59, 59, tzinfo=dt.UTC)
    assert leap.created_utc == dt.datetime(2024, 2, 29, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "created",
    ["2026-11-20 24:00:00", "2026-11-20 10:60:00", "2026-11-20 10:11:60", "2026-02-30 10:11:12",
     "2025-02-29 00:00:00", "2026-13-01 00:00:00", "2026-11-20T10:11:12", "2026-11-20 10:11:12Z"],
)  # fmt: skip
def test_an_impossible_time_is_a_row_error_even_on_a_date_seen_before(created):
    # The row before it has the same date (when the date is valid), so the date comes from the cache.
    same_day = created[:10] + " 09:00:00"
    data = _file(
        _row(created_utc=same_day),
        _row(balance_transaction_id="txn_2", created_utc=created),
        _row(balance_transaction_id="txn_3"),
    )
    out = list(SettlementParser(io.BytesIO(data)))
    assert isinstance(out[1], RowError) and (out[1].line, out[1].reason) == (3, "INVALID_TIMESTAMP")
    assert isinstance(out[2], SettlementRow)


def test_amounts_in_the_usual_form_and_every_other_give_exact_minor_units_or_the_same_refusals():
    accepted = {"12.34": 1234, "-12.34": -1234, "0.05": 5, "-0.00": 0, "1.5": 150, "7": 700,
                "9999999999999999.99": 999_999_999_999_999_999}  # fmt: skip
    for text, value in accepted.items():
        assert minor_units(text, "USD", "gross", 2) == value, text
    assert minor_units("1.234", "BHD", "gross", 3) == 1234 and minor_units("500", "JPY", "gross", 0) == 500
    refused = {"00.12": "INVALID_AMOUNT", "-.12": "INVALID_AMOUNT", "12.": "INVALID_AMOUNT",
               "\u0661\u0662.\u0663\u0664": "INVALID_AMOUNT",  # Arabic-Indic digits: int() would take them
               "1\u00b2.00": "INVALID_AMOUNT", "+1.00": "INVALID_AMOUNT", " 1.00": "INVALID_AMOUNT",
               "99999999999999999.99": "INVALID_AMOUNT", "12.345": "AMOUNT_PRECISION_EXCEEDED"}  # fmt: skip
    for text, reason in refused.items():
        with pytest.raises(Exception) as caught:
            minor_units(text, "USD", "gross", 2)
        assert getattr(caught.value, "reason", None) == reason, text


@pytest.mark.parametrize(
    "created", ["2026-11-20 10:11:60", "2026-11-20 10:11:1x", "2026-11-20 10:11:\u0661\u0662", "2026-11-20 10:11:5",
                "2026-11-20 10:11:123", "2026-11-20 10:11: 1", "2026-11-20 10:11:"],
)  # fmt: skip
def test_an_impossible_second_is_a_row_error_even_in_a_minute_seen_before(created):
    data = _file(
        _row(created_utc="2026-11-20 10:11:00"),
        _row(balance_transaction_id="txn_2", created_utc=created),
        _row(balance_transaction_id="txn_3", created_utc="2026-11-20 10:11:59"),
    )
    out = list(SettlementParser(io.BytesIO(data)))
    assert isinstance(out[1], RowError) and (out[1].line, out[1].reason) == (3, "INVALID_TIMESTAMP")
    assert isinstance(out[2], SettlementRow)
    assert out[2].created_utc == dt.datetime(2026, 11, 20, 10, 11, 59, tzinfo=dt.UTC)
