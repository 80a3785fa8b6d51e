"""svckit.db helpers against the session's PostgreSQL: rows that must exist, and database names."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import URL, make_url

from svckit.db import drop_database, ensure_database, one_row


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_one_row_gives_the_row_of_an_aggregate(infra):
    with psycopg.connect(_libpq(infra.database_url)) as conn:
        count, total = one_row(
            conn.execute("SELECT count(*), coalesce(sum(1), 0) FROM pg_database").fetchone(), "x"
        )
    assert count >= 1
    assert total == count


def test_one_row_names_the_statement_that_returned_none(infra):
    with psycopg.connect(_libpq(infra.database_url)) as conn:
        cursor = conn.execute("SELECT 1 WHERE false")
        with pytest.raises(RuntimeError, match="claim probe: the statement returned no row"):
            one_row(cursor.fetchone(), "claim probe")


@pytest.mark.parametrize("operation", [drop_database, ensure_database])
def test_a_url_without_a_database_name_is_refused_without_quoting_its_password(infra, operation):
    server = make_url(infra.database_url)
    url = URL.create(
        "postgresql", server.username, "hunter2-not-in-errors", server.host, server.port, database=None
    )
    with pytest.raises(ValueError, match="no database name") as caught:
        operation(url.render_as_string(hide_password=False))
    assert "hunter2" not in str(caught.value)
