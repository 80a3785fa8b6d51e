"""The previous day's settlement file from the PSP's Reporting API (report run → file), spooled to disk."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from typing import IO, Any

import httpx
import stripe

from recon_svc.settlement.parse import REQUIRED_COLUMNS
from svckit.errors import InvalidArgument, Unavailable

REPORT_TYPE = "balance_change_from_activity.itemized.3"
COLUMNS = [
    *REQUIRED_COLUMNS,
    "description",
    "charge_id",
    "payment_intent_id",
    "automatic_payout_id",
    "connected_account_id",
    "dispute_reason",
    "payment_metadata[payment_order_id]",
    "payment_metadata[payment_order_ids]",
    "payment_metadata[checkout_id]",
    "refund_metadata[refund_id]",
    "transfer_metadata[payout_id]",
]
"""The columns we match on; asking for them keeps the file small (the full itemized.3 set has 69)."""
SPOOL_BYTES = 8 * 1024 * 1024
"""A file up to this size stays in memory; a larger one goes to a temporary file on disk."""


def day_interval(day: dt.date) -> tuple[int, int]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return int(start.timestamp()), int((start + dt.timedelta(days=1)).timestamp())


def fetch_report(
    base_url: str, api_key: str, day: dt.date, *, poll_seconds: float, attempts: int
) -> IO[bytes]:
    """Create the report run for ``day`` (UTC), wait for it, and stream its file into a spooled temporary file."""
    client: Any = stripe.StripeClient(api_key, base_addresses={"api": base_url, "files": base_url})
    start, end = day_interval(day)
    params = {"interval_start": start, "interval_end": end, "columns": COLUMNS}
    try:
        run = client.v1.reporting.report_runs.create(
            params={"report_type": REPORT_TYPE, "parameters": params}
        )
        for _ in range(attempts):
            if run.status != "pending":
                break
            time.sleep(poll_seconds)
            run = client.v1.reporting.report_runs.retrieve(run.id)
    except stripe.InvalidRequestError as exc:
        # The PSP refused the interval (a day before its data starts, or not over): the caller's day, not an
        # outage, so it is not retried.
        raise InvalidArgument(
            "SETTLEMENT_DAY_NOT_AVAILABLE",
            f"the PSP has no report for {day}: {exc.user_message or exc}",
            field="date",
        ) from None
    except stripe.StripeError as exc:
        # The SDK's message names the request, never the key.
        raise Unavailable(
            "SETTLEMENT_REPORT_UNAVAILABLE", f"the PSP refused the report run: {exc.user_message or exc}"
        ) from None
    if run.status != "succeeded":
        raise Unavailable(
            "SETTLEMENT_REPORT_UNAVAILABLE", f"report run {run.id} is {run.status} after {attempts} polls"
        )
    # Returned open to the caller, who reads it and closes it; closed here only on failure.
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    try:
        with httpx.stream(
            "GET", run.result.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
        ) as reply:
            if reply.status_code != 200:
                raise Unavailable(
                    "SETTLEMENT_REPORT_UNAVAILABLE", f"the report file answered HTTP {reply.status_code}"
                )
            for chunk in reply.iter_bytes():
                out.write(chunk)
    except httpx.HTTPError as exc:
        out.close()
        raise Unavailable(
            "SETTLEMENT_REPORT_UNAVAILABLE", f"the report file could not be fetched: {exc}"
        ) from None
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out
