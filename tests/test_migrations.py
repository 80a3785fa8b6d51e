"""Each service's migrations apply to an empty database, are idempotent, and downgrade cleanly."""

from __future__ import annotations

import psycopg
import pytest
from alembic import command

from gateway.models import MIGRATIONS as GATEWAY_MIGRATIONS
from ledger_svc import bootstrap as ledger
from payment_svc import bootstrap as payment
from recon_svc import bootstrap as recon
from svckit.db import alembic_config, drop_database, migrate
from wallet_svc import bootstrap as wallet

CASES = {
    "gateway": (GATEWAY_MIGRATIONS, {"api_keys", "console_sessions", "console_audit"}),
    "payments": (
        payment.MIGRATIONS,
        {
            "payment_events",
            "payment_orders",
            "order_transitions",
            "refunds",
            "idempotency_keys",
            "event_outbox",
            "processed_events",
            "sellers",
            "payout_runs",
            "payout_run_items",
            "payouts",
            "payout_transitions",
        },
    ),
    "ledger": (
        ledger.MIGRATIONS,
        {"accounts", "idempotency_keys", "transactions", "entries", "transaction_chain", "chain_head"},
    ),
    "wallet": (
        wallet.MIGRATIONS,
        {"wallets", "wallet_movements", "reservations", "idempotency_keys"},
    ),
    "recon": (
        recon.MIGRATIONS,
        {
            "reconciliation_runs",
            "idempotency_keys",
            "settlement_files",
            "settlement_rows",
            "recon_mismatches",
            "recon_mismatch_actions",
        },
    ),
}


def _tables(url: str) -> set[str]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


@pytest.mark.parametrize("db", sorted(CASES))
def test_migrations_apply_from_empty_twice_and_downgrade(infra, db):
    migrations, expected = CASES[db]
    url = infra.database_url_for(f"{infra.prefix}_mig_{db}").replace("postgresql://", "postgresql+psycopg://")
    try:
        migrate(migrations, url)
        assert expected <= _tables(url)
        migrate(migrations, url)  # a second start finds nothing to do
        command.downgrade(alembic_config(migrations, url), "base")
        assert _tables(url) == set()
    finally:
        drop_database(url)


def test_replicas_starting_together_create_their_database_once(infra):
    # Several processes of one service start at the same moment (DEV_PAYMENT_REPLICAS, a scaled
    # deployment): racing CREATE DATABASE statements must not fail the losers.
    from concurrent.futures import ThreadPoolExecutor

    from svckit.db import ensure_database

    for attempt in range(3):
        url = infra.database_url_for(f"{infra.prefix}_race_{attempt}")
        try:
            with ThreadPoolExecutor(8) as pool:
                created = list(pool.map(ensure_database, [url] * 8))
            assert created.count(True) == 1
        finally:
            drop_database(url)


def test_existing_seller_receivables_get_the_non_negative_rule(infra):
    url = infra.database_url_for(f"{infra.prefix}_mig_receivables").replace(
        "postgresql://", "postgresql+psycopg://"
    )
    plain = url.replace("+psycopg", "")
    config = alembic_config(ledger.MIGRATIONS, url)
    try:
        migrate(ledger.MIGRATIONS, url)
        command.downgrade(config, "0009")  # a ledger from before receivables had the rule
        with psycopg.connect(plain) as conn:
            conn.execute(
                "INSERT INTO accounts (name, type, currency, non_negative, debits_posted, credits_posted) VALUES"
                " ('asset:seller_receivable:s-owes/USD', 'asset', 'USD', false, 700, 0),"
                " ('asset:seller_receivable:s-odd/USD', 'asset', 'USD', false, 0, 300),"
                " ('asset:psp_receivable:stripe/USD', 'asset', 'USD', false, 700, 0)"
            )
        command.upgrade(config, "head")
        with psycopg.connect(plain) as conn:
            flagged = dict(conn.execute("SELECT name, non_negative FROM accounts").fetchall())
        assert flagged == {
            "asset:seller_receivable:s-owes/USD": True,
            # Below zero already: left for a person (VerifyLedger would report a flagged one).
            "asset:seller_receivable:s-odd/USD": False,
            "asset:psp_receivable:stripe/USD": False,
        }
    finally:
        drop_database(url)
