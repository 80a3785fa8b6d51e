"""Both passes on two worker processes: the file validated and spooled by byte ranges, then matched and booked;
it books, counts and flags exactly what one process does (a quoted newline at the cut, a row error or a duplicate
in the second range included), and a file an interrupted run left half done is resumed by a two-worker run like
by a one-process run.

Spawning workers costs a second or two of CPU each, so the tests that need no worker setup of their own share one
:class:`WorkerPool` for the module."""

from __future__ import annotations

import dataclasses
import io
import uuid

import pytest
import sqlalchemy as sa

from recon_svc.config import ReconSettings
from recon_svc.settlement import tables as t
from recon_svc.settlement.parse_ranges import copy_and_hash, cuts
from recon_svc.settlement.records import GrpcPaymentRecords
from recon_svc.settlement.run import WorkerPool, WorkerSetup, reconcile_file
from svckit import pki
from svckit.errors import DomainError
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.gen.payments.v1 import payout_service_pb2_grpc as po_grpc
from svckit.testing import free_port
from tests.recon import test_settlement_chunks as chunks
from tests.recon.test_settlement_chunks import RULES, _bookings, _Crash, _CrashingBooker

ledger = chunks.ledger  # the fixture: the real ledger as the ``recon`` identity

HEADER = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,"
HEADER += "payment_intent_id,payment_metadata[checkout_id]"
ROWS = 14


async def _seed_orders(services, tag: str, n: int) -> None:
    """Our side straight in the payments database (as the benchmark does): one settled success per checkout."""
    async with services["payment"].engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO payment_events (checkout_id, buyer_info, buyer_id, mode, currency, total_minor)"
                " SELECT :p || '_co_' || i, '{}', 'buyer-w', 'DIRECT', 'USD', 1000 + i"
                " FROM generate_series(0, :n - 1) AS i"
            ),
            {"p": tag, "n": n},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO payment_orders (payment_order_id, checkout_id, seller_account, amount_minor, currency,"
                " state, psp_reference, wallet_updated, ledger_updated)"
                " SELECT :p || '_po_' || i, :p || '_co_' || i, 'seller-' || :p, 1000 + i, 'USD', 'SUCCESS',"
                " 'pi_' || :p || i, true, true FROM generate_series(0, :n - 1) AS i"
            ),
            {"p": tag, "n": n},
        )


def _file(tag: str) -> bytes:
    """ROWS charges of ours, one of them twice (a duplicate in another chunk), one for a checkout we never had
    and one whose amount differs."""
    lines = [HEADER]
    for i in range(ROWS):
        gross = 1000 + i + (7 if i == 5 else 0)
        lines.append(
            f"txn_{tag}{i},2026-11-20 10:00:{i:02d},usd,{gross / 100:.2f},0.30,{(gross - 30) / 100:.2f},charge,"
            f"ch_{tag}{i},pi_{tag}{i},{tag}_co_{i}"
        )
    lines.append(lines[3])  # txn 2 again
    lines.append(
        f"txn_{tag}x,2026-11-20 10:01:00,usd,5.00,0.30,4.70,charge,ch_{tag}x,pi_{tag}x,{tag}_co_unknown"
    )
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def records(infra, services):
    channel = infra.channel(services["payment"].address, "recon")
    return GrpcPaymentRecords(pb_grpc.PaymentServiceStub(channel), 10, po_grpc.PayoutServiceStub(channel))


@pytest.fixture(scope="module")
def pool(infra, services):
    with WorkerPool(_setup(infra, services), 2) as kept:
        yield kept


def _setup(infra, services) -> WorkerSetup:
    files = pki.files(infra.pki_dir, "recon")
    return WorkerSetup(
        database_url=services["recon"].engine.url.render_as_string(hide_password=False),
        payment_address=services["payment"].address,
        ledger_address=services["ledger"].address,
        ca_file=str(files.ca_file),
        cert_file=str(files.cert_file),
        key_file=str(files.key_file),
        deadline_seconds=30,
    )


async def _per_run(engine, run_id: str) -> tuple[int, list[tuple[str, int, int, int]], list[tuple[str, int]]]:
    async with engine.connect() as conn:
        claimed = await conn.scalar(sa.select(sa.func.count()).where(t.rows.c.run_id == run_id))
        bookings = (
            await conn.execute(
                sa.select(t.bookings.c.state, t.bookings.c.gross_minor, t.bookings.c.fee_minor, t.bookings.c.row_count)
                .where(t.bookings.c.run_id == run_id)
            )
        ).all()  # fmt: skip
        mismatches = (
            await conn.execute(
                sa.select(t.mismatches.c.code, t.mismatches.c.line).where(t.mismatches.c.run_id == run_id)
            )
        ).all()
    totals = [("all", sum(b[1] for b in bookings), sum(b[2] for b in bookings), sum(b[3] for b in bookings))]
    return (
        claimed or 0,
        [*totals, *sorted({(b[0], 0, 0, 0) for b in bookings})],
        sorted(tuple(m) for m in mismatches),
    )


