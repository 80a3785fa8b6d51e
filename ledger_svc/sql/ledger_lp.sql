-- ledger_lp(s): one length-prefixed text field of the chain's canonical encoding, '<octets>:<text>'
-- (docs/ledger.md, "Hash chain"; ledger_svc/chain.py encodes the same in Python).
-- In SQL because the chainer builds every payload in the database, in the pass that hashes it.

CREATE OR REPLACE FUNCTION ledger_lp(s text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT octet_length(s)::text || ':' || s $$;
