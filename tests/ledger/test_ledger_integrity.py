"""Immutability enforced by the database, and VerifyLedger naming exactly what was tampered with."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from tests.ledger.ledger_helpers import md, transfer, uid


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE entries SET amount = amount + 1 WHERE transaction_id = :tx",
        "DELETE FROM entries WHERE transaction_id = :tx",
        "UPDATE transactions SET description = 'edited' WHERE id = :tx",
        "DELETE FROM transactions WHERE id = :tx",
        "UPDATE transaction_chain SET hash = prev_hash WHERE transaction_id = :tx",
        "TRUNCATE entries",
        "TRUNCATE transactions CASCADE",
    ],
)
async def test_raw_sql_cannot_change_or_remove_journal_rows(stub, services, statement):
    tx = await stub.PostTransaction(
        transfer(f"asset:cash:i{uid()}", f"revenue:x:i{uid()}", 10), metadata=md()
    )
    await stub.VerifyLedger(pb.VerifyLedgerRequest())  # makes sure its chain link exists
    with pytest.raises(DBAPIError, match="immutable"):
        async with services["ledger"].engine.begin() as conn:
            await conn.execute(sa.text(statement), {"tx": tx.transaction.id})
    fetched = await stub.GetTransaction(pb.GetTransactionRequest(transaction_id=tx.transaction.id))
    assert fetched.transaction.entries[0].amount_minor == 10


def _tamper(conn: psycopg.Connection, table: str, statement: str, *params) -> None:
    """What an attacker with superuser rights could do: switch the guard off, edit, switch it back."""
    with conn.transaction():
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_immutable")
        conn.execute(statement, params)
        conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_immutable")


def _kinds(report: pb.VerifyLedgerResponse) -> list[tuple[str, int, str]]:
    return sorted((pb.FindingKind.Name(f.kind), f.transaction_id, f.account) for f in report.findings)


async def _post_some(stub) -> tuple[list[pb.Transaction], str, str]:
    bank, seller = "asset:bank:operating", "liability:seller_payable:s1"
    txs = []
    for amount in (100, 200, 300):
        txs.append((await stub.PostTransaction(transfer(bank, seller, amount), metadata=md())).transaction)
    reversal = await stub.ReverseTransaction(
        pb.ReverseTransactionRequest(transaction_id=txs[0].id), metadata=md()
    )
    txs.append(reversal.transaction)
    clean = await stub.VerifyLedger(pb.VerifyLedgerRequest())  # also links them all into the chain
    assert clean.ok and not clean.findings
    assert (clean.transactions_checked, clean.accounts_checked, clean.transactions_pending_link) == (4, 2, 0)
    return txs, bank, seller


async def test_verify_is_clean_then_names_an_altered_entry_and_an_altered_balance(isolated_ledger):
    stub = isolated_ledger.stub
    txs, bank, seller = await _post_some(stub)

    with isolated_ledger.connect() as conn:
        _tamper(conn, "entries", "UPDATE entries SET amount = amount + 1 WHERE transaction_id = %s AND position = 1",
                txs[1].id)  # fmt: skip
    report = await stub.VerifyLedger(pb.VerifyLedgerRequest())
    assert not report.ok
    assert _kinds(report) == [
        ("FINDING_KIND_BALANCE_MISMATCH", 0, bank),
        ("FINDING_KIND_HASH_MISMATCH", txs[1].id, ""),
        ("FINDING_KIND_UNBALANCED_TRANSACTION", txs[1].id, ""),
    ]
    mismatch = next(f for f in report.findings if f.kind == pb.FINDING_KIND_BALANCE_MISMATCH)
    # Entries now sum to 100+201+300 debits on the bank; the stored running total still says 600.
    assert (mismatch.expected, mismatch.actual) == ("601", "600")
    unbalanced = next(f for f in report.findings if f.kind == pb.FINDING_KIND_UNBALANCED_TRANSACTION)
    assert "USD debits 201 != credits 200" in unbalanced.detail

    with isolated_ledger.connect() as conn:
        conn.execute("UPDATE accounts SET credits_posted = credits_posted + 7 WHERE name = %s", (seller,))
    report = await stub.VerifyLedger(pb.VerifyLedgerRequest())
    seller_findings = [f for f in report.findings if f.account == seller]
    assert len(seller_findings) == 1
    assert seller_findings[0].kind == pb.FINDING_KIND_BALANCE_MISMATCH
    assert (seller_findings[0].expected, seller_findings[0].actual) == ("600", "607")


async def test_verify_names_a_rewritten_transaction_and_a_broken_chain(isolated_ledger):
    stub = isolated_ledger.stub
    txs, _, _ = await _post_some(stub)
    with isolated_ledger.connect() as conn:
        _tamper(conn, "transactions", "UPDATE transactions SET description = 'nothing to see' WHERE id = %s",
                txs[2].id)  # fmt: skip
    report = await stub.VerifyLedger(pb.VerifyLedgerRequest())
    assert _kinds(report) == [("FINDING_KIND_HASH_MISMATCH", txs[2].id, "")]

    # A smarter attacker also rewrites that link's hash (the next link no longer points at it), and
    # removes the last link, which is not queued for the chainer any more.
    with isolated_ledger.connect() as conn:
        _tamper(conn, "transaction_chain",
                "UPDATE transaction_chain SET hash = sha256(hash) WHERE transaction_id = %s", txs[2].id)  # fmt: skip
        _tamper(
            conn, "transaction_chain", "DELETE FROM transaction_chain WHERE transaction_id = %s", txs[3].id
        )
    report = await stub.VerifyLedger(pb.VerifyLedgerRequest())
    assert _kinds(report) == [
        ("FINDING_KIND_CHAIN_HEAD_MISMATCH", 0, ""),
        ("FINDING_KIND_HASH_MISMATCH", txs[2].id, ""),
        ("FINDING_KIND_UNCHAINED_TRANSACTION", txs[3].id, ""),
    ]


async def test_max_findings_truncates_the_report(isolated_ledger):
    stub = isolated_ledger.stub
    txs, _, _ = await _post_some(stub)
    with isolated_ledger.connect() as conn:
        for tx in txs:
            _tamper(conn, "transactions", "UPDATE transactions SET external_ref = 'x' WHERE id = %s", tx.id)
    report = await stub.VerifyLedger(pb.VerifyLedgerRequest(max_findings=2))
    assert len(report.findings) == 2
    assert report.truncated and not report.ok