def _comparable(report) -> dict:
    keep = ("state", "rows_read", "matched", "booked", "already_counted", "pending", "auto_fixed",
            "mismatches_by_code", "open_by_classification", "psp_totals", "booked_totals")  # fmt: skip
    return {k: v for k, v in report.as_dict().items() if k in keep}


async def test_two_workers_book_count_and_flag_exactly_what_one_process_does(services, records, ledger, pool):
    engine = services["recon"].engine
    one_tag, two_tag = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    await _seed_orders(services, one_tag, ROWS)
    await _seed_orders(services, two_tag, ROWS)
    one = await reconcile_file(engine, io.BytesIO(_file(one_tag)), records, ledger, RULES, chunk_rows=3)
    two = await reconcile_file(engine, io.BytesIO(_file(two_tag)), records, ledger, RULES, chunk_rows=3,
                               worker_pool=pool)  # fmt: skip
    assert one.state == "SUCCEEDED", one
    assert one.mismatches_by_code == {"DUPLICATE_ROW": 1, "UNMATCHED_ROW": 1, "AMOUNT_DIFFERS": 1}
    assert (one.matched, one.booked) == (ROWS, ROWS - 1)
    assert _comparable(two) == _comparable(one)
    assert await _per_run(engine, two.run_id) == await _per_run(engine, one.run_id)
    async with engine.connect() as conn:
        committed = await conn.scalar(
            sa.select(t.files.c.committed_line).where(t.files.c.sha256 == two.file_sha256)
        )
    assert committed == ROWS + 3  # the last line: the chunks committed in file order
    # The repeated row is the file's second-to-last line, in the second range; the row it repeats is in the first.
    assert ("DUPLICATE_ROW", ROWS + 2) in (await _per_run(engine, two.run_id))[2]


async def test_a_two_worker_run_resumes_a_file_an_interrupted_run_left(services, records, ledger, pool):
    engine = services["recon"].engine
    tag = f"w{uuid.uuid4().hex[:8]}"
    await _seed_orders(services, tag, ROWS)
    data = _file(tag)
    with pytest.raises(_Crash):
        await reconcile_file(engine, io.BytesIO(data), records,
                             _CrashingBooker(ledger, crash_at=2, after_posting=False), RULES, chunk_rows=3)  # fmt: skip
    again = await reconcile_file(
        engine, io.BytesIO(data), records, ledger, RULES, chunk_rows=3, worker_pool=pool
    )
    assert again.state == "SUCCEEDED", again
    # Two chunks of three rows were counted by the interrupted run; the rest is reconciled now, once.
    assert again.already_counted == 6
    assert again.booked == ROWS - 6  # rows 6.. of ours (row 5, whose amount differs, was in the counted part)
    bookings = await _bookings(engine, tag)
    assert sum(b[1] for b in bookings) == ROWS - 1 and {b[2] for b in bookings} == {"posted"}


async def test_a_failing_worker_stops_the_other_and_the_file_is_resumed_whole(
    infra, services, records, ledger
):
    engine = services["recon"].engine
    tag = f"w{uuid.uuid4().hex[:8]}"
    await _seed_orders(services, tag, ROWS)
    data = _file(tag)
    unreachable = dataclasses.replace(_setup(infra, services), payment_address=f"127.0.0.1:{free_port()}")
    with pytest.raises(DomainError):  # the payment service cannot be reached: the run stops like a crash
        await reconcile_file(engine, io.BytesIO(data), records, ledger, RULES, chunk_rows=3, workers=2,
                             worker_setup=unreachable)  # fmt: skip
    assert await _bookings(engine, tag) == []  # no chunk got its records, so none was claimed
    again = await reconcile_file(engine, io.BytesIO(data), records, ledger, RULES, chunk_rows=3)
    assert (again.state, again.already_counted, again.booked) == ("SUCCEEDED", 0, ROWS - 1)


def test_the_worker_setup_never_shows_its_database_url():
    setup = WorkerSetup("postgresql+psycopg://recon:s3cret-pw@db/recon", "p:1", "l:2", "ca", "cert", "key")
    assert "s3cret-pw" not in repr(setup) and "s3cret-pw" not in str(setup)


