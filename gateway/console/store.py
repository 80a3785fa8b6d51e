"""Console sessions and the audit log, in the gateway's own database next to the API keys.

A session is a random cookie value; only its SHA-256 is stored (like API keys), so a copy of the
table signs nobody in. A session is valid while it has not expired, was not ended by sign-out, and
its API key is still active with the ``admin`` scope: revoking the key ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.models import api_keys, console_audit, console_sessions

ADMIN_SCOPE = "admin"
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Session:
    key_id: str
    key_name: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    key_id: str
    key_name: str
    action: str
    target: str
    reason: str
    outcome: str
    detail: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(conn: AsyncConnection, key_id: str, ttl_seconds: int) -> tuple[str, str]:
    """Store a new session of ``key_id``; return (cookie value, CSRF token)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    await conn.execute(
        console_sessions.insert().values(
            token_hash=_hash(token),
            key_id=key_id,
            csrf_token=csrf,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds),
        )
    )
    return token, csrf


async def purge_sessions(conn: AsyncConnection, kept_for: timedelta, limit: int = 1000) -> int:
    """Delete up to ``limit`` sessions that expired or were signed out more than ``kept_for`` ago.

    Run at each sign-in, so the table holds about the sessions of the last ``kept_for`` whatever the
    traffic (a bounded delete per sign-in outpaces the one row each sign-in adds). Kept a while after
    they end so an operator can still see recent sign-outs; the audit log keeps the history.
    """
    cutoff = sa.func.now() - kept_for
    victims = (
        sa.select(console_sessions.c.token_hash)
        .where(sa.or_(console_sessions.c.expires_at < cutoff, console_sessions.c.ended_at < cutoff))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await conn.execute(console_sessions.delete().where(console_sessions.c.token_hash.in_(victims)))
    return result.rowcount


async def find_session(conn: AsyncConnection, token: str) -> Session | None:
    row = (
        await conn.execute(
            sa.select(
                console_sessions.c.key_id,
                api_keys.c.name,
                console_sessions.c.csrf_token,
                console_sessions.c.expires_at,
            )
            .join(api_keys, api_keys.c.id == console_sessions.c.key_id)
            .where(
                console_sessions.c.token_hash == _hash(token),
                console_sessions.c.ended_at.is_(None),
                console_sessions.c.expires_at > sa.func.now(),
                api_keys.c.revoked_at.is_(None),
                sa.literal(ADMIN_SCOPE) == sa.any_(api_keys.c.scopes),
            )
        )
    ).one_or_none()
    if row is None:
        return None
    return Session(key_id=row.key_id, key_name=row.name, csrf_token=row.csrf_token, expires_at=row.expires_at)


async def end_session(conn: AsyncConnection, token: str) -> None:
    await conn.execute(
        console_sessions.update()
        .where(console_sessions.c.token_hash == _hash(token), console_sessions.c.ended_at.is_(None))
        .values(ended_at=sa.func.now())
    )


async def record(
    conn: AsyncConnection,
    session: Session,
    action: str,
    target: str = "",
    reason: str = "",
    outcome: str = "requested",
    detail: str = "",
) -> int:
    """Append an audit entry; return its id (to record the outcome once known)."""
    return int(
        (
            await conn.execute(
                console_audit.insert()
                .values(
                    key_id=session.key_id,
                    key_name=session.key_name,
                    action=action,
                    target=target,
                    reason=reason,
                    outcome=outcome,
                    detail=detail,
                )
                .returning(console_audit.c.id)
            )
        ).scalar_one()
    )


async def finish(conn: AsyncConnection, entry_id: int, outcome: str, detail: str = "") -> None:
    await conn.execute(
        console_audit.update().where(console_audit.c.id == entry_id).values(outcome=outcome, detail=detail)
    )


async def entries(
    conn: AsyncConnection, target: str | None = None, before_id: int | None = None, limit: int = 50
) -> list[AuditEntry]:
    """Newest first; ``before_id`` continues after the last entry of the previous page."""
    query = sa.select(console_audit).order_by(console_audit.c.id.desc()).limit(limit)
    if target:
        query = query.where(console_audit.c.target == target)
    if before_id is not None:
        query = query.where(console_audit.c.id < before_id)
    return [AuditEntry(**row._mapping) for row in await conn.execute(query)]
