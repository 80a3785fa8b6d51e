"""Tables of settlement reconciliation (migrations 0003-0005), SQLAlchemy Core.

``reconciliation_runs`` is declared again here with the columns 0002 and 0003 added, on its own MetaData, so the
settlement code does not depend on the shape of recon_svc/models.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

runs = sa.Table(
    "reconciliation_runs",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False, unique=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True)),
    sa.Column("interval_end", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("file_sha256", sa.Text),
    sa.Column("report", postgresql.JSONB),
    sa.Column("error", sa.Text),
)

files = sa.Table(
    "settlement_files",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("committed_line", sa.Integer, nullable=False, server_default="0"),
)

rows = sa.Table(
    "settlement_rows",
    metadata,
    sa.Column("balance_transaction_id", sa.Text, primary_key=True),
    sa.Column("row_digest", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("reporting_category", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("gross_minor", sa.BigInteger, nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Column("our_reference", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("booking_id", sa.Text),
)

bookings = sa.Table(
    "settlement_bookings",
    metadata,
    sa.Column("booking_id", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    # Where the booking's gross goes (classify.Against): a dispute's or a fee's gross is not the PSP's debt.
    sa.Column("against", sa.Text, nullable=False, server_default="psp_receivable"),
    sa.Column("gross_minor", sa.BigInteger, nullable=False),
    sa.Column("fee_minor", sa.BigInteger, nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("ledger_transaction_id", sa.BigInteger),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("posted_at", sa.DateTime(timezone=True)),
)

nightly_days = sa.Table(
    "recon_nightly_days",
    metadata,
    sa.Column("account", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("last_error", sa.Text),
    sa.Column("claimed_by", sa.Text),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

check_retries = sa.Table(
    "recon_check_retries",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

mismatches = sa.Table(
    "recon_mismatches",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("mismatch_id", sa.Text, nullable=False, unique=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("classification", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("balance_transaction_id", sa.Text, nullable=False),
    sa.Column("our_reference", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("differences", postgresql.JSONB, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("assignee", sa.Text),
    sa.Column("resolution_code", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

actions = sa.Table(
    "recon_mismatch_actions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("mismatch_id", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