async def test_a_file_below_the_workers_threshold_is_reconciled_in_the_callers_own_process(
    infra, services, records, ledger
):
    engine = services["recon"].engine
    tag = f"w{uuid.uuid4().hex[:8]}"
    await _seed_orders(services, tag, ROWS)
    # Workers that could not reach the payment service: the run succeeds only if none is started.
    unreachable = dataclasses.replace(_setup(infra, services), payment_address=f"127.0.0.1:{free_port()}")
    report = await reconcile_file(engine, io.BytesIO(_file(tag)), records, ledger, RULES, chunk_rows=3, workers=2,
                                  worker_setup=unreachable, workers_min_rows=ROWS + 10)  # fmt: skip
    assert (report.state, report.booked) == ("SUCCEEDED", ROWS - 1)


async def test_the_services_settings_give_workers_that_reach_its_database_and_services(
    infra, services, records, ledger
):
    engine = services["recon"].engine
    url = engine.url
    files = pki.files(infra.pki_dir, "recon")
    settings = ReconSettings(
        database_url=url.set(database="postgres").render_as_string(hide_password=False),
        database_name=url.database,
        payment_addr=services["payment"].address,
        ledger_addr=services["ledger"].address,
        tls_ca_file=files.ca_file,
        tls_cert_file=files.cert_file,
        tls_key_file=files.key_file,
    )
    tag = f"w{uuid.uuid4().hex[:8]}"
    await _seed_orders(services, tag, ROWS)
    report = await reconcile_file(engine, io.BytesIO(_file(tag)), records, ledger, RULES, chunk_rows=3, workers=2,
                                  worker_setup=WorkerSetup.from_settings(settings))  # fmt: skip
    assert (report.state, report.matched, report.booked) == ("SUCCEEDED", ROWS, ROWS - 1)
    assert sum(b[1] for b in await _bookings(engine, tag)) == ROWS - 1


DESCRIBED = HEADER.replace(",payment_intent_id,", ",description,payment_intent_id,")


def _described_file(tag: str, descriptions: dict[int, str]) -> bytes:
    """ROWS charges of ours with a description column (each given one is written as it is: quoted or not)."""
    lines = [DESCRIBED]
    for i in range(ROWS):
        gross = 1000 + i
        lines.append(
            f"txn_{tag}{i},2026-11-20 10:00:{i:02d},usd,{gross / 100:.2f},0.30,{(gross - 30) / 100:.2f},charge,"
            f"ch_{tag}{i},{descriptions.get(i, '')},pi_{tag}{i},{tag}_co_{i}"
        )
    return ("\n".join(lines) + "\n").encode()


def _with_quoted_newlines_at_the_middle(tag: str) -> bytes:
    """A file whose middle byte is inside a quoted description of many lines: the first newline after the
    middle is inside the quotes, not a record's end."""
    note = '"' + "a note\n" * 30 + '"'
    for row in range(ROWS):
        data = _described_file(tag, {row: note})
        middle = len(data) // 2
        if data[:middle].count(b'"') % 2 == 1 and data.find(b"\n", middle) < data.rfind(b'"'):
            return data
    raise AssertionError("no row puts the quoted field across the middle")


def test_a_cut_never_falls_on_a_newline_inside_quotes(tmp_path):
    data = _with_quoted_newlines_at_the_middle("cut")
    with (tmp_path / "copy").open("w+b") as copy:
        copied = copy_and_hash(io.BytesIO(data), copy)
        starts = cuts(copy, copied, 2)
    assert copied.size == len(data)
    assert len(starts) == 2 and starts[0] == 0
    cut = starts[1]
    assert data[cut - 1 : cut] == b"\n" and data[:cut].count(b'"') % 2 == 0
    assert cut > len(data) // 2 and data[cut:].startswith(b"txn_cut")  # the next record, whole


async def test_a_quoted_newline_at_the_cut_is_read_as_one_process_reads_it(services, records, ledger, pool):
    engine = services["recon"].engine
    one_tag, two_tag = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    await _seed_orders(services, one_tag, ROWS)
    await _seed_orders(services, two_tag, ROWS)
    one = await reconcile_file(engine, io.BytesIO(_with_quoted_newlines_at_the_middle(one_tag)), records, ledger,
                               RULES, chunk_rows=3)  # fmt: skip
    two = await reconcile_file(engine, io.BytesIO(_with_quoted_newlines_at_the_middle(two_tag)), records, ledger,
                               RULES, chunk_rows=3, worker_pool=pool)  # fmt: skip
    assert (one.state, one.rows_read, one.booked, one.mismatches_by_code) == ("SUCCEEDED", ROWS, ROWS, {})
    assert _comparable(two) == _comparable(one)
    assert await _per_run(engine, two.run_id) == await _per_run(engine, one.run_id)


