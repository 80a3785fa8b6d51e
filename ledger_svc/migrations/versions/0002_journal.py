"""Journal: running balances on accounts, immutable transactions and entries, the hash chain, and
the posting function.

Everything that must hold even if application code is wrong lives here: CHECK constraints (positive
amounts, valid directions, non-negative accounts), triggers that refuse UPDATE/DELETE/TRUNCATE of
the journal, a unique index that lets a transaction be reversed once, and the hash chain: each new
transaction is queued by ``ledger_post`` and linked, in batches, by ``ledger_chain_pending``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_NORMAL_BALANCE = (
    "CASE WHEN type IN ('asset','expense') THEN debits_posted - credits_posted "
    "ELSE credits_posted - debits_posted END"
)

_TABLES = f"""
ALTER TABLE accounts
    ADD COLUMN non_negative boolean NOT NULL DEFAULT false,
    ADD COLUMN closed_at timestamptz,
    ADD COLUMN debits_posted bigint NOT NULL DEFAULT 0,
    ADD COLUMN credits_posted bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_transaction_id bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT ck_accounts_totals CHECK (debits_posted >= 0 AND credits_posted >= 0),
    ADD CONSTRAINT ck_accounts_non_negative CHECK (NOT non_negative OR {_NORMAL_BALANCE} >= 0),
    ADD CONSTRAINT ck_accounts_currency CHECK (currency ~ '^[A-Z]{{3}}$');

CREATE TABLE transactions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    description text NOT NULL,
    external_ref text NOT NULL,
    metadata jsonb NOT NULL,
    reverses_id bigint REFERENCES transactions (id),
    posted_at timestamptz NOT NULL,
    CONSTRAINT uq_transactions_reverses_id UNIQUE (reverses_id),
    CONSTRAINT ck_transactions_not_self_reversal CHECK (reverses_id <> id)
);
CREATE INDEX ix_transactions_external_ref ON transactions (external_ref) WHERE external_ref <> '';

CREATE TABLE entries (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id bigint NOT NULL REFERENCES transactions (id),
    position smallint NOT NULL,
    account_id bigint NOT NULL REFERENCES accounts (id),
    direction char(1) NOT NULL,
    amount bigint NOT NULL,
    currency char(3) NOT NULL,
    posted_at timestamptz NOT NULL,
    CONSTRAINT uq_entries_transaction_position UNIQUE (transaction_id, position),
    CONSTRAINT ck_entries_direction CHECK (direction IN ('D', 'C')),
    CONSTRAINT ck_entries_amount_positive CHECK (amount > 0)
);
CREATE INDEX ix_entries_account_id ON entries (account_id, id);

-- The hash chain: one link per transaction, gapless sequence in commit order.
CREATE TABLE transaction_chain (
    seq bigint PRIMARY KEY,
    transaction_id bigint NOT NULL UNIQUE REFERENCES transactions (id),
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    CONSTRAINT ck_chain_seq_positive CHECK (seq > 0),
    CONSTRAINT ck_chain_hash_length CHECK (octet_length(prev_hash) = 32 AND octet_length(hash) = 32)
);

-- Transactions committed but not yet linked into the chain (see ledger_chain_pending).
CREATE TABLE chain_queue (
    transaction_id bigint PRIMARY KEY REFERENCES transactions (id)
);

