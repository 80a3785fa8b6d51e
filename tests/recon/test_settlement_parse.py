"""The settlement-file parser: good rows in minor units, bad rows with line and reason, bad files refused whole."""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING

import pytest

from psp_sim.reporting import ITEMIZED_3_COLUMNS, render_csv
from recon_svc.settlement.parse import RowError, SettlementFileRefused, SettlementParser, SettlementRow

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer  # what io.RawIOBase.readinto is declared to take

COLUMNS = [*ITEMIZED_3_COLUMNS, "payment_metadata[payment_order_id]", "refund_metadata[refund_id]"]


def _row(**over: str) -> dict[str, str]:
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        balance_transaction_id="txn_1",
        created_utc="2026-11-20 10:11:12",
        currency="usd",
        gross="12.34",
        fee="0.66",
        net="11.68",
        reporting_category="charge",
        source_id="ch_1",
        charge_id="ch_1",
        payment_intent_id="pi_1",
    )
    row["payment_metadata[payment_order_id]"] = "po-1"
    row.update(over)
    return row


def _file(*rows: dict[str, str]) -> bytes:
    return render_csv(list(rows), COLUMNS)


def _parse(data: bytes) -> tuple[list[SettlementRow | RowError], SettlementParser]:
    parser = SettlementParser(io.BytesIO(data))
    return list(parser), parser


def test_rows_become_minor_units_with_the_currency_exponent():
    data = _file(
        _row(),
        _row(balance_transaction_id="txn_2", currency="jpy", gross="500", fee="20", net="480"),
        _row(balance_transaction_id="txn_3", currency="bhd", gross="-1.234", fee="0.000", net="-1.234",
             reporting_category="refund", source_id="re_1", **{"refund_metadata[refund_id]": "rf-1"}),
    )  # fmt: skip
    out, parser = _parse(data)
    assert [type(r) for r in out] == [SettlementRow] * 3
    usd, jpy, bhd = out
    assert (
        isinstance(usd, SettlementRow) and isinstance(jpy, SettlementRow) and isinstance(bhd, SettlementRow)
    )
    assert (usd.currency, usd.gross_minor, usd.fee_minor, usd.net_minor) == ("USD", 1234, 66, 1168)
    assert usd.metadata == {"payment.payment_order_id": "po-1"}
    assert (usd.payment_intent_id, usd.line) == ("pi_1", 2)
    assert (jpy.gross_minor, jpy.fee_minor) == (500, 20)
    assert (bhd.gross_minor, bhd.reporting_category, bhd.metadata["refund.refund_id"]) == (
        -1234,
        "refund",
        "rf-1",
    )
    assert parser.sha256 == hashlib.sha256(data).hexdigest()
    assert parser.size_bytes == len(data)


def test_a_header_only_file_is_a_day_without_activity():
    out, _ = _parse(_file())
    assert out == []


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"gross": "12.345", "net": "11.685"}, "AMOUNT_PRECISION_EXCEEDED"),
        ({"currency": "jpy", "gross": "12.5", "fee": "0", "net": "12.5"}, "AMOUNT_PRECISION_EXCEEDED"),
        ({"currency": "xyz"}, "UNKNOWN_CURRENCY"),
        ({"gross": "12,34"}, "INVALID_AMOUNT"),
        ({"gross": "1e3"}, "INVALID_AMOUNT"),
        ({"gross": "99999999999999999999"}, "INVALID_AMOUNT"),
        ({"net": "11.67"}, "NET_MISMATCH"),
        ({"created_utc": "20/11/2026"}, "INVALID_TIMESTAMP"),
        ({"reporting_category": "charges"}, "UNKNOWN_REPORTING_CATEGORY"),
        ({"balance_transaction_id": ""}, "INVALID_ID"),
        ({"source_id": "ch 1;drop"}, "INVALID_ID"),
    ],
)  # fmt: skip
def test_a_bad_row_is_reported_with_its_line_and_the_others_still_parse(over, reason):
    bad = _row(balance_transaction_id="txn_9")
    bad.update(over)
    out, _ = _parse(_file(_row(), bad, _row(balance_transaction_id="txn_3")))
    assert isinstance(out[0], SettlementRow) and isinstance(out[2], SettlementRow)
    error = out[1]
    assert isinstance(error, RowError)
    assert (error.line, error.reason) == (3, reason)


def test_a_truncated_last_row_is_a_row_error():
    data = _file(_row(), _row(balance_transaction_id="txn_2"))
    out, _ = _parse(data[: data.rindex(b",usd,") + 3])
    assert isinstance(out[0], SettlementRow)
    assert isinstance(out[1], RowError) and (out[1].line, out[1].reason) == (3, "WRONG_COLUMN_COUNT")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (b"payout_id,effective_at_utc,currency,gross,fee,net,reporting_category,balance_transaction_id\n",
         "missing column(s) created_utc, source_id"),
        (_file(_row()).replace(b",", b";"), "';'-delimited"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 10, "not UTF-8"),
        (b"A" * 200_000, "longer than"),
        (_file(_row(description="x")).replace(b",x,", b',"unclosed,'), "malformed CSV"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_a_settlement_report_is_refused_whole(data, says):
    with pytest.raises(SettlementFileRefused) as err:
        _parse(data)
    assert err.value.reason == "SETTLEMENT_FILE_REFUSED"
    assert says in err.value.message


def test_garbage_is_refused_without_reading_it_all():
    """100 MB of garbage is refused after its first line, not after loading it."""

    class Endless(io.RawIOBase):
        served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: WriteableBuffer) -> int:
            view = memoryview(buffer)  # BufferedReader hands a memoryview already; this types it
            n = len(view)
            view[:n] = b"\x07garbage," * (n // 9) + b"g" * (n % 9)
            self.served += n
            return n

    source = Endless()
    with pytest.raises(SettlementFileRefused):
        list(SettlementParser(io.BufferedReader(source)))
    assert source.served < 1_000_000
