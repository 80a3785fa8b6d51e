"""``python -m svckit.events``: run a relay, inspect streams, operate dead letters.

Connection settings come from the environment (``REDIS_URL``, ``DATABASE_URL``, ``EVENTS_*``) and
can be overridden with options. The operator commands talk to Redis directly, through the same
:class:`~svckit.events.admin.EventsAdmin` as the gRPC admin service.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from svckit.config import load_settings
from svckit.errors import DomainError
from svckit.events.admin import EventsAdmin
from svckit.events.channels import DeadLetterEntry
from svckit.events.config import EventsSettings
from svckit.logging import configure_logging
from svckit.redisclient import redis_client

app = typer.Typer(help="Event backbone: relay, streams and dead letters.", no_args_is_help=True)
dlq = typer.Typer(help="Dead letters: list, show, replay, discard.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")

T = TypeVar("T")

NamespaceOpt = Annotated[
    str | None, typer.Option(help="Key hash tag (default: EVENTS_NAMESPACE or payments)")
]
RedisOpt = Annotated[str | None, typer.Option(help="Redis URL (default: REDIS_URL)")]


def _settings(namespace: str | None, redis_url: str | None, **extra: object) -> EventsSettings:
    overrides = {k: v for k, v in {"namespace": namespace, "redis_url": redis_url, **extra}.items() if v}
    return load_settings(EventsSettings, **overrides)


def _with_admin(settings: EventsSettings, work: Callable[[EventsAdmin], Awaitable[T]]) -> T:
    async def run() -> T:
        redis = redis_client(settings.redis_url, settings.redis_cluster, decode_responses=True)
        try:
            return await work(EventsAdmin(redis, settings.keys))
        finally:
            await redis.aclose()

    try:
        return asyncio.run(run())
    except DomainError as err:
        typer.echo(f"error: {err.reason}: {err.message}", err=True)
        raise typer.Exit(1) from None


@app.command()
def relay(
    namespace: NamespaceOpt = None,
    redis_url: RedisOpt = None,
    database_url: Annotated[
        str | None, typer.Option(help="Producer database URL (default: DATABASE_URL)")
    ] = None,
) -> None:
    """Publish the outbox of the database at --database-url until SIGTERM/SIGINT."""
    from svckit.db import create_engine
    from svckit.events.relay import Relay

    settings = _settings(namespace, redis_url, database_url=database_url)
    configure_logging("events-relay", "INFO", "auto")

    async def run() -> None:
        engine = create_engine(_async_url(settings.database_url), pool_size=2)
        redis = redis_client(settings.redis_url, settings.redis_cluster, decode_responses=True)
        try:
            await Relay(engine, redis, settings).run()
        finally:
            await redis.aclose()
            await engine.dispose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def _async_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@app.command()
def streams(namespace: NamespaceOpt = None, redis_url: RedisOpt = None) -> None:
    """List the live streams with length, and pending and lag per consumer group."""
    overview = _with_admin(_settings(namespace, redis_url), lambda admin: admin.overview())
    for s in overview.streams:
        typer.echo(f"{s.name}  length={s.length}")
        for g in s.groups:
            lag = "?" if g.lag is None else g.lag
            typer.echo(f"  group {g.name}  consumers={g.consumers}  pending={g.pending}  lag={lag}")
    typer.echo(f"scheduled retries: {overview.scheduled_retries}")
    typer.echo(f"dead letters: {overview.dead_letters}")


def _line(e: DeadLetterEntry) -> str:
    return (
        f"{e.id}  {e.stream}  group={e.group}  event={e.event.event_id}  type={e.event.type}  "
        f"attempts={len(e.event.history)}  reason={e.reason}  error={e.last_error}"
    )


@dlq.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(help="Maximum entries to show")] = 100,
    namespace: NamespaceOpt = None,
    redis_url: RedisOpt = None,
) -> None:
    """List dead letters, oldest first."""
    page, _ = _with_admin(_settings(namespace, redis_url), lambda admin: admin.list_dead_letters(limit))
    for entry in page:
        typer.echo(_line(entry))
    typer.echo(f"{len(page)} dead letter(s) shown")


@dlq.command("show")
def dlq_show(entry_id: str, namespace: NamespaceOpt = None, redis_url: RedisOpt = None) -> None:
    """Show one dead letter: the event, the last error and every attempt."""
    e = _with_admin(_settings(namespace, redis_url), lambda admin: admin.get_dead_letter(entry_id))
    shown = {
        "id": e.id,
        "stream": e.stream,
        "group": e.group,
        "reason": e.reason,
        "dead_at": e.dead_at,
        "last_error": e.last_error,
        "event": {
            "event_id": e.event.event_id,
            "type": e.event.type,
            "aggregate_id": e.event.aggregate_id,
            "occurred_at": e.event.occurred_at,
            "payload": e.event.payload,
        },
        "attempts": [a.as_dict() for a in e.event.history],
    }
    typer.echo(json.dumps(shown, indent=2))


@dlq.command("replay")
def dlq_replay(
    entry_id: Annotated[str | None, typer.Argument(help="Dead letter id; omit with --all")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter")] = False,
    stream: Annotated[str, typer.Option(help="With --all: only this stream")] = "",
    group: Annotated[str, typer.Option(help="With --all: only this group")] = "",
    namespace: NamespaceOpt = None,
    redis_url: RedisOpt = None,
) -> None:
    """Move one dead letter (or --all) back to its live stream with a fresh attempt count."""
    if bool(entry_id) == all_:
        typer.echo("give either a dead letter id or --all", err=True)
        raise typer.Exit(2)
    settings = _settings(namespace, redis_url)
    if entry_id:
        one = entry_id
        new_id = _with_admin(settings, lambda admin: admin.replay(one))
        typer.echo(f"replayed {one} as {new_id}")
    else:
        count = _with_admin(settings, lambda admin: admin.replay_all(stream, group))
        typer.echo(f"replayed {count} dead letter(s)")


@dlq.command("discard")
def dlq_discard(
    entry_id: str,
    reason: Annotated[str, typer.Option(help="Why it is dropped (required, logged)")],
    operator: Annotated[str | None, typer.Option(help="Who drops it (default: login name)")] = None,
    namespace: NamespaceOpt = None,
    redis_url: RedisOpt = None,
) -> None:
    """Delete one dead letter without processing it; the reason goes to the log and audit stream."""
    who = operator or getpass.getuser()
    entry = _with_admin(_settings(namespace, redis_url), lambda admin: admin.discard(entry_id, reason, who))
    typer.echo(f"discarded {entry.id} (event {entry.event.event_id}): {reason}")
