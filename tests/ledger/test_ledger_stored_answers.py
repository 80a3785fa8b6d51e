"""A posting's answer is the transaction that was sent, with the id and time the ledger gave it, and
a replay returns exactly that answer: for long texts, metadata, big amounts, currencies written in
lower case and requests carrying fields the ledger does not know. The answers the database builds
(single posting and batch) are exact protobuf encodings of that transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from tests.ledger.ledger_helpers import C, D, entry, md, uid


def _requests() -> list[pb.PostTransactionRequest]:
    a, b, x, y = (f"{kind}:ans:{uid()}" for kind in ("asset", "liability", "revenue", "expense"))
    return [
        pb.PostTransactionRequest(entries=[entry(a, D, 5), entry(b, C, 5)]),
        pb.PostTransactionRequest(
            entries=[entry(a, D, 2**40), entry(x, C, 2**40 - 3), entry(y, C, 3)],
            description="é" * 300,  # a length needing a two-byte varint
            external_ref="order-1",
            metadata={"z": "1", "a": "2", "m": "ü" * 200},
        ),
    ]


def _sent(request: pb.PostTransactionRequest, answer: pb.Transaction) -> pb.Transaction:
    """The transaction ``request`` describes, with the id and time ``answer`` was given."""
    tx = pb.Transaction(
        id=answer.id,
        entries=request.entries,
        description=request.description,
        external_ref=request.external_ref,
        metadata=request.metadata,
    )
    tx.post_time.CopyFrom(answer.post_time)
    return tx


@pytest.mark.parametrize("which", [0, 1])
async def test_a_posting_answers_what_was_sent_and_replays_it_exactly(stub, which):
    request = _requests()[which]
    key = f"ans-{uid()}"
    first = await stub.PostTransaction(request, metadata=md(key))
    assert first.transaction.id > 0 and first.transaction.post_time.seconds > 0
    assert first.transaction == _sent(request, first.transaction)
    again = await stub.PostTransaction(request, metadata=md(key))
    assert again.SerializeToString() == first.SerializeToString()
    fetched = (
        await stub.GetTransaction(pb.GetTransactionRequest(transaction_id=first.transaction.id))
    ).transaction
    assert (list(fetched.entries), fetched.description, dict(fetched.metadata)) == (
        list(request.entries),
        request.description,
        dict(request.metadata),
    )


async def test_a_lower_case_currency_is_answered_upper_case(stub):
    request = pb.PostTransactionRequest(
        entries=[entry(f"asset:ans:{uid()}", D, 5, "usd"), entry(f"liability:ans:{uid()}", C, 5, "usd")]
    )
    key = f"ans-{uid()}"
    answer = (await stub.PostTransaction(request, metadata=md(key))).transaction
    assert [e.currency for e in answer.entries] == ["USD", "USD"]
    assert (await stub.PostTransaction(request, metadata=md(key))).transaction == answer


async def test_unknown_request_fields_do_not_reach_the_answer(stub):
    known = pb.PostTransactionRequest(
        entries=[entry(f"asset:ans:{uid()}", D, 5), entry(f"liability:ans:{uid()}", C, 5)]
    )
    # Field 9 (varint 1) is unknown to PostTransactionRequest; in a Transaction, field 9 is `hash`.
    request = pb.PostTransactionRequest.FromString(known.SerializeToString() + b"\x48\x01")
    assert request.SerializeToString().endswith(b"\x48\x01")  # the stub sends it as it came
    key = f"ans-{uid()}"
    answer = (await stub.PostTransaction(request, metadata=md(key))).transaction
    assert answer.hash == b""
    # Byte for byte, so a stray unknown field in the answer would show.
    assert answer.SerializeToString(deterministic=True) == _sent(known, answer).SerializeToString(
        deterministic=True
    )
    replayed = (await stub.PostTransaction(request, metadata=md(key))).transaction
    assert replayed.SerializeToString() == answer.SerializeToString()


async def _batch_and_single_answers(services, cases, at_type: str) -> tuple[list, list]:
    """The batch's set-based answers and ``ledger_post_response``'s, for (template, id, moment) cases;
    ``at_type`` is how the moments travel to the single function (``text`` or ``timestamptz``)."""
    at = "a" if at_type == "timestamptz" else "CAST(a AS timestamptz)"
    async with services["ledger"].engine.connect() as conn:
        await conn.exec_driver_sql(_batch_answers_sql().replace("%", "%%"))
        batched, single = (
            await conn.execute(
                sa.text(
                    "SELECT pg_temp.batch_answers(CAST(:tpls AS bytea[]), CAST(:items AS int[]),"
                    " CAST(:ids AS bigint[]), CAST(:ats AS timestamptz[])),"
                    f" ARRAY(SELECT ledger_post_response(t, i, {at})"
                    f"       FROM unnest(CAST(:tpls AS bytea[]), CAST(:ids AS bigint[]), CAST(:ats AS {at_type}[]))"
                    "       WITH ORDINALITY AS u(t, i, a, o) ORDER BY o)"
                ),
                {
                    "tpls": [c[0] for c in cases],
                    "items": list(range(1, len(cases) + 1)),
                    "ids": [c[1] for c in cases],
                    "ats": [c[2] for c in cases],
                },
            )
        ).one()
        await conn.rollback()
    return batched, single


async def test_batch_item_and_single_call_answer_alike_on_non_normal_input(stub):
    """Lower-case currencies and metadata: the long-way template, in both paths, same answer shape,
    and a replay of each returns exactly its first answer."""
    debit, credit = f"asset:cash:f{uid()}", f"revenue:x:f{uid()}"

    def request() -> pb.PostTransactionRequest:
        return pb.PostTransactionRequest(
            entries=[entry(debit, D, 7, "usd"), entry(credit, C, 7, "usd")],
            description="non-normal",
            metadata={"b": "2", "a": "1"},
        )

    single_key, item_key = f"s-{uid()}", f"i-{uid()}"
    single = await stub.PostTransaction(request(), metadata=md(single_key))
    batch = await stub.PostTransactions(
        pb.PostTransactionsRequest(
            items=[pb.PostTransactionsItem(idempotency_key=item_key, transaction=request())]
        ),
        metadata=md(),
    )
    item = batch.results[0].transaction
    for tx in (single.transaction, item):
        assert [e.currency for e in tx.entries] == ["USD", "USD"]
        assert dict(tx.metadata) == {"a": "1", "b": "2"} and tx.description == "non-normal"
    strip = pb.Transaction()
    strip.CopyFrom(item)
    strip.id, strip.post_time.seconds, strip.post_time.nanos = single.transaction.id, 0, 0
    other = pb.Transaction()
    other.CopyFrom(single.transaction)
    other.post_time.seconds, other.post_time.nanos = 0, 0
    assert strip == other
    assert (await stub.PostTransaction(request(), metadata=md(single_key))) == single
    assert (await stub.PostTransaction(request(), metadata=md(item_key))).transaction == item


def _batch_answers_sql() -> str:
    """ledger_post_batch's set-based answer statement (ledger_svc/sql/ledger_post_batch.sql), wrapped in
    a temporary function of its variables."""
    from ledger_svc import sql

    text = sql.source("ledger_post_batch")
    start = text.index("w_answer := ARRAY(")
    statement = text[start : text.index("ORDER BY k);", start) + len("ORDER BY k);")]
    return (
        "CREATE FUNCTION pg_temp.batch_answers(p_tpls bytea[], w_item int[], w_tx bigint[], w_at timestamptz[])"
        " RETURNS bytea[] LANGUAGE plpgsql AS $fn$ DECLARE w_answer bytea[]; BEGIN\n"
        + statement
        + "\nRETURN w_answer; END $fn$"
    )


async def test_a_batch_answers_with_the_bytes_of_a_single_posting(services):
    """Every varint length (ids, seconds, nanos), whole seconds (no nanos field), and templates long
    enough for a two-byte length: the batch's statement gives ledger_post_response's bytes."""
    ids = [1, 127, 128, 300, 16_383, 16_384, 2**40 + 5]
    moments = ["2026-11-21 12:00:00+00", "2026-11-21 12:00:00.000001+00", "2031-05-02 23:59:59.999999+00",
               "1970-01-01 00:00:00+00", "1970-01-01 00:00:01.5+00"]  # fmt: skip
    tpls = [b"", b"\x12\x05abcde", bytes(range(256)) * 3]
    cases = [(t, i, m) for t in tpls for i in ids for m in moments]
    batched, slow = await _batch_and_single_answers(services, cases, "text")
    assert len(batched) == len(cases)
    assert [bytes(b) for b in batched] == [bytes(b) for b in slow]


# The shape of a posting key's stored answer (PostTransactionResponse), split between the two sides
# that build it. Every field must be in exactly one set, so a field added to the proto fails
# test_every_answer_field_is_built_by_sql_or_python until it is given to a side; a field given to
# SQL must then be built by both SQL encoders (ledger_post_response, and ledger_post_batch's
# set-based statement) for test_sql_answers_are_the_python_encoders_bytes to pass.
SQL_FIELDS = {
    "PostTransactionResponse.transaction",
    "Transaction.id",
    "Transaction.post_time",
    "Timestamp.seconds",
    "Timestamp.nanos",
}
# Serialized by the servicer into the answer template that the SQL appends to.
TEMPLATE_FIELDS = {
    "Transaction.entries",
    "Transaction.description",
    "Transaction.external_ref",
    "Transaction.metadata",
}
# Left at their defaults in a posting's answer: a new posting reverses nothing and is chained later.
DEFAULT_FIELDS = {
    "Transaction.reverses_id",
    "Transaction.sequence",
    "Transaction.hash",
    "Transaction.previous_hash",
}


def _answer_fields(message=pb.PostTransactionResponse.DESCRIPTOR) -> set[str]:
    """Every field of the answer; the messages SQL builds are walked into."""
    names = set()
    for field in message.fields:
        name = f"{message.name}.{field.name}"
        names.add(name)
        if name in SQL_FIELDS and field.message_type is not None:
            names |= _answer_fields(field.message_type)
    return names


def test_every_answer_field_is_built_by_sql_or_python():
    assert not SQL_FIELDS & TEMPLATE_FIELDS and not (SQL_FIELDS | TEMPLATE_FIELDS) & DEFAULT_FIELDS
    assert _answer_fields() == SQL_FIELDS | TEMPLATE_FIELDS | DEFAULT_FIELDS


async def test_sql_answers_are_the_python_encoders_bytes(services):
    """Both SQL encoders give exactly the bytes Python's protobuf encoder gives for the template followed
    by the fields the database assigns, over every varint length (including the loop beyond 2^49),
    whole seconds (no nanos field), the epoch (an empty Timestamp) and a template with every
    template field set."""
    from google.protobuf import wrappers_pb2

    full = pb.Transaction(
        entries=[entry("asset:a:b", D, 2**40), entry("revenue:x", C, 2**40)],
        description="é" * 100,
        external_ref="order-1",
        metadata={"a": "1", "z": "ü" * 70},
    )
    assert {f"Transaction.{f.name}" for f, _ in full.ListFields()} == TEMPLATE_FIELDS
    tpls = [b"", full.SerializeToString()]
    ids = [1, 127, 128, 16_384, 2**40 + 5, 2**49, 2**62]
    moments = [
        datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 21, 12, 0, 0, 1, tzinfo=UTC),
        datetime(2031, 5, 2, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
    ]
    cases = [(t, i, m) for t in tpls for i in ids for m in moments]
    expected = []
    for tpl, tx_id, moment in cases:
        assigned = pb.Transaction(id=tx_id)
        assigned.post_time.FromDatetime(moment)
        # PostTransactionResponse.transaction (field 1, length-delimited) holds template + assigned.
        expected.append(wrappers_pb2.BytesValue(value=tpl + assigned.SerializeToString()).SerializeToString())
    batched, single = await _batch_and_single_answers(services, cases, "timestamptz")
    assert [bytes(b) for b in batched] == expected
    assert [bytes(b) for b in single] == expected
    for (tpl, tx_id, moment), answer in zip(cases, batched, strict=True):
        want = pb.Transaction.FromString(tpl)
        want.id = tx_id
        want.post_time.FromDatetime(moment)
        assert pb.PostTransactionResponse.FromString(bytes(answer)) == pb.PostTransactionResponse(
            transaction=want
        )
