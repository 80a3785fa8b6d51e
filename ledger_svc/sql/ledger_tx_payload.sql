-- ledger_tx_payload(tx, seq): the canonical encoding of one stored transaction at chain position seq,
-- read from the tables. Nothing on the posting or chaining path calls it (the chainer builds
-- payloads set-based); it stays as the readable reference of the encoding, and tests compare the
-- batch path's queued payload tails with it.

CREATE OR REPLACE FUNCTION ledger_tx_payload(p_tx bigint, p_seq bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT 'LTX1|' || p_seq || '|' || t.id || '|'
        || (extract(epoch FROM t.posted_at) * 1000000)::bigint || '|'
        || coalesce(t.reverses_id, 0) || '|'
        || ledger_lp(t.description) || ledger_lp(t.external_ref)
        || (SELECT count(*) || '|' || coalesce(string_agg(ledger_lp(m.key) || ledger_lp(m.value), ''
                                                       ORDER BY m.key COLLATE "C"), '')
            FROM jsonb_each_text(t.metadata) AS m)
        || (SELECT count(*) || '|' || coalesce(string_agg(
                        ledger_lp(a.name) || e.direction || '|' || e.amount || '|' || e.currency || '|', ''
                        ORDER BY e.position), '')
            FROM entries e JOIN accounts a ON a.id = e.account_id
            WHERE e.transaction_id = t.id)
    FROM transactions t WHERE t.id = p_tx
$$;