async def test_a_bad_row_in_the_second_range_is_reported_at_its_line_and_nothing_is_booked(
    services, records, ledger, pool
):
    tag = f"w{uuid.uuid4().hex[:8]}"
    await _seed_orders(services, tag, ROWS)
    # Row 1's description spans three lines, so the lines after it are not the rows' count plus one; the last
    # row's amount has three decimals.
    data = _described_file(tag, {1: '"two\nmore\nlines"'}).replace(
        f"usd,{(1000 + ROWS - 1) / 100:.2f},".encode(), f"usd,{(1000 + ROWS - 1) / 100:.2f}1,".encode()
    )
    one = await reconcile_file(
        services["recon"].engine, io.BytesIO(data), records, ledger, RULES, chunk_rows=3
    )
    # Another run of the same bytes in workers: a failed run claims nothing, so it is not a duplicate file.
    two = await reconcile_file(services["recon"].engine, io.BytesIO(data), records, ledger, RULES, chunk_rows=3,
                               worker_pool=pool)  # fmt: skip
    last_line = ROWS + 1 + 2  # the header, then ROWS rows of which one spans three lines
    assert one.state == "FAILED" and [(e["line"], e["reason"]) for e in one.row_errors] == [
        (last_line, "AMOUNT_PRECISION_EXCEEDED")
    ]
    assert _comparable(two) == _comparable(one) and two.row_errors == one.row_errors
    assert two.error == one.error and (two.booked, two.rows_read) == (0, 0)
    assert await _bookings(services["recon"].engine, tag) == []


async def test_a_stray_quote_that_misplaces_the_cut_still_reads_the_file_as_one_process(
    services, records, ledger, pool
):
    engine = services["recon"].engine
    one_tag, two_tag = f"w{uuid.uuid4().hex[:8]}", f"w{uuid.uuid4().hex[:8]}"
    await _seed_orders(services, one_tag, ROWS)
    await _seed_orders(services, two_tag, ROWS)

    def data(tag: str) -> bytes:
        # An unquoted description with a quote in it (the csv module reads it as a plain character) flips the
        # quote count's parity for the rest of the file; a quoted one of many lines follows near the middle.
        return _described_file(tag, {0: 'a 12" record', ROWS // 2: '"' + "a note\n" * 30 + '"'})

    one = await reconcile_file(engine, io.BytesIO(data(one_tag)), records, ledger, RULES, chunk_rows=3)
    two = await reconcile_file(engine, io.BytesIO(data(two_tag)), records, ledger, RULES, chunk_rows=3,
                               worker_pool=pool)  # fmt: skip
    assert (one.state, one.rows_read, one.booked) == ("SUCCEEDED", ROWS, ROWS)
    assert _comparable(two) == _comparable(one)
    assert await _per_run(engine, two.run_id) == await _per_run(engine, one.run_id)


async def test_a_refused_file_reads_the_same_on_workers_and_books_nothing(services, records, ledger, pool):
    engine = services["recon"].engine
    tag = f"w{uuid.uuid4().hex[:8]}"
    good = _described_file(tag, {i: "x" * 800 for i in range(ROWS)})  # 13 KiB: past the header's first read
    bad_files = {
        "empty": b"",
        "wrong columns": b"id;created;amount\n1;2;3\n",
        # A quote opened in the last row and never closed (a file cut inside a field): found in the second range.
        "truncated": good + f'txn_{tag}z,2026-11-20 10:02:00,usd,1.00,0.30,0.70,charge,ch_z,"cut'.encode(),
        # Not UTF-8 near its end: found in the second range, not by the parent's read of the header.
        "not utf-8": good + b"\xff\xfe" * 10 + b"\n",
    }
    for name, data in bad_files.items():
        one = await reconcile_file(engine, io.BytesIO(data), records, ledger, RULES, chunk_rows=3)
        two = await reconcile_file(
            engine, io.BytesIO(data), records, ledger, RULES, chunk_rows=3, worker_pool=pool
        )
        assert one.state == "FAILED" and one.error, name
        assert (two.state, two.error, two.booked) == (one.state, one.error, 0), name
    assert await _bookings(engine, tag) == []
