"""The console's audit log: every console action, newest first, filterable by the object acted on."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.console import store, web

router = APIRouter(include_in_schema=False)


@router.get("/console/audit")
async def audit(request: Request) -> Response:
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    before = request.query_params.get("before", "")
    before_id = int(before) if before.isdigit() and len(before) < 19 else None
    target = request.query_params.get("target", "").strip()[:200]
    async with web.gateway_engine(request).connect() as conn:
        rows = await store.entries(conn, target=target or None, before_id=before_id, limit=web.PAGE_SIZE + 1)
    next_url = ""
    if len(rows) > web.PAGE_SIZE:
        rows = rows[: web.PAGE_SIZE]
        next_url = "/console/audit?" + urlencode(
            {k: v for k, v in (("target", target), ("before", rows[-1].id)) if v}
        )
    return web.render_page(
        "audit.html", 200, session, title="Audit log", entries=rows, target=target, next_url=next_url
    )
