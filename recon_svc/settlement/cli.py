"""``python -m recon_svc run --date D | --file F``: one settlement run from a terminal, with a progress bar."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn
from rich.table import Table

from recon_svc.config import ReconSettings
from recon_svc.settlement.classify import Rules
from recon_svc.settlement.fetch import day_interval, fetch_report
from recon_svc.settlement.records import GrpcPaymentRecords, GrpcSettlementBooker
from recon_svc.settlement.run import RunReport, WorkerSetup, reconcile_file
from svckit.config import load_settings
from svckit.db import create_engine
from svckit.errors import DomainError
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc
from svckit.gen.payments.v1 import payment_service_pb2_grpc, payout_service_pb2_grpc
from svckit.logging import configure_logging
from svckit.tls import security_for


def rules_from(settings: ReconSettings) -> Rules:
    return Rules(
        fee_tolerance_minor=settings.settlement_fee_tolerance_minor,
        expected_fee_bps=settings.settlement_expected_fee_bps,
        expected_fee_fixed_minor=settings.settlement_expected_fee_fixed_minor,
    )


async def _reconcile(
    settings: ReconSettings,
    source: IO[bytes],
    size: int,
    console: Console,
    window: tuple[dt.datetime, dt.datetime] | None,
) -> RunReport:
    security = security_for(settings)
    payment_channel = security.aio_channel(settings.payment_addr)
    ledger_channel = security.aio_channel(settings.ledger_addr)
    engine = create_engine(settings.sqlalchemy_url(), pool_size=2)
    deadline = settings.upstream_deadline_seconds
    try:
        with Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
            console=console,
        ) as progress:  # fmt: skip
            task = progress.add_task("reconciling", total=size or None)
            records = GrpcPaymentRecords(
                payment_service_pb2_grpc.PaymentServiceStub(payment_channel),
                deadline,
                payout_service_pb2_grpc.PayoutServiceStub(payment_channel),
            )
            return await reconcile_file(
                engine,
                source,  # type: ignore[arg-type]  # a SpooledTemporaryFile is a binary file in all but its type
                records,
                GrpcSettlementBooker(ledger_service_pb2_grpc.LedgerServiceStub(ledger_channel), deadline),
                rules_from(settings),
                progress=lambda offset: progress.update(task, completed=offset),
                expected_window=window,
                fixer=records if settings.settlement_auto_fix else None,
                workers=settings.settlement_workers,
                worker_setup=WorkerSetup.from_settings(settings),
                workers_min_rows=settings.settlement_workers_min_rows,
            )
    finally:
        await payment_channel.close()
        await ledger_channel.close()
        await engine.dispose()


def print_report(report: RunReport, console: Console) -> None:
    table = Table(title=f"run {report.run_id}: {report.state}")
    table.add_column("")
    table.add_column("value", justify="right")
    for label, value in (
        ("file sha256", report.file_sha256[:16]),
        ("rows read", report.rows_read),
        ("matched", report.matched),
        ("booked", report.booked),
        ("already counted", report.already_counted),
        ("pending", report.pending),
        ("auto-fixed", report.auto_fixed),
        ("malformed rows", report.row_error_count),
        *((f"open {k}", v) for k, v in sorted(report.open_by_classification.items())),
        *((f"code {k}", v) for k, v in sorted(report.mismatches_by_code.items())),
    ):
        table.add_row(label, str(value))
    console.print(table)
    if report.error:
        console.print(f"[red]{report.error}[/red]")
    for e in report.row_errors[:20]:
        console.print(f"  line {e['line']}: {e['reason']}: {e['message']}")


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        date: Annotated[str, typer.Option(help="The UTC day to fetch from the PSP (YYYY-MM-DD).")] = "",
        file: Annotated[Path | None, typer.Option(help="A settlement CSV to reconcile instead.")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Reconcile one settlement file: the PSP's report for --date, or --file; the report is printed."""
        if bool(date) == (file is not None):
            raise typer.BadParameter("give exactly one of --date or --file")
        settings = load_settings(ReconSettings)
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        console = Console(stderr=json_out)
        try:
            window = None
            if file is not None:
                source: IO[bytes] = file.open("rb")
                size = os.fstat(source.fileno()).st_size
            else:
                try:
                    day = dt.date.fromisoformat(date)
                except ValueError:
                    raise typer.BadParameter(f"--date {date!r} is not YYYY-MM-DD") from None
                source = fetch_report(
                    settings.psp_base_url,
                    settings.psp_api_key.get_secret_value(),
                    day,
                    poll_seconds=settings.settlement_report_poll_seconds,
                    attempts=settings.settlement_report_poll_attempts,
                )
                size = source.seek(0, os.SEEK_END)
                source.seek(0)
                start, end = day_interval(day)
                window = (dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(end, dt.UTC))
            with source:
                report = asyncio.run(_reconcile(settings, source, size, console, window))
        except (DomainError, OSError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        if json_out:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        else:
            print_report(report, console)
        raise typer.Exit(0 if report.state != "FAILED" else 1)
