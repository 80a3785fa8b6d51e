"""The batch's running-total UPDATE reaches its accounts through the primary key.

``ledger_post_batch`` (0004) updates each account of a batch once, joining ``accounts`` to the
batch's summed deltas on the id. The planner, estimating a handful of delta rows against the whole
table, chose a hash join over a sequential scan of ``accounts``: every batch statement read every
account. Over 10,000 accounts that was ≈ 1 ms per statement (≈ 10 µs per posting in a 100-posting
batch, ≈ 80 µs per posting in a coalesced group of a dozen). The UPDATE now also names the batch's
account ids (``a.id = ANY (a_id)``, the same array the lock statement uses), so it is an index scan
of the batch's own rows, like every other access to ``accounts`` in the posting path. Nothing else
changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

from alembic import op

from svckit.migrations_env import earlier_revision

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OLD_WHERE = "                    WHERE a.id = d.id;"
_NEW_WHERE = (
    "                    WHERE a.id = d.id AND a.id = ANY (a_id);  -- the primary key, not a scan (0006)"
)


def _batch_0004() -> str:
    module = earlier_revision(__file__, "0004_batch_fast_path.py")
    # Only the CREATE FUNCTION (0004's text starts by dropping the 0003 signature).
    text = module._BATCH
    return "CREATE OR REPLACE FUNCTION" + text.split("CREATE FUNCTION", 1)[1]


def upgrade() -> None:
    text = _batch_0004()
    if text.count(_OLD_WHERE) != 1:
        raise RuntimeError("0004's ledger_post_batch is not the text this revision patches")
    op.execute(text.replace(_OLD_WHERE, _NEW_WHERE))


def downgrade() -> None:
    op.execute(_batch_0004())
