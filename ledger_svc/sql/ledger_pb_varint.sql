-- ledger_pb_varint(n): the protocol buffers base-128 varint of n, as one SQL expression that the
-- planner inlines (a PL/pgSQL loop, run once per stored answer, cost several times more). For a varint of L bytes
-- (n < 2^(7L), L <= 7) byte i is the i-th group of 7 bits with the continuation bit 128 set on all
-- but the last; the bytes are assembled in a bigint and cut from the tail of int8send. Larger and
-- negative numbers take ledger_pb_varint_loop. Used to build stored answers in the posting statement
-- (see ledger_post_response).

CREATE OR REPLACE FUNCTION ledger_pb_varint(n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE
    WHEN n < 0 THEN ledger_pb_varint_loop(n)
    WHEN n < 128 THEN substring(int8send(((n >> 0) << 0)) FROM 8)
    WHEN n < 16384 THEN substring(int8send(
            ((((n >> 0) & 127) | 128) << 8)
            | ((n >> 7) << 0)) FROM 7)
    WHEN n < 2097152 THEN substring(int8send(
            ((((n >> 0) & 127) | 128) << 16)
            | ((((n >> 7) & 127) | 128) << 8)
            | ((n >> 14) << 0)) FROM 6)
    WHEN n < 268435456 THEN substring(int8send(
            ((((n >> 0) & 127) | 128) << 24)
            | ((((n >> 7) & 127) | 128) << 16)
            | ((((n >> 14) & 127) | 128) << 8)
            | ((n >> 21) << 0)) FROM 5)
    WHEN n < 34359738368 THEN substring(int8send(
            ((((n >> 0) & 127) | 128) << 32)
            | ((((n >> 7) & 127) | 128) << 24)
            | ((((n >> 14) & 127) | 128) << 16)
            | ((((n >> 21) & 127) | 128) << 8)
            | ((n >> 28) << 0)) FROM 4)
    WHEN n < 4398046511104 THEN substring(int8send(
            ((((n >> 0) & 127) | 128) << 40)
            | ((((n >> 7) & 127) | 128) << 32)
            | ((((n >> 14) & 127) | 128) << 24)
            | ((((n >> 21) & 127) | 128) << 16)
            | ((((n >> 28) & 127) | 128) << 8)
            | ((n >> 35) << 0)) FROM 3)
    WHEN n < 562949953421312 THEN substring(int8send(
            ((((n >> 0) & 127) | 128) << 48)
            | ((((n >> 7) & 127) | 128) << 40)
            | ((((n >> 14) & 127) | 128) << 32)
            | ((((n >> 21) & 127) | 128) << 24)
            | ((((n >> 28) & 127) | 128) << 16)
            | ((((n >> 35) & 127) | 128) << 8)
            | ((n >> 42) << 0)) FROM 2)
    ELSE ledger_pb_varint_loop(n)
END
$$;
