"""Pay-outs: the seller registry, pay-out runs with their per-seller results, pay-outs and their history.

``payouts`` holds one row per (seller, period): that UNIQUE constraint is the exactly-once guard, so two
runs of one period (an operator and the scheduler, or a retried request) can never pay a seller twice.
Each pay-out records the step it reached (the wallet reservation, the ledger posting, the PSP transfer
and payout ids), so a crash at any point resumes from what is stored, with the same idempotency keys.
A claim lease (``claimed_until``) keeps two workers from driving one pay-out at once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sellers",
        sa.Column("seller_account", sa.Text, primary_key=True, comment="The id payment orders name"),
        sa.Column("psp_account", sa.Text, nullable=True, comment="The PSP connected account (acct_...)"),
        sa.Column("payout_currency", sa.CHAR(3), nullable=False),
        sa.Column("schedule", sa.Text, nullable=False, comment="MONTHLY, WEEKLY or MANUAL"),
        sa.Column("anchor_day", sa.SmallInteger, nullable=False, server_default="1"),
        sa.Column(
            "minimums",
            sa.JSON,
            nullable=False,
            server_default="{}",
            comment='Minimum payout per currency, minor units: {"USD": 1000}',
        ),
        sa.Column("reserve_bps", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reserve_days", sa.Integer, nullable=False, server_default="0"),
        sa.Column("state", sa.Text, nullable=False, comment="ACTIVE, PAYOUTS_PAUSED or BLOCKED"),
        sa.Column("state_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("reserve_bps BETWEEN 0 AND 10000", name="sellers_reserve_bps"),
        sa.CheckConstraint("anchor_day BETWEEN 1 AND 31", name="sellers_anchor_day"),
    )
    op.create_table(
        "payout_runs",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("state", sa.Text, nullable=False, comment="RUNNING or COMPLETED"),
        sa.Column("sellers_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sellers_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("payouts_created", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sellers_skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "seller_filter",
            sa.JSON,
            nullable=False,
            server_default="[]",
            comment="The sellers the run was limited to; [] for every seller the period fits",
        ),
        sa.Column("claimed_until", _TS, nullable=True, comment="Lease of the worker driving the run"),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", _TS, nullable=True),
    )
    op.create_table(
        "payout_run_items",
        sa.Column("run_id", sa.Text, sa.ForeignKey("payout_runs.run_id"), primary_key=True),
        sa.Column("seller_account", sa.Text, primary_key=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("payout_id", sa.Text, nullable=True, comment="The seller's pay-out of the period"),
        sa.Column("skip_reason", sa.Text, nullable=False, server_default="", comment="Why not paid"),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("available_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column(
            "reserve_held_minor",
            sa.BigInteger,
            nullable=False,
            server_default="0",
            comment="Held back by the rolling reserve",
        ),
    )
    op.create_table(
        "payouts",
        sa.Column("payout_id", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, sa.ForeignKey("payout_runs.run_id"), nullable=False),
        sa.Column("seller_account", sa.Text, sa.ForeignKey("sellers.seller_account"), nullable=False),
        sa.Column("period", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("psp_account", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("reservation_id", sa.Text, nullable=True, comment="Step 1: the wallet reservation"),
        sa.Column("ledger_tx_id", sa.BigInteger, nullable=True, comment="Step 2: Dr seller_payable"),
        sa.Column("psp_transfer_id", sa.Text, nullable=True, comment="Step 3: tr_..."),
        sa.Column("psp_payout_id", sa.Text, nullable=True, comment="Step 4: po_..."),
        sa.Column("paid_tx_id", sa.BigInteger, nullable=True, comment="Dr payouts_in_transit on paid"),
        sa.Column("failure_code", sa.Text, nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True, comment="The last transient fault (not a failure)"),
        sa.Column("claimed_until", _TS, nullable=True, comment="Lease of the worker driving it"),
        sa.Column("next_check_at", _TS, nullable=True, comment="When the janitor looks at it again"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("alerted_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("amount_minor > 0", name="payouts_amount_positive"),
        # The exactly-once guard: one pay-out per seller and period, whoever starts the run.
        sa.UniqueConstraint("seller_account", "period", name="payouts_one_per_seller_period"),
    )
    op.create_index("payouts_psp_payout_id", "payouts", ["psp_payout_id"], unique=True)
    op.create_index(
        "payouts_due",
        "payouts",
        ["next_check_at"],
        postgresql_where=sa.text("state NOT IN ('PAID', 'FAILED', 'CANCELED')"),
    )
    op.create_table(
        "payout_transitions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("payout_id", sa.Text, sa.ForeignKey("payouts.payout_id"), nullable=False, index=True),
        sa.Column("from_state", sa.Text, nullable=True),
        sa.Column("to_state", sa.Text, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("payout_transitions")
    op.drop_index("payouts_due", table_name="payouts")
    op.drop_index("payouts_psp_payout_id", table_name="payouts")
    op.drop_table("payouts")
    op.drop_table("payout_run_items")
    op.drop_table("payout_runs")
    op.drop_table("sellers")
