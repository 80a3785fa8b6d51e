"""Rules of reconciliation. Transport-free: plain values in, DomainError out."""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from recon_svc import repository
from svckit.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class RunState(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Run:
    run_id: str
    state: RunState
    interval_start: datetime
    interval_end: datetime
    created_at: datetime


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode()


def decode_token(token: str) -> int | None:
    if not token:
        return None
    try:
        version, value = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
        if version != "v1":
            raise ValueError(version)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            "INVALID_PAGE_TOKEN", "page_token is not one this service issued", field="page_token"
        ) from None


class ReconService:
    async def list_runs(
        self, conn: AsyncConnection, page_size: int, page_token: str
    ) -> tuple[list[Run], str]:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(
                "INVALID_PAGE_SIZE", f"page_size must be 0-{MAX_PAGE_SIZE}", field="page_size"
            )
        size = page_size or DEFAULT_PAGE_SIZE
        rows = await repository.list_runs(conn, size + 1, decode_token(page_token))
        page, more = rows[:size], len(rows) > size
        runs = [
            Run(r.run_id, RunState(r.state), r.interval_start, r.interval_end, r.created_at) for r in page
        ]
        return runs, encode_token(page[-1].id) if more else ""
