"""``python -m gateway``: serve the REST API (the default), migrate, or manage API keys.

python -m gateway                       # = serve
python -m gateway apikey create --name checkout-web --scope payments
python -m gateway apikey list
python -m gateway apikey revoke key_3f9a0c1b2d4e
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal, TypedDict, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import apikeys
from gateway.config import GatewaySettings
from gateway.models import MIGRATIONS
from svckit.config import load_settings
from svckit.db import create_engine, migrate
from svckit.logging import configure_logging

app = typer.Typer(help="gateway: the public REST API, and its API keys.", no_args_is_help=False)
keys_app = typer.Typer(help="Create, list and revoke API keys (stored hashed in the gateway database).")
app.add_typer(keys_app, name="apikey")

T = TypeVar("T")


@app.callback(invoke_without_command=True)
def default(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        serve()


@app.command()
def serve() -> None:
    """Migrate the gateway database (unless GATEWAY_MIGRATE_ON_START=false) and serve HTTP."""
    # Imported here so that key management does not pay for the web stack's imports.
    import uvicorn

    from gateway.app import create_app
    from svckit.metrics import serve_metrics
    from svckit.tls import security_or_exit

    settings = load_settings(GatewaySettings)
    security_or_exit(settings)  # no certificates and no GRPC_INSECURE: exit 2 naming the variables
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    uvicorn.run(create_app(settings), **server_options(settings))


class ServerOptions(TypedDict):
    """The keyword arguments the gateway passes to ``uvicorn.run``."""

    host: str
    port: int
    loop: Literal["asyncio"]
    http: Literal["httptools"]
    log_config: None
    access_log: bool
    proxy_headers: bool
    forwarded_allow_ips: str | None
    timeout_graceful_shutdown: int
    ssl_certfile: Path | None
    ssl_keyfile: Path | None


def server_options(settings: GatewaySettings) -> ServerOptions:
    """uvicorn's options for the gateway."""
    return {
        "host": settings.http_host,
        "port": settings.http_port,
        # grpc.aio needs the default asyncio loop; httptools parses HTTP fast.
        "loop": "asyncio",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        # The client address (what failed authentications are counted by) comes from X-Forwarded-For
        # only when the proxies sending it are named; uvicorn would otherwise trust 127.0.0.1.
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "timeout_graceful_shutdown": int(settings.shutdown_grace_seconds),
        # HTTPS when both files are set; behind a TLS-terminating proxy, leave them unset and name the
        # proxy in GATEWAY_FORWARDED_ALLOW_IPS (docs/security.md).
        "ssl_certfile": settings.http_tls_cert_file,
        "ssl_keyfile": settings.http_tls_key_file,
    }


@app.command("migrate")
def migrate_cmd() -> None:
    """Create the gateway database if missing and apply every pending migration."""
    settings = _settings()
    migrate(MIGRATIONS, settings.sqlalchemy_url())
    typer.echo(f"gateway: database {settings.database_name} is at the newest revision")


def _settings() -> GatewaySettings:
    # Key management needs only the database: a missing webhook secret must not stop an operator.
    settings = load_settings(GatewaySettings, environment="development", dev_api_key=None)
    configure_logging(settings.service_name, "WARNING", settings.log_format)
    return settings


def _with_db(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    settings = _settings()
    migrate(MIGRATIONS, settings.sqlalchemy_url())

    async def run() -> T:
        engine = create_engine(settings.sqlalchemy_url(), pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="who or what uses the key, e.g. checkout-web")],
    scope: Annotated[
        list[str] | None, typer.Option(help="payments (client routes) or admin (operator routes); repeatable")
    ] = None,
) -> None:
    """Create a key and print it once; only its hash is stored."""
    try:
        key, plaintext = _with_db(lambda conn: apikeys.create(conn, name, scope or ["payments"]))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"id:     {key.id}\nname:   {key.name}\nscopes: {','.join(sorted(key.scopes))}")
    typer.echo("key (shown once, store it now):", err=True)
    typer.echo(plaintext)


@keys_app.command("list")
def list_keys() -> None:
    """List keys (never the keys themselves)."""
    for key in _with_db(apikeys.list_all):
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}\t{key.key_prefix}…\t{key.name}\t{','.join(sorted(key.scopes))}\t"
            f"{key.created_at:%Y-%m-%d %H:%M}\t{state}"
        )


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="the key's id (key_...)")]) -> None:
    """Revoke a key. Gateways stop accepting it within GATEWAY_API_KEY_CACHE_TTL_SECONDS (default 30 s)."""
    key = _with_db(lambda conn: apikeys.revoke(conn, key_id))
    if key is None:
        typer.echo(f"no API key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key.id} ({key.name})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
