"""The command line every service shares: ``python -m <service> [serve|migrate|check-config]``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from svckit.config import ServiceSettings, load_settings
from svckit.db import migrate
from svckit.logging import configure_logging
from svckit.runtime import ServiceParts, main
from svckit.tls import security_or_exit


def service_cli(
    name: str,
    settings_cls: type[ServiceSettings],
    migrations_dir: Path,
    build: Callable[..., ServiceParts],
) -> typer.Typer:
    app = typer.Typer(help=f"{name}: run the gRPC server or manage its database.", no_args_is_help=False)

    @app.callback(invoke_without_command=True)
    def default(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            serve()

    @app.command()
    def serve() -> None:
        """Migrate the database (unless *_MIGRATE_ON_START=false) and serve until SIGTERM."""
        settings = load_settings(settings_cls)
        security_or_exit(settings)  # no certificates and no GRPC_INSECURE: exit 2 naming the variables
        main(settings, migrations_dir, build)

    @app.command("migrate")
    def migrate_cmd() -> None:
        """Create the service's database if missing and apply every pending migration."""
        settings = load_settings(settings_cls)
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        migrate(migrations_dir, settings.sqlalchemy_url())
        typer.echo(f"{name}: database {settings.database_name} is at the newest revision")

    @app.command("check-config")
    def check_config() -> None:
        """Validate the environment and print the effective settings (secrets hidden)."""
        settings = load_settings(settings_cls)
        for key, value in settings.model_dump().items():
            shown = "***" if any(s in key for s in ("secret", "password", "key")) else value
            if key.endswith("_url") and isinstance(value, str) and "@" in value:
                shown = value.split("://", 1)[0] + "://***@" + value.rsplit("@", 1)[1]
            typer.echo(f"{key} = {shown}")

    return app
