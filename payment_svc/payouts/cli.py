"""``python -m payment_svc payouts …``: start a period's pay-out run and follow it with a progress bar, or
print a seller's statement. Talks to the running payment service over gRPC (mutual TLS with the
``TLS_*`` / ``PAYMENT_TLS_*`` certificate of the caller, normally the ``operator`` identity)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Annotated

import grpc
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from payment_svc.config import PaymentSettings
from svckit.config import load_settings
from svckit.context import IDEMPOTENCY_KEY_METADATA
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.payments.v1 import payout_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import from_rpc_error
from svckit.money import format_amount
from svckit.tls import security_or_exit

app = typer.Typer(help="Pay-outs: run a period, print a statement.", no_args_is_help=True)

AddressOpt = Annotated[
    str | None, typer.Option(help="The payment service (default: 127.0.0.1:PAYMENT_GRPC_PORT)")
]


def _channel(address: str | None) -> grpc.aio.Channel:
    settings = load_settings(PaymentSettings, environment="development")
    return security_or_exit(settings).aio_channel(address or f"127.0.0.1:{settings.grpc_port}")


def _fail(exc: grpc.aio.AioRpcError) -> typer.Exit:
    err = from_rpc_error(exc)
    typer.echo(f"error: {err.reason}: {err.message}", err=True)
    return typer.Exit(1)


@app.command()
def run(
    period: Annotated[str, typer.Option(help="The period to pay: 2026-11 (monthly) or 2026-W47 (weekly)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be paid")] = False,
    seller: Annotated[list[str] | None, typer.Option(help="Only this seller (repeatable)")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Reuse to resume the same request after an interruption")
    ] = None,
    address: AddressOpt = None,
    poll_seconds: Annotated[float, typer.Option(min=0.05)] = 0.5,
) -> None:
    """Start the run of PERIOD and follow it to the end: one pay-out per seller and period."""
    console = Console()

    async def go() -> pb.PayoutRun:
        channel = _channel(address)
        stub = pb_grpc.PayoutServiceStub(channel)
        try:
            started = await stub.StartPayoutRun(
                pb.StartPayoutRunRequest(period=period, dry_run=dry_run, seller_accounts=seller or []),
                metadata=((IDEMPOTENCY_KEY_METADATA, idempotency_key or f"cli-{uuid.uuid4().hex}"),),
            )
            current = started.run
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=False) as bar:
                task = bar.add_task(f"pay-out run {period}", total=current.sellers_total or 1)
                while current.state != pb.PAYOUT_RUN_STATE_COMPLETED:
                    bar.update(task, completed=current.sellers_done, total=current.sellers_total or 1)
                    await asyncio.sleep(poll_seconds)
                    reply = await stub.GetPayoutRun(pb.GetPayoutRunRequest(run_id=current.run_id))
                    current = reply.run
                bar.update(task, completed=current.sellers_done, total=current.sellers_total or 1)
            return current
        except grpc.aio.AioRpcError as exc:
            raise _fail(exc) from None
        finally:
            await channel.close()

    result = asyncio.run(go())
    table = Table(title=f"run {result.run_id} of {result.period}" + (" (dry run)" if result.dry_run else ""))
    for name in ("seller", "amount", "pay-out / reason", "detail"):
        table.add_column(name)
    for item in result.items:
        amount = format_amount(item.amount.amount_minor, item.amount.currency) + " " + item.amount.currency
        why = (
            pb.SkipReason.Name(item.skip_reason).removeprefix("SKIP_REASON_").lower()
            if item.skip_reason
            else ""
        )
        table.add_row(item.seller_account, amount, item.payout_id or why, item.detail)
    console.print(table)
    reasons = Counter(
        pb.SkipReason.Name(i.skip_reason).removeprefix("SKIP_REASON_").lower()
        for i in result.items
        if i.skip_reason
    )
    console.print(
        f"{result.payouts_created} pay-outs created, {result.sellers_skipped} sellers skipped"
        + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))})" if reasons else "")
    )


@app.command()
def statement(
    seller: Annotated[str, typer.Option(help="The seller account")],
    period: Annotated[str, typer.Option(help="The period, 2026-11")],
    address: AddressOpt = None,
) -> None:
    """Print a seller's statement of a period as JSON (amounts in minor units)."""

    async def go() -> pb.GetStatementResponse:
        channel = _channel(address)
        try:
            stub = pb_grpc.PayoutServiceStub(channel)
            return await stub.GetStatement(pb.GetStatementRequest(seller_account=seller, period=period))
        except grpc.aio.AioRpcError as exc:
            raise _fail(exc) from None
        finally:
            await channel.close()

    from google.protobuf.json_format import MessageToDict

    typer.echo(json.dumps(MessageToDict(asyncio.run(go())), indent=2))
