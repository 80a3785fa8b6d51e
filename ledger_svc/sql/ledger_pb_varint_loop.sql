-- ledger_pb_varint_loop(n): the protocol buffers base-128 varint of a non-negative integer, byte by
-- byte; raises on a negative number. Only ledger_pb_varint calls it, for n >= 2^49 or n < 0.

CREATE OR REPLACE FUNCTION ledger_pb_varint_loop(p_n bigint) RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
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
