"""The body of every service's Alembic ``env.py``: online migrations under an advisory lock.

Several replicas may start at once; the lock makes one of them migrate while the others wait.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, create_engine, pool, text

# Arbitrary constant shared by every service: each has its own database, so one lock id suffices.
_MIGRATION_LOCK_ID = 7_245_001


def run(target_metadata: MetaData | None = None) -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic: sqlalchemy.url is not set (svckit.db.migrate sets it)")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        connection.commit()
        try:
            context.configure(
                connection=connection, target_metadata=target_metadata, transaction_per_migration=True
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
            connection.commit()
    engine.dispose()
