-- ledger_post_response(template, id, post time): the stored answer of a posting's idempotency key, a
-- serialized ledger.v1.PostTransactionResponse.
-- The servicer serializes every Transaction field it knows before the call (p_tpl); the two the
-- database assigns are appended here: id (field 1) and post_time (field 6, a Timestamp with seconds
-- field 1 and nanos field 2, zero fields omitted); the whole is field 1 (transaction) of the
-- response. Protobuf parsers accept fields in any order. Why SQL: the key's record is written in the
-- posting's own statement and transaction (one round trip, the record commits with the posting).
-- ledger_post_batch's fast path builds the same bytes set-based; tests compare both with Python.

CREATE OR REPLACE FUNCTION ledger_post_response(p_tpl bytea, p_id bigint, p_at timestamptz) RETURNS bytea
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
