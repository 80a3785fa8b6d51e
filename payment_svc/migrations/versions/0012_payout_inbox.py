"""Pay-out inbox: the PSP's payout.paid/failed/canceled facts recorded on arrival, applied in groups by a
worker; and what the PSP last said about each seller's connected account (can it receive payouts,
and when), so a run reads the account only when that is old.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "payout_inbox",
        sa.Column(
            "event_id",
            sa.Text,
            primary_key=True,
            comment="The PSP's event id (janitor: janitor:<po>:<status>)",
        ),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, comment="Arrival order"),
        sa.Column("psp_payout_id", sa.Text, nullable=False),
        sa.Column("payout_id", sa.Text, nullable=True, comment="Ours, from the PSP payout's metadata"),
        sa.Column("psp_account", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False, comment="paid, failed or canceled"),
        sa.Column("status_rank", sa.SmallInteger, nullable=False, comment="paid 0, failed/canceled 1"),
        sa.Column("failure_code", sa.Text, nullable=True),
        sa.Column("failure_message", sa.Text, nullable=True),
        sa.Column("psp_created_at", _TS, nullable=False, comment="The PSP's event time: the order applied"),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("received_at", _TS, nullable=False, server_default=sa.func.now()),
        sa.Column(
            "outcome",
            sa.Text,
            nullable=True,
            comment="NULL until applied: APPLIED, NO_CHANGE, UNKNOWN_PAYOUT or MISMATCH",
        ),
        sa.Column("applied_at", _TS, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_try_at", _TS, nullable=False, server_default=sa.func.now()),
    )
    # The worker's scan: only facts still to apply, in the PSP's order.
    op.create_index(
        "payout_inbox_pending",
        "payout_inbox",
        ["psp_created_at", "status_rank", "seq"],
        postgresql_where=sa.text("outcome IS NULL"),
    )
    op.create_index(
        "payout_inbox_pending_by_payout",
        "payout_inbox",
        ["psp_payout_id"],
        postgresql_where=sa.text("outcome IS NULL"),
    )
    op.add_column(
        "sellers",
        sa.Column(
            "psp_payouts_enabled",
            sa.Boolean,
            nullable=True,
            comment="What the PSP last said: can the connected account receive payouts",
        ),
    )
    op.add_column(
        "sellers",
        sa.Column(
            "psp_account_checked_at",
            _TS,
            nullable=True,
            comment="When the PSP said it (a read, or the time of its account.updated event)",
        ),
    )
    op.create_index("sellers_psp_account", "sellers", ["psp_account"])


def downgrade() -> None:
    op.drop_index("sellers_psp_account", table_name="sellers")
    op.drop_column("sellers", "psp_account_checked_at")
    op.drop_column("sellers", "psp_payouts_enabled")
    op.drop_table("payout_inbox")
