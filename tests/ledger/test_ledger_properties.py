"""Property test: random postings, reversals and replays through gRPC against the real database,
checked against a small model after every step.

The model predicts every outcome (accepted or the refusal reason) and every balance; after each step
the test also asks VerifyLedger, which re-derives balances and per-currency balance from the entries.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from svckit.db import drop_database
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.testing import Infra, refusal_info
from tests.ledger.ledger_helpers import C, D, LedgerProcess, entry, md, start_ledger_process

# (name template, currency, debit-normal, non-negative on first use)
ACCOUNTS = [
    ("asset:cash:{}", "USD", True, False),
    ("liability:seller_payable:{}", "USD", False, True),
    ("revenue:commission_{}", "USD", False, False),
    ("expense:psp_fees_{}", "USD", True, False),
    ("asset:cash_eur:{}", "EUR", True, False),
    ("liability:seller_payable:eur_{}", "EUR", False, True),
]


@pytest.fixture(scope="module")
def ledger(infra: Infra) -> Iterator[tuple[LedgerProcess, pb_grpc.LedgerServiceStub]]:
    started = start_ledger_process(infra)
    with infra.sync_channel(started.address) as channel:
        yield started, pb_grpc.LedgerServiceStub(channel)
    started.stop()
    drop_database(started.database_url)


leg = st.tuples(
    st.integers(0, len(ACCOUNTS) - 1),
    st.booleans(),  # debit?
    st.integers(1, 500),
    st.integers(0, 29),  # 0: the entry names the wrong currency; 1: its amount is not positive
)
post_op = st.tuples(st.just("post"), st.lists(leg, min_size=1, max_size=4), st.integers(0, 9))
reverse_op = st.tuples(st.just("reverse"), st.integers(0, 50))
replay_op = st.tuples(st.just("replay"), st.integers(0, 50))
operations = st.lists(st.one_of(post_op, post_op, post_op, reverse_op, replay_op), min_size=1, max_size=12)


@dataclass
class Model:
    suffix: str
    totals: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    currency: dict[str, str] = field(default_factory=dict)
    posted: list[tuple[pb.Transaction, bool]] = field(default_factory=list)  # (tx, is reversal)
    reversed: set[int] = field(default_factory=set)
    answers: dict[str, pb.PostTransactionResponse] = field(default_factory=dict)
    requests: list[tuple[str, pb.PostTransactionRequest]] = field(default_factory=list)

    def name(self, i: int) -> str:
        return ACCOUNTS[i][0].format(self.suffix)

    def spec(self, name: str) -> tuple[str, str, bool, bool]:
        return next(a for a in ACCOUNTS if a[0].format(self.suffix) == name)

    def balance(self, name: str) -> int:
        debits, credits = self.totals.get(name, (0, 0))
        return debits - credits if self.spec(name)[2] else credits - debits

    def predict(self, entries: list[tuple[str, int, int, str]]) -> set[str]:
        """Expected refusal reasons (empty: accepted). Several when the order of checks is open."""
        if len(entries) < 2:
            return {"TOO_FEW_ENTRIES"}
        seen: dict[str, str] = {}
        sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for name, direction, amount, currency in entries:
            if amount <= 0:
                return {"AMOUNT_NOT_POSITIVE"}
            if seen.setdefault(name, currency) != currency:
                return {"CURRENCY_MISMATCH"}
            sums[currency][0 if direction == D else 1] += amount
        if any(d != c for d, c in sums.values()):
            return {"UNBALANCED_TRANSACTION"}
        return self.stateful(entries)

    def stateful(self, entries) -> set[str]:
        reasons = set()
        delta: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for name, direction, amount, currency in entries:
            delta[name][0 if direction == D else 1] += amount
            if self.currency.get(name, currency) != currency:
                reasons.add("CURRENCY_MISMATCH")
        for name, (debits, credits) in delta.items():
            _, _, debit_normal, non_negative = self.spec(name)
            after = self.balance(name) + ((debits - credits) if debit_normal else (credits - debits))
            if non_negative and after < 0:
                reasons.add("INSUFFICIENT_BALANCE")
        return reasons

    def apply(self, entries) -> None:
        for name, direction, amount, currency in entries:
            self.currency.setdefault(name, currency)
            self.totals[name][0 if direction == D else 1] += amount


def _entries_of(request: pb.PostTransactionRequest) -> list[tuple[str, int, int, str]]:
    return [(e.account, e.direction, e.amount_minor, e.currency) for e in request.entries]


def _build(model: Model, legs, balance_choice: int) -> pb.PostTransactionRequest:
    entries = []
    for index, debit, amount, flaw in legs:
        currency = ACCOUNTS[index][1]
        if flaw == 1:
            amount = 1 - amount
        if flaw == 0:
            currency = "EUR" if currency == "USD" else "USD"
        entries.append(entry(model.name(index), D if debit else C, amount, currency))
    if balance_choice > 0:  # usually: add the legs that balance each currency
        net: dict[str, int] = defaultdict(int)
        for e in entries:
            net[e.currency] += e.amount_minor if e.direction == D else -e.amount_minor
        for currency, amount in sorted(net.items()):
            target = 0 if currency == "USD" else 4
            if amount > 0:
                entries.append(entry(model.name(target + (balance_choice % 2)), C, amount, currency))
            elif amount < 0:
                entries.append(entry(model.name(target), D, -amount, currency))
    return pb.PostTransactionRequest(entries=entries, description="property")


def _check_invariants(model: Model, stub) -> None:
    for name in list(model.totals):
        balance = stub.GetBalance(pb.GetBalanceRequest(account=name))
        assert [balance.debits_minor, balance.credits_minor] == model.totals[name], name
        if model.spec(name)[3]:
            assert balance.balance_minor >= 0, name
    report = stub.VerifyLedger(pb.VerifyLedgerRequest())
    assert report.ok, list(report.findings)[:5]


def _post(model: Model, stub, key: str, request: pb.PostTransactionRequest) -> None:
    if key in model.answers:
        reply = stub.PostTransaction(request, metadata=md(key))
        assert reply == model.answers[key]
        event("replay of an accepted posting")
        return
    expected = model.predict(_entries_of(request))
    try:
        reply = stub.PostTransaction(request, metadata=md(key))
    except grpc.RpcError as exc:
        assert refusal_info(exc).reason in expected, (expected, refusal_info(exc).reason)
        event(f"post refused {refusal_info(exc).reason}")
        return
    assert not expected, expected
    event("post accepted")
    sums: dict[str, int] = defaultdict(int)
    for e in reply.transaction.entries:  # every accepted transaction balances per currency
        assert e.amount_minor > 0
        sums[e.currency] += e.amount_minor if e.direction == D else -e.amount_minor
    assert not any(sums.values()), sums
    model.apply(_entries_of(request))
    model.answers[key] = reply
    model.posted.append((reply.transaction, False))


def _reverse(model: Model, stub, pick: int) -> None:
    if not model.posted:
        return
    tx, is_reversal = model.posted[pick % len(model.posted)]
    mirror = [(e.account, C if e.direction == D else D, e.amount_minor, e.currency) for e in tx.entries]
    if is_reversal:
        expected = {"CANNOT_REVERSE_REVERSAL"}
    elif tx.id in model.reversed:
        expected = {"ALREADY_REVERSED"}
    else:
        expected = model.stateful(mirror)
    try:
        reply = stub.ReverseTransaction(pb.ReverseTransactionRequest(transaction_id=tx.id), metadata=md())
    except grpc.RpcError as exc:
        assert refusal_info(exc).reason in expected, (expected, refusal_info(exc).reason)
        event(f"reversal refused {refusal_info(exc).reason}")
        return
    assert not expected, expected
    event("reversal accepted")
    assert reply.transaction.reverses_id == tx.id
    model.apply(mirror)
    model.reversed.add(tx.id)
    model.posted.append((reply.transaction, True))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_postings_reversals_and_replays_keep_every_invariant(ledger, ops):
    _, stub = ledger
    model = Model(suffix=uuid.uuid4().hex[:8])
    for op in ops:
        if op[0] == "post":
            key = uuid.uuid4().hex
            request = _build(model, op[1], op[2])
            model.requests.append((key, request))
            _post(model, stub, key, request)
        elif op[0] == "reverse":
            _reverse(model, stub, op[1])
        elif model.requests:
            key, request = model.requests[op[1] % len(model.requests)]
            _post(model, stub, key, request)
        _check_invariants(model, stub)
