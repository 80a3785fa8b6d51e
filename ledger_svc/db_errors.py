"""The one place the ledger turns database errors into its typed errors (used by the servicer and the
coalescer, whose group statements run outside any servicer call)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from sqlalchemy.exc import DBAPIError

from svckit.errors import FailedPrecondition, Unavailable

# Deadlock (only possible when CloseAccount races postings, or batches create the same new accounts)
# and serialization failures roll everything back, so the same request may simply be retried.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


@contextlib.contextmanager
def database_errors_translated() -> Iterator[None]:
    """Database failures that mean something to a caller, as the ledger's typed errors."""
    try:
        yield
    # Statements run through SQLAlchemy (wrapped driver errors) or on plain psycopg connections.
    except (DBAPIError, psycopg.Error) as exc:
        state = getattr(exc.orig if isinstance(exc, DBAPIError) else exc, "sqlstate", None)
        if state in _TRANSIENT_SQLSTATES:
            raise Unavailable(
                "TRANSIENT_CONFLICT", "the posting collided with a concurrent one; retry with the same key"
            ) from exc
        if state == "22003":  # numeric_value_out_of_range: a running total would pass int64
            raise FailedPrecondition(
                "BALANCE_OVERFLOW", "an account total would exceed the largest storable amount"
            ) from exc
        raise
