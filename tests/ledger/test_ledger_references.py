"""References of entries and chain links, enforced by the database once per statement (the reference
triggers of ledger_svc/sql): as strict as foreign keys, on both sides, under concurrency."""

from __future__ import annotations

import asyncio
import threading

import psycopg
import pytest

from tests.ledger.ledger_helpers import md, transfer, uid

_INSERT_ENTRY = (
    "INSERT INTO entries (transaction_id, position, account_id, direction, amount, currency, posted_at)"
    " VALUES (%s, %s, %s, 'D', 1, 'USD', now())"
)


def _sync(fn, *args):
    # Plain psycopg blocks; off the event loop, so the in-process ledger (and its chainer) keep running.
    return asyncio.to_thread(fn, *args)


async def _posted(isolated_ledger) -> tuple[int, int, int]:
    """A posted transaction's id and its two accounts' ids."""
    debit, credit = f"asset:cash:r{uid()}", f"revenue:x:r{uid()}"
    reply = await isolated_ledger.stub.PostTransaction(transfer(debit, credit, 10), metadata=md())

    def ids():
        with isolated_ledger.connect() as conn:
            rows = dict(
                conn.execute("SELECT name, id FROM accounts WHERE name = ANY (%s)", ([debit, credit],))
            )
        return reply.transaction.id, rows[debit], rows[credit]

    return await _sync(ids)


def _fails(conn: psycopg.Connection, statement: str, params=()) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement, params)
    return caught.value


async def test_an_entry_naming_a_missing_account_or_transaction_is_refused(isolated_ledger):
    tx, account, _ = await _posted(isolated_ledger)

    def check():
        with isolated_ledger.connect() as conn:
            missing_account = _fails(conn, _INSERT_ENTRY, (tx, 9, 987_654_321))
            missing_tx = _fails(conn, _INSERT_ENTRY, (987_654_321, 1, account))
            # One statement with a good and a bad row: the whole statement is refused.
            mixed = _fails(
                conn,
                "INSERT INTO entries (transaction_id, position, account_id, direction, amount, currency, posted_at)"
                " VALUES (%s, 9, %s, 'D', 1, 'USD', now()), (%s, 10, 987654321, 'C', 1, 'USD', now())",
                (tx, account, tx),
            )
            count = conn.execute("SELECT count(*) FROM entries WHERE transaction_id = %s", (tx,)).fetchone()[
                0
            ]
            missing_link = _fails(
                conn,
                "INSERT INTO transaction_chain (seq, transaction_id, prev_hash, hash)"
                " VALUES (999999, 987654321, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))",
            )
        return missing_account, missing_tx, mixed, count, missing_link

    missing_account, missing_tx, mixed, count, missing_link = await _sync(check)
    for err in (missing_account, missing_tx, mixed, missing_link):
        assert err.sqlstate == "23503", err
    assert "account" in str(missing_account) and "transaction" in str(missing_tx)
    assert count == 2  # the posting's own entries, nothing added


async def test_an_account_with_entries_cannot_be_deleted_renumbered_or_truncated(isolated_ledger):
    _, account, _ = await _posted(isolated_ledger)

    def check():
        with isolated_ledger.connect() as conn:
            errors = [
                _fails(conn, "DELETE FROM accounts WHERE id = %s", (account,)),
                _fails(conn, "UPDATE accounts SET id = id + 1000000 WHERE id = %s", (account,)),
                _fails(conn, "TRUNCATE accounts"),
            ]
            still = conn.execute("SELECT count(*) FROM accounts WHERE id = %s", (account,)).fetchone()[0]
            # An account nobody posted to can still go (the batch function drops the ones it made).
            unused = conn.execute(
                "INSERT INTO accounts (name, type, currency) VALUES (%s, 'asset', 'USD') RETURNING id",
                (f"asset:unused:r{uid()}",),
            ).fetchone()[0]
            deleted = conn.execute("DELETE FROM accounts WHERE id = %s", (unused,)).rowcount
        return errors, still, deleted

    errors, still, deleted = await _sync(check)
    assert [e.sqlstate for e in errors] == ["23503"] * 3
    assert still == 1 and deleted == 1


async def test_deleting_accounts_under_a_snapshot_older_than_the_statement_is_refused(isolated_ledger):
    def check():
        with isolated_ledger.connect() as conn:
            unused = conn.execute(
                "INSERT INTO accounts (name, type, currency) VALUES (%s, 'asset', 'USD') RETURNING id",
                (f"asset:unused:r{uid()}",),
            ).fetchone()[0]
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            err = _fails(conn, "DELETE FROM accounts WHERE id = %s", (unused,))
            conn.rollback()
            conn.autocommit = True
            return err, conn.execute("SELECT count(*) FROM accounts WHERE id = %s", (unused,)).fetchone()[0]

    err, still = await _sync(check)
    assert err.sqlstate == "23503" and "READ COMMITTED" in str(err)
    assert still == 1


async def test_a_delete_racing_an_uncommitted_entry_waits_for_it_and_is_then_refused(isolated_ledger):
    tx, _, _ = await _posted(isolated_ledger)

    def race():
        with isolated_ledger.connect() as inserter, isolated_ledger.connect() as deleter:
            fresh = inserter.execute(
                "INSERT INTO accounts (name, type, currency) VALUES (%s, 'asset', 'USD') RETURNING id",
                (f"asset:fresh:r{uid()}",),
            ).fetchone()[0]
            deleter_pid = deleter.execute("SELECT pg_backend_pid()").fetchone()[0]
            inserter.autocommit = False
            inserter.execute(_INSERT_ENTRY, (tx, 50, fresh))  # holds KEY SHARE on the account
            outcome: dict[str, object] = {}

            def delete():
                try:
                    outcome["rows"] = deleter.execute("DELETE FROM accounts WHERE id = %s", (fresh,)).rowcount
                except psycopg.Error as exc:
                    outcome["error"] = exc

            worker = threading.Thread(target=delete)
            worker.start()
            # Proceed once the delete is waiting for the inserter's row lock (no timing involved).
            with isolated_ledger.connect() as watcher:
                while not watcher.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (deleter_pid,)
                ).fetchone()[0]:
                    worker.join(0.01)
                    assert worker.is_alive(), outcome
            inserter.commit()
            worker.join()
            remaining = inserter.execute("SELECT count(*) FROM accounts WHERE id = %s", (fresh,)).fetchone()[
                0
            ]
            inserter.rollback()
        return outcome, remaining

    outcome, remaining = await _sync(race)
    assert "rows" not in outcome
    assert outcome["error"].sqlstate == "23503"
    assert remaining == 1
