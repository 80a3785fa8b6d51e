"""PostTransaction, accounts on first use, refusals, idempotency, balances and entries (shared service)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp

from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.ledger.ledger_helpers import C, D, entry, md, transfer, uid


async def _refused(call) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


async def _balance(stub, account: str, **kw) -> pb.GetBalanceResponse:
    return await stub.GetBalance(pb.GetBalanceRequest(account=account, **kw))


async def test_order_success_posting_creates_accounts_on_first_use_and_moves_balances(stub):
    seller, psp = f"liability:seller_payable:s{uid()}", f"asset:psp_receivable:p{uid()}"
    revenue = f"revenue:commission_{uid()}"
    request = pb.PostTransactionRequest(
        entries=[entry(psp, D, 10_000), entry(seller, C, 9_000), entry(revenue, C, 1_000)],
        description="order po_1 succeeded",
        external_ref="po_1",
        metadata={"payment_order_id": "po_1", "seller": "s1"},
    )
    tx = (await stub.PostTransaction(request, metadata=md())).transaction
    assert tx.id > 0
    assert [(e.account, e.direction, e.amount_minor) for e in tx.entries] == [
        (psp, D, 10_000),
        (seller, C, 9_000),
        (revenue, C, 1_000),
    ]
    assert tx.metadata == {"payment_order_id": "po_1", "seller": "s1"}

    created = (await stub.GetAccount(pb.GetAccountRequest(name=seller))).account
    assert created.type == pb.ACCOUNT_TYPE_LIABILITY
    assert created.currency == "USD"
    assert created.state == pb.ACCOUNT_STATE_OPEN
    # Seller payables get the non-negative rule on first use (configurable prefix).
    assert created.non_negative
    assert not (await stub.GetAccount(pb.GetAccountRequest(name=revenue))).account.non_negative
    assert (await stub.GetAccount(pb.GetAccountRequest(name=psp))).account.type == pb.ACCOUNT_TYPE_ASSET

    psp_balance = await _balance(stub, psp)
    assert (psp_balance.debits_minor, psp_balance.credits_minor, psp_balance.balance_minor) == (
        10_000,
        0,
        10_000,
    )
    seller_balance = await _balance(stub, seller)
    # Credit-normal: a credit increases the liability's signed balance.
    assert (seller_balance.debits_minor, seller_balance.credits_minor, seller_balance.balance_minor) == (
        0,
        9_000,
        9_000,
    )
    assert seller_balance.last_transaction_id == tx.id

    assert tx.sequence == 0 and not tx.hash  # linked into the chain after commit, by the chainer
    await stub.VerifyLedger(pb.VerifyLedgerRequest())  # links everything queued before it checks
    fetched = (await stub.GetTransaction(pb.GetTransactionRequest(transaction_id=tx.id))).transaction
    assert fetched.sequence > 0
    assert len(fetched.hash) == 32 and len(fetched.previous_hash) == 32
    assert list(fetched.entries) == list(tx.entries)


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([entry("asset:a:x", D, 100)], "TOO_FEW_ENTRIES"),
        ([entry("asset:a:x", D, 100), entry("liability:b:x", C, 99)], "UNBALANCED_TRANSACTION"),
        ([entry("asset:a:x", D, 0), entry("liability:b:x", C, 0)], "AMOUNT_NOT_POSITIVE"),
        ([entry("asset:a:x", D, -5), entry("liability:b:x", C, -5)], "AMOUNT_NOT_POSITIVE"),
        # Balanced per currency is required: 100 USD against 100 EUR does not balance.
        (
            [entry("asset:a:x", D, 100, "USD"), entry("liability:b:x", C, 100, "EUR")],
            "UNBALANCED_TRANSACTION",
        ),
        (
            [
                entry("asset:a:x", D, 100, "USD"),
                entry("asset:a:x", C, 100, "EUR"),
                entry("liability:b:x", C, 100, "USD"),
                entry("liability:b:x", D, 100, "EUR"),
            ],
            "CURRENCY_MISMATCH",
        ),
        ([entry("bogus:a:x", D, 1), entry("liability:b:x", C, 1)], "INVALID_ACCOUNT_TYPE"),
        ([entry("asset", D, 1), entry("liability:b:x", C, 1)], "INVALID_ACCOUNT_NAME"),
        ([entry("asset:a:x", D, 1, "XXQ"), entry("liability:b:x", C, 1, "XXQ")], "UNKNOWN_CURRENCY"),
        (
            [pb.Entry(account="asset:a:x", amount_minor=1, currency="USD"), entry("liability:b:x", C, 1)],
            "INVALID_DIRECTION",
        ),
    ],
)
async def test_malformed_postings_are_invalid_arguments_and_write_nothing(stub, services, entries, reason):
    suffix = uid()
    for e in entries:
        e.account = e.account.replace(":x", f":x{suffix}")
    err = await _refused(stub.PostTransaction(pb.PostTransactionRequest(entries=entries), metadata=md()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err).reason == reason
    async with services["ledger"].engine.connect() as conn:
        created = await conn.scalar(
            sa.text("SELECT count(*) FROM accounts WHERE name LIKE :p"), {"p": f"%{suffix}"}
        )
    assert created == 0


async def test_entry_in_another_currency_than_its_account_is_refused(stub, admin, services):
    eur = f"asset:cash:eur{uid()}"
    await admin.CreateAccount(pb.CreateAccountRequest(name=eur, currency="EUR"), metadata=md())
    other = f"liability:other:n{uid()}"
    err = await _refused(stub.PostTransaction(transfer(eur, other, 100, "USD"), metadata=md()))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err).reason == "CURRENCY_MISMATCH"
    # The unknown account of the refused posting was not created either: refusal changes nothing.
    err = await _refused(stub.GetAccount(pb.GetAccountRequest(name=other)))
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_closed_account_refuses_new_entries_but_keeps_its_balance(stub, admin):
    a, b = f"asset:cash:c{uid()}", f"equity:capital:c{uid()}"
    await stub.PostTransaction(transfer(a, b, 500), metadata=md())
    closed = (await admin.CloseAccount(pb.CloseAccountRequest(name=a), metadata=md())).account
    assert closed.state == pb.ACCOUNT_STATE_CLOSED
    assert closed.HasField("close_time")
    err = await _refused(stub.PostTransaction(transfer(a, b, 1), metadata=md()))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(err).reason == "ACCOUNT_CLOSED"
    assert (await _balance(stub, a)).balance_minor == 500
    assert (await _balance(stub, b)).balance_minor == 500


async def test_non_negative_account_refuses_an_overdraft_and_changes_nothing(stub):
    seller, bank = f"liability:seller_payable:o{uid()}", f"asset:bank:o{uid()}"
    await stub.PostTransaction(transfer(bank, seller, 1_000), metadata=md())
    # Paying the seller 1,001 would leave the payable at -1.
    err = await _refused(stub.PostTransaction(transfer(seller, bank, 1_001), metadata=md()))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(err).reason == "INSUFFICIENT_BALANCE"
    assert (await _balance(stub, seller)).balance_minor == 1_000
    assert (await _balance(stub, bank)).balance_minor == 1_000
    await stub.PostTransaction(transfer(seller, bank, 1_000), metadata=md())
    assert (await _balance(stub, seller)).balance_minor == 0


async def test_explicit_non_negative_asset_account(stub, admin):
    wallet = f"asset:float:w{uid()}"
    await admin.CreateAccount(
        pb.CreateAccountRequest(name=wallet, currency="EUR", non_negative=True), metadata=md()
    )
    err = await _refused(
        stub.PostTransaction(transfer(f"expense:x:{uid()}", wallet, 1, "EUR"), metadata=md())
    )
    assert error_info(err).reason == "INSUFFICIENT_BALANCE"


async def test_replay_returns_the_original_and_other_request_same_key_is_refused(stub):
    a, b = f"asset:cash:r{uid()}", f"revenue:sales:r{uid()}"
    key = uid()
    first_call = stub.PostTransaction(transfer(a, b, 700), metadata=md(key))
    first = await first_call
    second_call = stub.PostTransaction(transfer(a, b, 700), metadata=md(key))
    second = await second_call
    assert second == first
    assert ("idempotent-replayed", "true") in tuple(await second_call.initial_metadata())
    assert (await _balance(stub, a)).debits_minor == 700
    err = await _refused(stub.PostTransaction(transfer(a, b, 701), metadata=md(key)))
    assert error_info(err).reason == "IDEMPOTENCY_KEY_REUSED"


async def test_concurrent_duplicates_post_once(stub):
    a, b = f"asset:cash:d{uid()}", f"revenue:sales:d{uid()}"
    key = uid()

    async def call():
        try:
            return await stub.PostTransaction(transfer(a, b, 5), metadata=md(key))
        except grpc.aio.AioRpcError as exc:
            return exc

    results = await asyncio.gather(*(call() for _ in range(20)))
    ok = [r for r in results if isinstance(r, pb.PostTransactionResponse)]
    assert ok and all(r == ok[0] for r in ok)
    assert all(error_info(r).reason == "IDEMPOTENCY_KEY_IN_USE" for r in results if r not in ok)
    assert (await _balance(stub, a)).debits_minor == 5


async def test_balance_as_of_a_past_instant_and_entries_pages(stub):
    a, b = f"asset:cash:h{uid()}", f"liability:deposits:h{uid()}"
    posted = []
    for amount in (100, 200, 300, 400, 500):
        posted.append((await stub.PostTransaction(transfer(a, b, amount), metadata=md())).transaction)
    as_of = Timestamp()
    as_of.CopyFrom(posted[2].post_time)
    past = await _balance(stub, a, as_of=as_of)
    assert (past.debits_minor, past.balance_minor, past.last_transaction_id) == (600, 600, posted[2].id)
    before = Timestamp()
    before.FromDatetime(datetime(2000, 1, 1, tzinfo=UTC))
    assert (await _balance(stub, a, as_of=before)).balance_minor == 0
    assert (await _balance(stub, b)).balance_minor == 1500

    seen, token = [], ""
    while True:
        page = await stub.ListEntries(pb.ListEntriesRequest(account=b, page_size=2, page_token=token))
        assert len(page.entries) <= 2
        seen.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    assert [e.amount_minor for e in seen] == [100, 200, 300, 400, 500]
    assert all(e.direction == C for e in seen)
    assert [e.transaction_id for e in seen] == [t.id for t in posted]
    err = await _refused(stub.ListEntries(pb.ListEntriesRequest(account=b, page_token="!!")))
    assert error_info(err).reason == "INVALID_PAGE_TOKEN"


async def test_list_accounts_by_prefix_with_pages(stub, admin):
    seller = uid()
    names = sorted(f"liability:seller_payable:{seller}-{i}" for i in range(5))
    for name in names:
        await admin.CreateAccount(pb.CreateAccountRequest(name=name, currency="USD"), metadata=md())
    got, token = [], ""
    while True:
        page = await stub.ListAccounts(
            pb.ListAccountsRequest(
                name_prefix=f"liability:seller_payable:{seller}", page_size=2, page_token=token
            )
        )
        got.extend(a.name for a in page.accounts)
        token = page.next_page_token
        if not token:
            break
    assert got == names


async def test_listing_refuses_an_oversized_page_and_a_token_of_another_listing(stub, admin):
    seller = uid()
    for i in range(3):
        name = f"liability:seller_payable:{seller}-{i}"
        await admin.CreateAccount(pb.CreateAccountRequest(name=name, currency="USD"), metadata=md())
    prefix = f"liability:seller_payable:{seller}"
    err = await _refused(stub.ListAccounts(pb.ListAccountsRequest(name_prefix=prefix, page_size=1001)))
    assert (err.code(), error_info(err).reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_SIZE")
    page = await stub.ListAccounts(pb.ListAccountsRequest(name_prefix=prefix, page_size=1))
    assert page.next_page_token
    for other in (
        pb.ListAccountsRequest(name_prefix=prefix + "-1", page_token=page.next_page_token),
        pb.ListEntriesRequest(account=f"{prefix}-0", page_token=page.next_page_token),
    ):
        call = stub.ListAccounts if isinstance(other, pb.ListAccountsRequest) else stub.ListEntries
        err = await _refused(call(other))
        assert error_info(err).reason == "INVALID_PAGE_TOKEN"


async def test_unknown_account_and_transaction_are_not_found(stub):
    err = await _refused(stub.GetBalance(pb.GetBalanceRequest(account="asset:none:zzz")))
    assert (err.code(), error_info(err).reason) == (grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    err = await _refused(stub.GetTransaction(pb.GetTransactionRequest(transaction_id=10**15)))
    assert (err.code(), error_info(err).reason) == (grpc.StatusCode.NOT_FOUND, "TRANSACTION_NOT_FOUND")


@pytest.mark.parametrize("tx_id", [1, 127, 128, 300, 2**40 + 5])
@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC),  # whole second: no nanos field
        datetime(2026, 11, 21, 12, 0, 0, 1, tzinfo=UTC),
        datetime(2031, 5, 2, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
async def test_database_encoded_answer_equals_the_servicers(services, tx_id, moment):
    """The stored answer of a posting's key is spliced by SQL (ledger_post_response); a replay must
    decode to exactly what the first call answered."""
    template = pb.Transaction(
        entries=[entry("asset:a:b", D, 5), entry("liability:c:d", C, 5)], description="é", metadata={"k": "v"}
    )
    expected = pb.PostTransactionResponse(transaction=template)
    expected.transaction.id = tx_id
    expected.transaction.post_time.FromDatetime(moment)
    async with services["ledger"].engine.connect() as conn:
        stored = await conn.scalar(
            sa.text("SELECT ledger_post_response(:tpl, :id, :at)"),
            {"tpl": template.SerializeToString(), "id": tx_id, "at": moment},
        )
    assert pb.PostTransactionResponse.FromString(bytes(stored)) == expected


async def test_a_running_total_past_int64_is_refused_and_changes_nothing(stub):
    a, b = f"asset:cash:big{uid()}", f"equity:capital:big{uid()}"
    biggest = 2**63 - 1
    await stub.PostTransaction(transfer(a, b, biggest), metadata=md())
    err = await _refused(stub.PostTransaction(transfer(a, b, 1), metadata=md()))
    assert (err.code(), error_info(err).reason) == (grpc.StatusCode.FAILED_PRECONDITION, "BALANCE_OVERFLOW")
    assert (await _balance(stub, a)).debits_minor == biggest
