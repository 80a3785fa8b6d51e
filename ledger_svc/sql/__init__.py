"""The ledger's SQL functions, one ``<function>.sql`` file each; migrations load them (README.md)."""

from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).parent


def source(name: str) -> str:
    """The text of ``<name>.sql``: one ``CREATE OR REPLACE FUNCTION`` statement."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def load(*names: str) -> None:
    """Execute the files in the order given, inside the running Alembic migration."""
    from alembic import op

    for name in names:
        op.execute(source(name))