-- The single serialization point of the chain; locked only by the chainer.
CREATE TABLE chain_head (
    singleton boolean PRIMARY KEY DEFAULT true,
    last_seq bigint NOT NULL,
    last_hash bytea NOT NULL,
    CONSTRAINT ck_chain_head_singleton CHECK (singleton)
);
INSERT INTO chain_head (singleton, last_seq, last_hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'));
"""

_IMMUTABILITY = """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger % rows are immutable: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'LG002', HINT = 'post a reversing transaction instead';
END $$;
"""

_IMMUTABLE_TABLES = ("transactions", "entries", "transaction_chain")

_FUNCTIONS = r"""
-- Length-prefixed field of the canonical encoding: '<octets>:<text>'.
CREATE FUNCTION ledger_lp(s text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT octet_length(s)::text || ':' || s $$;

-- Canonical encoding of one stored transaction at chain position p_seq (docs/ledger.md).
CREATE FUNCTION ledger_tx_payload(p_tx bigint, p_seq bigint) RETURNS text LANGUAGE sql STABLE
AS $$
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

-- Every new transaction waits in chain_queue (filled by ledger_post) until the chainer links it.
-- Posting only inserts a row there (no shared lock), so postings commit in parallel and share WAL
-- flushes; the chain is serialized by the chainer alone, which links many transactions per commit.
-- A transaction inserted by other means is never queued, and VerifyLedger reports it unchained.

-- Links up to p_limit committed, queued transactions into the chain, in id order, and returns how
-- many. The chain head row lock serializes concurrent chainers (one per service replica).
CREATE FUNCTION ledger_chain_pending(p_limit int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_prev bytea;
    v_hash bytea;
    v_ids bigint[];
    v_tx bigint;
BEGIN
    SELECT h.last_seq, h.last_hash INTO v_seq, v_prev FROM chain_head h FOR UPDATE;
    SELECT array_agg(q.transaction_id ORDER BY q.transaction_id) INTO v_ids
        FROM (SELECT transaction_id FROM chain_queue ORDER BY transaction_id LIMIT p_limit) q;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM chain_queue WHERE transaction_id = ANY (v_ids);
    FOREACH v_tx IN ARRAY v_ids LOOP
        v_seq := v_seq + 1;
        v_hash := sha256(convert_to(ledger_tx_payload(v_tx, v_seq), 'UTF8') || v_prev);
        INSERT INTO transaction_chain (seq, transaction_id, prev_hash, hash) VALUES (v_seq, v_tx, v_prev, v_hash);
        v_prev := v_hash;
    END LOOP;
    UPDATE chain_head SET last_seq = v_seq, last_hash = v_prev;
    RETURN cardinality(v_ids);
END $$;

-- Protocol buffers base-128 varint of a non-negative integer.
CREATE FUNCTION ledger_pb_varint(p_n bigint) RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    v_out bytea := ''::bytea;
    v_n bigint := p_n;
BEGIN
    IF v_n < 0 THEN
        RAISE EXCEPTION 'varint of a negative number';
    END IF;
    LOOP
        IF v_n < 128 THEN
            RETURN v_out || set_byte(decode('00', 'hex'), 0, v_n::int);
        END IF;
        v_out := v_out || set_byte(decode('00', 'hex'), 0, ((v_n & 127) | 128)::int);
        v_n := v_n >> 7;
    END LOOP;
END $$;

-- The stored answer of a posting's idempotency key: a serialized ledger.v1.PostTransactionResponse.
-- The servicer serializes every Transaction field it knows before the call (p_tpl); the two the
-- database assigns are appended here: id (field 1) and post_time (field 6, a Timestamp). Protobuf
-- parsers accept fields in any order, so the record can be written in the posting's own statement
-- and a posting costs one round trip.
CREATE FUNCTION ledger_post_response(p_tpl bytea, p_id bigint, p_at timestamptz) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    v_seconds bigint := floor(extract(epoch FROM p_at))::bigint;
    v_nanos bigint := (extract(microseconds FROM p_at)::bigint % 1000000) * 1000;
    v_ts bytea := ''::bytea;
    v_tx bytea;
BEGIN
    IF v_seconds <> 0 THEN
        v_ts := v_ts || decode('08', 'hex') || ledger_pb_varint(v_seconds);
    END IF;
    IF v_nanos <> 0 THEN
        v_ts := v_ts || decode('10', 'hex') || ledger_pb_varint(v_nanos);
    END IF;
    v_tx := p_tpl || decode('08', 'hex') || ledger_pb_varint(p_id)
        || decode('32', 'hex') || ledger_pb_varint(octet_length(v_ts)) || v_ts;
    RETURN decode('0a', 'hex') || ledger_pb_varint(octet_length(v_tx)) || v_tx;
END $$;

-- Locks an item's accounts and checks everything that depends on stored state; writes nothing.
-- Returns NULL when the item may be posted, else 'REASON|message'.
-- The accounts are locked exclusively (FOR NO KEY UPDATE, which is what the running-total UPDATE
-- needs anyway) in id order, so concurrent posters queue on a hot account instead of deadlocking,
-- and the rows returned after the lock are the newest committed versions: every check sees every
-- posting committed before it. The locks are held until commit. (Shared locks plus totals added at
-- commit were measured too: with many posters on ten hot accounts the shared locks turn into
-- MultiXacts and cost PostgreSQL several times more CPU per posting.)
-- All access to accounts goes through the name or id index (= ANY): the cost of a posting must not
-- grow with the number of accounts.
CREATE FUNCTION ledger_check_item(p_names text[], p_dirs text[], p_amts bigint[], p_curs text[],
                                  p_distinct text[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_acc record;
    v_locked int := 0;
    v_net numeric;
    v_k int;
BEGIN
    FOR v_acc IN
        SELECT a.id, a.name, a.type, a.currency::text AS currency, a.closed_at, a.non_negative,
               a.debits_posted, a.credits_posted
        FROM accounts a WHERE a.name = ANY (p_distinct)
        ORDER BY a.id
        FOR NO KEY UPDATE
    LOOP
        v_locked := v_locked + 1;
        IF v_acc.closed_at IS NOT NULL THEN
            RETURN format('ACCOUNT_CLOSED|account %s is closed', v_acc.name);
        END IF;
        v_net := 0;  -- change of the balance on the account's normal side
        FOR v_k IN 1 .. cardinality(p_names) LOOP
            IF p_names[v_k] = v_acc.name THEN
                IF p_curs[v_k] <> v_acc.currency THEN
                    RETURN format('CURRENCY_MISMATCH|account %s is in %s, the entry is in %s',
                                  v_acc.name, v_acc.currency, p_curs[v_k]);
                END IF;
                v_net := v_net + CASE WHEN (p_dirs[v_k] = 'D') = (v_acc.type IN ('asset', 'expense'))
                                      THEN p_amts[v_k] ELSE -p_amts[v_k] END;
            END IF;
        END LOOP;
        IF v_acc.non_negative AND v_net < 0
           AND (CASE WHEN v_acc.type IN ('asset', 'expense') THEN v_acc.debits_posted - v_acc.credits_posted
                     ELSE v_acc.credits_posted - v_acc.debits_posted END) + v_net < 0 THEN
            RETURN format('INSUFFICIENT_BALANCE|account %s would go %s below zero', v_acc.name,
                          -(CASE WHEN v_acc.type IN ('asset', 'expense')
                                 THEN v_acc.debits_posted - v_acc.credits_posted
                                 ELSE v_acc.credits_posted - v_acc.debits_posted END + v_net));
        END IF;
    END LOOP;
    IF v_locked <> cardinality(p_distinct) THEN
        RETURN 'ACCOUNT_NOT_FOUND|an account of this transaction does not exist';
    END IF;
    RETURN NULL;
END $$;

-- Writes a checked item: the running totals, the transaction (queued for the chainer), its entries
-- and its idempotency record.
CREATE FUNCTION ledger_write_item(p_item jsonb, p_key jsonb, p_rev bigint, p_names text[], p_dirs text[],
                                  p_amts bigint[], p_curs text[], p_distinct text[],
                                  OUT o_id bigint, OUT o_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_acc record;
    v_acc_ids bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_names)]);
    v_dr bigint;
    v_cr bigint;
    v_k int;
BEGIN
    o_id := nextval('transactions_id_seq');
    o_at := clock_timestamp();
    -- The rows are already locked by ledger_check_item.
    FOR v_acc IN SELECT a.id, a.name FROM accounts a WHERE a.name = ANY (p_distinct) ORDER BY a.id LOOP
        v_dr := 0; v_cr := 0;
        FOR v_k IN 1 .. cardinality(p_names) LOOP
            IF p_names[v_k] = v_acc.name THEN
                v_acc_ids[v_k] := v_acc.id;
                IF p_dirs[v_k] = 'D' THEN v_dr := v_dr + p_amts[v_k]; ELSE v_cr := v_cr + p_amts[v_k]; END IF;
            END IF;
        END LOOP;
        UPDATE accounts
            SET debits_posted = debits_posted + v_dr,
                credits_posted = credits_posted + v_cr,
                last_transaction_id = greatest(last_transaction_id, o_id)
            WHERE id = v_acc.id;
    END LOOP;
    -- Queue it for the chainer in the same statement (no trigger call per posting).
    WITH t AS (
        INSERT INTO transactions (id, description, external_ref, metadata, reverses_id, posted_at)
            OVERRIDING SYSTEM VALUE
            VALUES (o_id, coalesce(p_item ->> 'desc', ''), coalesce(p_item ->> 'ref', ''),
                    coalesce(p_item -> 'meta', '{}'::jsonb), p_rev, o_at)
            RETURNING id
    )
    INSERT INTO chain_queue (transaction_id) SELECT id FROM t;
    INSERT INTO entries (transaction_id, position, account_id, direction, amount, currency, posted_at)
        SELECT o_id, u.o, u.acc, u.d, u.m, u.c, o_at
        FROM unnest(v_acc_ids, p_dirs, p_amts, p_curs) WITH ORDINALITY AS u(acc, d, m, c, o);
    IF p_key IS NOT NULL AND p_key ? 'tpl' THEN
        -- The key's record, in the same transaction as the posting (as svckit.idempotency does).
        INSERT INTO idempotency_keys (scope, key, fingerprint, response)
            VALUES (p_key ->> 'scope', p_key ->> 'key', decode(p_key ->> 'fp', 'hex'),
                    ledger_post_response(decode(p_key ->> 'tpl', 'hex'), o_id, o_at));
    END IF;
END $$;

-- Posts a batch set-based: a handful of statements per batch instead of a dozen per transaction.
-- The items are still decided one after the other, in order, against running balances held in
-- arrays, so item n sees the effect of items 1..n-1 exactly as single postings would; only the
-- writes are grouped. Every item carries a key (svckit.idempotency's protocol, as in ledger_post).
-- Entries of item i are p_*[p_first[i] .. p_first[i] + p_count[i] - 1]. One row per item.
-- Lock order, the same two phases as a single posting: first the accounts new to the whole batch
-- are created, in name order, before any row lock (first use: the currency of their first entry);
-- then every account is locked in id order. Accounts created here that end up without an entry
-- (their items were refused) are deleted again before commit: nobody else has seen them.
CREATE FUNCTION ledger_post_batch(
    p_first int[], p_count int[], p_names text[], p_dirs text[], p_amts bigint[], p_curs text[],
    p_desc text[], p_ref text[], p_meta jsonb[],
    p_scope text, p_keys text[], p_locks bigint[], p_fps bytea[], p_tpls bytea[], p_nn_prefixes text[])
RETURNS TABLE (o_item int, o_reason text, o_message text, o_tx_id bigint, o_posted_at timestamptz,
               o_stored bytea)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_items int := cardinality(p_first);
    v_got boolean[];
    v_old_fp bytea[];
    v_old_resp bytea[];
    v_distinct text[] := ARRAY(SELECT DISTINCT x FROM unnest(p_names) AS x ORDER BY x);
    a_id bigint[]; a_name text[]; a_type text[]; a_cur text[]; a_closed boolean[]; a_nn boolean[];
    a_dr numeric[]; a_cr numeric[]; a_last bigint[]; a_changed boolean[];
    v_eacc int[];
    -- per-item scratch: touched account slots and their deltas
    t_slot int[]; t_dr numeric[]; t_cr numeric[];
    v_pos int;
    v_slot int;
    v_bal numeric;
    v_reason text;
    v_msg text;
    v_id bigint;
    v_at timestamptz;
    -- accepted rows to write
    w_tx bigint[] := '{}'; w_desc text[] := '{}'; w_ref text[] := '{}'; w_meta jsonb[] := '{}';
    w_at timestamptz[] := '{}'; w_key text[] := '{}'; w_fp bytea[] := '{}'; w_tpl bytea[] := '{}';
    e_tx bigint[] := '{}'; e_pos int[] := '{}'; e_acc bigint[] := '{}'; e_dir text[] := '{}';
    e_amt bigint[] := '{}'; e_cur text[] := '{}'; e_at timestamptz[] := '{}';
    r_reason text[] := '{}'; r_msg text[] := '{}'; r_tx bigint[] := '{}'; r_at timestamptz[] := '{}';
    r_stored bytea[] := '{}';
    v_created bigint[] := '{}';
    i int; j int; k int;
BEGIN
    IF (SELECT count(*) FROM accounts a WHERE a.name = ANY (v_distinct)) < cardinality(v_distinct) THEN
        WITH created AS (
            INSERT INTO accounts (name, type, currency, non_negative)
                SELECT u.n, split_part(u.n, ':', 1),
                       (SELECT p_curs[g.k] FROM generate_subscripts(p_names, 1) AS g(k)
                        WHERE p_names[g.k] = u.n ORDER BY g.k LIMIT 1),
                       EXISTS (SELECT 1 FROM unnest(p_nn_prefixes) AS p(prefix) WHERE starts_with(u.n, p.prefix))
                FROM unnest(v_distinct) AS u(n)
                WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.name = u.n)
                ORDER BY u.n
                ON CONFLICT (name) DO NOTHING
                RETURNING id
        )
        SELECT coalesce(array_agg(id), '{}') INTO v_created FROM created;
    END IF;
    -- Exclusive account locks, in id order (the keys' locks below are only tried, never awaited).
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.name ORDER BY l.id), array_agg(l.type ORDER BY l.id),
           array_agg(l.currency::text ORDER BY l.id), array_agg(l.closed_at IS NOT NULL ORDER BY l.id),
           array_agg(l.non_negative ORDER BY l.id), array_agg(l.debits_posted::numeric ORDER BY l.id),
           array_agg(l.credits_posted::numeric ORDER BY l.id), array_agg(l.last_transaction_id ORDER BY l.id)
        INTO a_id, a_name, a_type, a_cur, a_closed, a_nn, a_dr, a_cr, a_last
        FROM (SELECT a.* FROM accounts a WHERE a.name = ANY (v_distinct) ORDER BY a.id FOR NO KEY UPDATE) l;
    IF coalesce(cardinality(a_id), 0) <> cardinality(v_distinct) THEN
        RAISE EXCEPTION 'accounts of the batch vanished while it ran';
    END IF;
    a_changed := array_fill(false, ARRAY[cardinality(a_id)]);
    v_eacc := ARRAY(SELECT array_position(a_name, u.n) FROM unnest(p_names) WITH ORDINALITY AS u(n, o) ORDER BY u.o);
    v_got := ARRAY(SELECT pg_try_advisory_xact_lock(u.l) FROM unnest(p_locks) WITH ORDINALITY AS u(l, o) ORDER BY u.o);
    -- A new statement, so a new snapshot: it sees holders that committed before we got their locks.
    SELECT array_agg(k.fingerprint ORDER BY u.o), array_agg(k.response ORDER BY u.o)
        INTO v_old_fp, v_old_resp
        FROM unnest(p_keys) WITH ORDINALITY AS u(key, o)
        LEFT JOIN idempotency_keys k ON k.scope = p_scope AND k.key = u.key;

    FOR i IN 1 .. v_items LOOP
        v_reason := NULL; v_msg := NULL; v_id := NULL; v_at := NULL;
        IF NOT v_got[i] THEN
            v_reason := 'IDEMPOTENCY_KEY_IN_USE';
            v_msg := 'a request with this idempotency key is still being processed; retry shortly';
        ELSIF v_old_fp[i] IS NOT NULL THEN
            IF v_old_fp[i] <> p_fps[i] THEN
                v_reason := 'IDEMPOTENCY_KEY_REUSED';
                v_msg := 'this idempotency key was already used with a different request; use a new key';
            END IF;
        ELSE
            t_slot := '{}'; t_dr := '{}'; t_cr := '{}';
            FOR j IN p_first[i] .. p_first[i] + p_count[i] - 1 LOOP
                v_slot := v_eacc[j];
                IF a_closed[v_slot] THEN
                    v_reason := 'ACCOUNT_CLOSED'; v_msg := format('account %s is closed', a_name[v_slot]);
                    EXIT;
                END IF;
                IF p_curs[j] <> a_cur[v_slot] THEN
                    v_reason := 'CURRENCY_MISMATCH';
                    v_msg := format('account %s is in %s, the entry is in %s', a_name[v_slot], a_cur[v_slot], p_curs[j]);
                    EXIT;
                END IF;
                v_pos := array_position(t_slot, v_slot);
                IF v_pos IS NULL THEN
                    t_slot := t_slot || v_slot; t_dr := t_dr || 0::numeric; t_cr := t_cr || 0::numeric;
                    v_pos := cardinality(t_slot);
                END IF;
                IF p_dirs[j] = 'D' THEN t_dr[v_pos] := t_dr[v_pos] + p_amts[j];
                ELSE t_cr[v_pos] := t_cr[v_pos] + p_amts[j]; END IF;
            END LOOP;
            IF v_reason IS NULL THEN
                FOR k IN 1 .. cardinality(t_slot) LOOP
                    v_slot := t_slot[k];
                    IF a_dr[v_slot] + t_dr[k] > 9223372036854775807 OR a_cr[v_slot] + t_cr[k] > 9223372036854775807 THEN
                        v_reason := 'BALANCE_OVERFLOW';
                        v_msg := 'an account total would exceed the largest storable amount';
                        EXIT;
                    END IF;
                    IF a_nn[v_slot] THEN
                        v_bal := CASE WHEN a_type[v_slot] IN ('asset', 'expense')
                                      THEN (a_dr[v_slot] + t_dr[k]) - (a_cr[v_slot] + t_cr[k])
                                      ELSE (a_cr[v_slot] + t_cr[k]) - (a_dr[v_slot] + t_dr[k]) END;
                        IF v_bal < 0 AND (CASE WHEN a_type[v_slot] IN ('asset', 'expense')
                                               THEN t_dr[k] - t_cr[k] ELSE t_cr[k] - t_dr[k] END) < 0 THEN
                            v_reason := 'INSUFFICIENT_BALANCE';
                            v_msg := format('account %s would go %s below zero', a_name[v_slot], -v_bal);
                            EXIT;
                        END IF;
                    END IF;
                END LOOP;
            END IF;
            IF v_reason IS NULL THEN
                v_id := nextval('transactions_id_seq');
                v_at := clock_timestamp();
                FOR k IN 1 .. cardinality(t_slot) LOOP
                    v_slot := t_slot[k];
                    a_dr[v_slot] := a_dr[v_slot] + t_dr[k];
                    a_cr[v_slot] := a_cr[v_slot] + t_cr[k];
                    a_last[v_slot] := greatest(a_last[v_slot], v_id);
                    a_changed[v_slot] := true;
                END LOOP;
                w_tx := w_tx || v_id; w_desc := w_desc || p_desc[i]; w_ref := w_ref || p_ref[i];
                w_meta := w_meta || p_meta[i]; w_at := w_at || v_at; w_key := w_key || p_keys[i];
                w_fp := w_fp || p_fps[i]; w_tpl := w_tpl || p_tpls[i];
                FOR j IN p_first[i] .. p_first[i] + p_count[i] - 1 LOOP
                    e_tx := e_tx || v_id; e_pos := e_pos || (j - p_first[i] + 1); e_acc := e_acc || a_id[v_eacc[j]];
                    e_dir := e_dir || p_dirs[j]; e_amt := e_amt || p_amts[j]; e_cur := e_cur || p_curs[j];
                    e_at := e_at || v_at;
                END LOOP;
            END IF;
        END IF;
        r_reason := r_reason || v_reason; r_msg := r_msg || v_msg; r_tx := r_tx || v_id; r_at := r_at || v_at;
        r_stored := r_stored || CASE WHEN v_reason IS NULL AND v_id IS NULL THEN v_old_resp[i] END;
    END LOOP;

    IF cardinality(w_tx) > 0 THEN
        UPDATE accounts a
            SET debits_posted = a_dr[array_position(a_id, a.id)]::bigint,
                credits_posted = a_cr[array_position(a_id, a.id)]::bigint,
                last_transaction_id = a_last[array_position(a_id, a.id)]
            WHERE a.id = ANY (ARRAY(SELECT a_id[s] FROM generate_subscripts(a_id, 1) AS s WHERE a_changed[s]));
        WITH t AS (
            INSERT INTO transactions (id, description, external_ref, metadata, reverses_id, posted_at)
                OVERRIDING SYSTEM VALUE
                SELECT u.id, u.d, u.r, u.m, NULL, u.at FROM unnest(w_tx, w_desc, w_ref, w_meta, w_at) AS u(id, d, r, m, at)
                RETURNING id
        )
        INSERT INTO chain_queue (transaction_id) SELECT id FROM t;
        INSERT INTO entries (transaction_id, position, account_id, direction, amount, currency, posted_at)
            SELECT * FROM unnest(e_tx, e_pos, e_acc, e_dir, e_amt, e_cur, e_at);
        INSERT INTO idempotency_keys (scope, key, fingerprint, response)
            SELECT p_scope, u.k, u.fp, ledger_post_response(u.tpl, u.id, u.at)
            FROM unnest(w_key, w_fp, w_tpl, w_tx, w_at) AS u(k, fp, tpl, id, at);
    END IF;
    IF cardinality(v_created) > 0 THEN
        -- A refused item creates nothing: drop the accounts made for the batch that got no entry.
        DELETE FROM accounts a WHERE a.id = ANY (v_created) AND a.id <> ALL (e_acc);
    END IF;
    FOR i IN 1 .. v_items LOOP
        o_item := i; o_reason := r_reason[i]; o_message := r_msg[i]; o_tx_id := r_tx[i];
        o_posted_at := r_at[i]; o_stored := r_stored[i];
        RETURN NEXT;
    END LOOP;
END $fn$;

-- Posts a list of transactions in one round trip. Each item is posted or refused on its own.
-- p_items: [{"a": [names], "d": ["D"|"C"], "m": [amounts], "c": [currencies],
--            "desc": text, "ref": text, "meta": {..}, "rev": id|null,
--            "key": {"scope", "key", "lock": advisory lock id, "fp": hex fingerprint,
--                    "tpl": hex answer template (see ledger_post_response)}|null}]
-- An item with a key follows svckit.idempotency's protocol on its table: try the key's advisory lock
-- (IDEMPOTENCY_KEY_IN_USE if held), replay a stored answer (or IDEMPOTENCY_KEY_REUSED on another
-- fingerprint), else post and store the answer in the same transaction.
-- An item on existing accounts is checked before anything is written, so a refusal needs no undo
-- and no subtransaction (a batch of a hundred subtransactions would overflow PostgreSQL's per-backend
-- subtransaction cache and slow every reader). Only items that create accounts or reverse a
-- transaction run in an exception block, whose subtransaction undoes them if they are refused.
CREATE FUNCTION ledger_post(p_items jsonb, p_nn_prefixes text[])
RETURNS TABLE (o_item int, o_reason text, o_message text, o_tx_id bigint, o_posted_at timestamptz,
               o_entries jsonb, o_stored bytea)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_item jsonb;
    v_key jsonb;
    v_fp bytea;
    v_stored bytea;
    v_rev bigint;
    v_orig_rev bigint;
    v_names text[];
    v_dirs text[];
    v_amts bigint[];
    v_curs text[];
    v_distinct text[];
    v_missing boolean;
    v_refusal text;
    v_reason text;
    v_msg text;
    v_constraint text;
BEGIN
    o_item := 0;
    IF jsonb_array_length(p_items) > 1 THEN
        -- Items lock their accounts one after the other, so a batch would not take its locks in
        -- one global order; lock every existing account of the batch first, in id order.
        -- (Accounts created by the batch are invisible to others until commit.)
        PERFORM 1 FROM accounts a
            WHERE a.name = ANY (ARRAY(SELECT DISTINCT jsonb_array_elements_text(x.item_json -> 'a')
                                      FROM jsonb_array_elements(p_items) AS x(item_json)))
            ORDER BY a.id
            FOR NO KEY UPDATE;
    END IF;
    FOR v_item IN SELECT value FROM jsonb_array_elements(p_items) LOOP
        o_item := o_item + 1;
        o_reason := NULL; o_message := NULL; o_tx_id := NULL; o_posted_at := NULL;
        o_entries := NULL; o_stored := NULL;

        v_key := v_item -> 'key';
        IF v_key IS NOT NULL AND jsonb_typeof(v_key) = 'object' THEN
            IF NOT pg_try_advisory_xact_lock((v_key ->> 'lock')::bigint) THEN
                o_reason := 'IDEMPOTENCY_KEY_IN_USE';
                o_message := 'a request with this idempotency key is still being processed; retry shortly';
                RETURN NEXT;
                CONTINUE;
            END IF;
            -- A new statement, so a new snapshot: it sees a holder that committed before our lock.
            SELECT k.fingerprint, k.response INTO v_fp, v_stored
                FROM idempotency_keys k WHERE k.scope = v_key ->> 'scope' AND k.key = v_key ->> 'key';
            IF FOUND THEN
                IF v_fp = decode(v_key ->> 'fp', 'hex') THEN
                    o_stored := v_stored;
                ELSE
                    o_reason := 'IDEMPOTENCY_KEY_REUSED';
                    o_message := 'this idempotency key was already used with a different request; use a new key';
                END IF;
                RETURN NEXT;
                CONTINUE;
            END IF;
        ELSE
            v_key := NULL;
        END IF;

        v_rev := (v_item ->> 'rev')::bigint;
        v_missing := false;
        IF v_rev IS NULL THEN
            v_names := ARRAY(SELECT jsonb_array_elements_text(v_item -> 'a'));
            v_dirs := ARRAY(SELECT jsonb_array_elements_text(v_item -> 'd'));
            v_amts := ARRAY(SELECT jsonb_array_elements_text(v_item -> 'm'))::bigint[];
            v_curs := ARRAY(SELECT jsonb_array_elements_text(v_item -> 'c'));
            v_distinct := ARRAY(SELECT DISTINCT x FROM unnest(v_names) AS x ORDER BY x);
            v_missing := (SELECT count(*) FROM accounts a WHERE a.name = ANY (v_distinct)) < cardinality(v_distinct);
            IF NOT v_missing THEN
                v_refusal := ledger_check_item(v_names, v_dirs, v_amts, v_curs, v_distinct);
                IF v_refusal IS NOT NULL THEN
                    o_reason := split_part(v_refusal, '|', 1);
                    o_message := substr(v_refusal, length(o_reason) + 2);
                ELSE
                    SELECT w.o_id, w.o_at INTO o_tx_id, o_posted_at
                        FROM ledger_write_item(v_item, v_key, NULL, v_names, v_dirs, v_amts, v_curs, v_distinct) w;
                END IF;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        BEGIN
            IF v_rev IS NOT NULL THEN
                SELECT t.reverses_id INTO v_orig_rev FROM transactions t WHERE t.id = v_rev;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'no transaction with id %', v_rev
                        USING ERRCODE = 'LG001', DETAIL = 'TRANSACTION_NOT_FOUND';
                END IF;
                IF v_orig_rev IS NOT NULL THEN
                    RAISE EXCEPTION 'transaction % is itself a reversal and cannot be reversed', v_rev
                        USING ERRCODE = 'LG001', DETAIL = 'CANNOT_REVERSE_REVERSAL';
                END IF;
                IF EXISTS (SELECT 1 FROM transactions t WHERE t.reverses_id = v_rev) THEN
                    RAISE EXCEPTION 'transaction % was already reversed', v_rev
                        USING ERRCODE = 'LG001', DETAIL = 'ALREADY_REVERSED';
                END IF;
                SELECT array_agg(a.name ORDER BY e.position),
                       array_agg(CASE e.direction WHEN 'D' THEN 'C' ELSE 'D' END ORDER BY e.position),
                       array_agg(e.amount ORDER BY e.position),
                       array_agg(e.currency::text ORDER BY e.position)
                    INTO v_names, v_dirs, v_amts, v_curs
                    FROM entries e JOIN accounts a ON a.id = e.account_id
                    WHERE e.transaction_id = v_rev;
                v_distinct := ARRAY(SELECT DISTINCT x FROM unnest(v_names) AS x ORDER BY x);
                o_entries := jsonb_build_object('a', v_names, 'd', v_dirs, 'm', v_amts, 'c', v_curs);
            ELSE
                -- Accounts on first use, in name order and before any row lock of this item.
                INSERT INTO accounts (name, type, currency, non_negative)
                    SELECT u.n, split_part(u.n, ':', 1),
                           (SELECT v_curs[g.k] FROM generate_subscripts(v_names, 1) AS g(k)
                            WHERE v_names[g.k] = u.n LIMIT 1),
                           EXISTS (SELECT 1 FROM unnest(p_nn_prefixes) AS p(prefix) WHERE starts_with(u.n, p.prefix))
                    FROM unnest(v_distinct) AS u(n)
                    ORDER BY u.n
                    ON CONFLICT (name) DO NOTHING;
            END IF;
            v_refusal := ledger_check_item(v_names, v_dirs, v_amts, v_curs, v_distinct);
            IF v_refusal IS NOT NULL THEN
                RAISE EXCEPTION '%', substr(v_refusal, length(split_part(v_refusal, '|', 1)) + 2)
                    USING ERRCODE = 'LG001', DETAIL = split_part(v_refusal, '|', 1);
            END IF;
            SELECT w.o_id, w.o_at INTO o_tx_id, o_posted_at
                FROM ledger_write_item(v_item, v_key, v_rev, v_names, v_dirs, v_amts, v_curs, v_distinct) w;
            RETURN NEXT;
        EXCEPTION
            WHEN SQLSTATE 'LG001' THEN
                GET STACKED DIAGNOSTICS v_reason = PG_EXCEPTION_DETAIL, v_msg = MESSAGE_TEXT;
                o_reason := v_reason; o_message := v_msg; o_tx_id := NULL; o_posted_at := NULL;
                o_entries := NULL;
                RETURN NEXT;
            WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                IF v_constraint <> 'uq_transactions_reverses_id' THEN
                    RAISE;
                END IF;
                -- A concurrent reversal of the same transaction committed first.
                o_reason := 'ALREADY_REVERSED';
                o_message := format('transaction %s was already reversed', v_rev);
                o_tx_id := NULL; o_posted_at := NULL; o_entries := NULL;
                RETURN NEXT;
        END;
    END LOOP;
END $fn$;
"""


def upgrade() -> None:
    op.execute(_TABLES)
    op.execute(_IMMUTABILITY)
    for table in _IMMUTABLE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
    op.execute(_FUNCTIONS)


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_post(jsonb, text[])")
    op.execute(
        "DROP FUNCTION ledger_post_batch(int[], int[], text[], text[], bigint[], text[], text[], text[], jsonb[], "
        "text, text[], bigint[], bytea[], bytea[], text[])"
    )
    op.execute(
        "DROP FUNCTION ledger_write_item(jsonb, jsonb, bigint, text[], text[], bigint[], text[], text[])"
    )
    op.execute("DROP FUNCTION ledger_check_item(text[], text[], bigint[], text[], text[])")
    op.execute("DROP FUNCTION ledger_post_response(bytea, bigint, timestamptz)")
    op.execute("DROP FUNCTION ledger_pb_varint(bigint)")
    op.execute("DROP TABLE chain_head")
    op.execute("DROP TABLE chain_queue")
    # Dropping the tables drops their triggers; the immutability rule is about rows, not schema.
    op.execute("DROP TABLE transaction_chain")
    op.execute("DROP TABLE entries")
    op.execute("DROP TABLE transactions")
    op.execute("DROP FUNCTION ledger_chain_pending(int)")
    op.execute("DROP FUNCTION ledger_tx_payload(bigint, bigint)")
    op.execute("DROP FUNCTION ledger_lp(text)")
    op.execute("DROP FUNCTION ledger_refuse_change()")
    op.execute(
        "ALTER TABLE accounts DROP CONSTRAINT ck_accounts_currency, DROP CONSTRAINT ck_accounts_non_negative, "
        "DROP CONSTRAINT ck_accounts_totals, DROP COLUMN last_transaction_id, DROP COLUMN credits_posted, "
        "DROP COLUMN debits_posted, DROP COLUMN closed_at, DROP COLUMN non_negative"
    )
