"""``python -m psp_sim``: ``serve`` (default) and ``settlement``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from stripe.params.reporting import ReportRunCreateParamsParameters

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Stripe-compatible PSP simulator.")


@app.callback(invoke_without_command=True)
def _default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PSP_SIM_PORT", help="TCP port.")] = 12111,
    config: Annotated[
        Path | None, typer.Option(help="TOML or JSON config file.", envvar="PSP_SIM_CONFIG")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for ids and fault decisions.")] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            help="SQLite file holding the state across restarts (default: memory only).",
            envvar="PSP_SIM_STATE",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="info logs one JSON line per request.")] = "info",
) -> None:
    """Run the simulator until SIGTERM/SIGINT."""
    import uvicorn

    from psp_sim.app import create_app
    from psp_sim.config import load_config
    from svckit.redaction import RedactingFormatter

    handler = logging.StreamHandler(sys.stderr)
    # Its error log quotes request text: keys, webhook secrets and card numbers are scrubbed first.
    handler.setFormatter(RedactingFormatter("%(message)s"))
    logging.basicConfig(level=log_level.upper(), handlers=[handler])
    cfg = load_config(str(config) if config else None, seed=seed, state=str(state) if state else None)
    per_request_log = logging.getLevelName(log_level.upper()) <= logging.INFO
    sim_app = create_app(cfg, access_stream=sys.stderr if per_request_log else None)
    logging.getLogger("psp_sim").info(
        '{"event":"start","host":"%s","port":%d,"state":%s,"objects":%d,"webhook_endpoints":%d,"faults":%d}',
        host,
        port,
        json.dumps(cfg.state_file),
        len(sim_app.sim.objects),
        len(sim_app.webhooks.endpoints),
        len(sim_app.faults.rules),
    )
    # uvicorn traps SIGTERM/SIGINT, finishes in-flight requests, runs the lifespan shutdown, then re-raises
    # the signal with the previous handlers restored; these make that final re-raise a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(0))
    uvicorn.run(
        sim_app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=log_level.lower(),
        log_config=None,  # keep the logging set up above instead of uvicorn's dictConfig
        timeout_graceful_shutdown=5,
        # Local tool: no proxy-header rewriting or Server/Date headers to compute on every response.
        proxy_headers=False,
        server_header=False,
        date_header=False,
    )


def _parse_time(value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither Unix seconds nor an ISO date/time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


@app.command()
def settlement(
    start: Annotated[str, typer.Option(help="interval_start: Unix seconds or ISO date/time (UTC if naive).")],
    end: Annotated[str, typer.Option(help="interval_end (exclusive).")],
    url: Annotated[
        str, typer.Option(help="Simulator base URL.", envvar="PSP_SIM_URL")
    ] = "http://127.0.0.1:12111",
    api_key: Annotated[str, typer.Option(envvar="PSP_SIM_API_KEY")] = "sk_test_psp_sim",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    currency: Annotated[str | None, typer.Option()] = None,
    column: Annotated[list[str] | None, typer.Option(help="Column to include (repeatable).")] = None,
) -> None:
    """Create a balance_change_from_activity.itemized.3 report run and print its CSV."""
    import httpx
    import stripe

    client = stripe.StripeClient(api_key, base_addresses={"api": url.rstrip("/")})
    parameters: ReportRunCreateParamsParameters = {
        "interval_start": _parse_time(start),
        "interval_end": _parse_time(end),
    }
    if currency:
        parameters["currency"] = currency
    if column:
        parameters["columns"] = column
    try:
        run = client.v1.reporting.report_runs.create(
            params={"report_type": "balance_change_from_activity.itemized.3", "parameters": parameters}
        )
    except stripe.APIConnectionError:
        typer.echo(f"cannot reach the PSP simulator at {url} (is it running? --url / PSP_SIM_URL)", err=True)
        raise typer.Exit(2) from None
    except stripe.StripeError as exc:  # the simulator's refusal, e.g. an interval past its data
        typer.echo(f"report refused: {exc.user_message or exc}", err=True)
        raise typer.Exit(2) from None
    if run.status != "succeeded" or run.result is None:
        typer.echo(f"report run {run.id} is {run.status}", err=True)
        raise typer.Exit(1)
    resp = httpx.get(run.result.url or "", headers={"Authorization": f"Bearer {api_key}"}, timeout=30)
    resp.raise_for_status()
    if out:
        out.write_bytes(resp.content)
        typer.echo(f"{run.id}: wrote {len(resp.content)} bytes to {out}", err=True)
    else:
        sys.stdout.write(resp.text)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
