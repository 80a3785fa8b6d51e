"""``python -m svckit.devstack run``: start the whole system (what ``make run`` does)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from svckit.devstack import supervisor

app = typer.Typer(help="Development stack of Marketplace Payments.", no_args_is_help=True)


@app.command()
def run(
    data_dir: Path = typer.Option(
        Path(os.environ.get("MPAY_DATA_DIR", supervisor.ROOT / ".data")),
        help="where embedded PostgreSQL/Valkey keep data and logs",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="write service logs only to files, not the terminal"
    ),
    ready_timeout: float = typer.Option(60.0, help="seconds to wait for every process to be ready"),
) -> None:
    """Start PostgreSQL and Valkey (embedded, unless DATABASE_URL/REDIS_URL are set), the four services,
    the PSP simulator and the gateway; wait until all are ready; stop everything on Ctrl-C."""
    raise typer.Exit(supervisor.run(data_dir.resolve(), echo_logs=not quiet, ready_timeout=ready_timeout))


@app.command()
def reset(data_dir: Path = typer.Option(supervisor.ROOT / ".data")) -> None:
    """Delete the local data folder (all embedded databases and logs)."""
    from svckit.devstack.infra import remove_tree

    remove_tree(data_dir)
    typer.echo(f"removed {data_dir}")


if __name__ == "__main__":
    app()
