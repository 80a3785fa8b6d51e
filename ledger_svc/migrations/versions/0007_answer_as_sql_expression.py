"""The batch's stored answers spliced by one set-based query instead of a PL/pgSQL call per answer.

The fast path of ``ledger_post_batch`` made every new transaction's stored answer (template, id,
post time) with ``ledger_post_response``, a PL/pgSQL function: a function call and several
interpreted statements per answer. pg_stat_statements put that statement at ≈ 16 µs per posting in
a coalesced group of eight and ≈ 3.5 µs in a batch of 100. The same bytes now come from one query
over the batch whose per-row pieces (the Timestamp body, then the Transaction body) are computed
once each in fenced LATERAL subqueries (``OFFSET 0``: without the fence the planner substitutes
the pieces into every place they are used, and the inlined varint CASEs multiply). The length of
each message is measured, as before. ``ledger_post_response`` stays for the other paths.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from alembic import op

from svckit.migrations_env import earlier_revision

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OLD_ANSWER = """                w_answer := ARRAY(SELECT ledger_post_response(p_tpls[w_item[k]], w_tx[k], w_at[k])
                                  FROM generate_subscripts(w_item, 1) AS k ORDER BY k);"""

# ledger_post_response's encoding: PostTransactionResponse{transaction(1): template || id(1) ||
# post_time(6): Timestamp{seconds(1), nanos(2), zero fields omitted}}.
_NEW_ANSWER = r"""                -- ledger_post_response's bytes, set-based (0007).
                w_answer := ARRAY(
                    SELECT '\x0a'::bytea || ledger_pb_varint(octet_length(t.tx)) || t.tx
                    FROM generate_subscripts(w_item, 1) AS k
                    CROSS JOIN LATERAL (
                        SELECT CASE WHEN s.sec <> 0 THEN '\x08'::bytea || ledger_pb_varint(s.sec) ELSE ''::bytea END
                               || CASE WHEN s.ns <> 0 THEN '\x10'::bytea || ledger_pb_varint(s.ns) ELSE ''::bytea END AS ts
                        FROM (SELECT floor(extract(epoch FROM w_at[k]))::bigint AS sec,
                                     (extract(microseconds FROM w_at[k])::bigint % 1000000) * 1000 AS ns OFFSET 0) s
                        OFFSET 0) m
                    CROSS JOIN LATERAL (
                        SELECT p_tpls[w_item[k]] || '\x08'::bytea || ledger_pb_varint(w_tx[k])
                               || '\x32'::bytea || ledger_pb_varint(octet_length(m.ts)) || m.ts AS tx
                        OFFSET 0) t
                    ORDER BY k);"""


def _batch_0006() -> str:
    """``ledger_post_batch`` as revision 0006 left it."""
    rev = earlier_revision(__file__, "0006_batch_update_by_index.py")
    return rev._batch_0004().replace(rev._OLD_WHERE, rev._NEW_WHERE)


def upgrade() -> None:
    text = _batch_0006()
    if text.count(_OLD_ANSWER) != 1:
        raise RuntimeError("0006's ledger_post_batch is not the text this revision patches")
    op.execute(text.replace(_OLD_ANSWER, _NEW_ANSWER))


def downgrade() -> None:
    op.execute(_batch_0006())
