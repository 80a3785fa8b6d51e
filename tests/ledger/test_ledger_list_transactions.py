"""ListTransactions: the transactions of one external reference (an order's or a refund's settlement
and any reversal under the same reference), oldest first with their entries, paged; bad input refused."""

from __future__ import annotations

import grpc
import pytest

from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.ledger.ledger_helpers import C, D, md, transfer, uid


async def test_a_references_transactions_oldest_first_with_entries_paged(stub, admin):
    ref, other = f"po_{uid()}", f"po_{uid()}"
    cash, sales = f"asset:cash:l{uid()}", f"revenue:sales:l{uid()}"
    first = (
        await stub.PostTransaction(transfer(cash, sales, 700, external_ref=ref), metadata=md())
    ).transaction
    await stub.PostTransaction(transfer(cash, sales, 5, external_ref=other), metadata=md())
    second = (
        await stub.PostTransaction(transfer(sales, cash, 200, external_ref=ref), metadata=md())
    ).transaction
    undo = (
        await stub.ReverseTransaction(
            pb.ReverseTransactionRequest(transaction_id=first.id, external_ref=ref), metadata=md()
        )
    ).transaction

    page = await admin.ListTransactions(pb.ListTransactionsRequest(external_ref=ref, page_size=2))
    assert [t.id for t in page.transactions] == [first.id, second.id] and page.next_page_token
    assert [(e.account, e.direction, e.amount_minor, e.currency) for e in page.transactions[0].entries] == [
        (cash, D, 700, "USD"),
        (sales, C, 700, "USD"),
    ]
    assert all(t.external_ref == ref for t in page.transactions)
    rest = await admin.ListTransactions(
        pb.ListTransactionsRequest(external_ref=ref, page_size=2, page_token=page.next_page_token)
    )
    assert [(t.id, t.reverses_id) for t in rest.transactions] == [(undo.id, first.id)]
    assert rest.next_page_token == ""
    whole = await admin.ListTransactions(pb.ListTransactionsRequest(external_ref=ref))  # default page
    assert [t.id for t in whole.transactions] == [first.id, second.id, undo.id]
    none = await admin.ListTransactions(pb.ListTransactionsRequest(external_ref=f"po_{uid()}"))
    assert list(none.transactions) == [] and none.next_page_token == ""


@pytest.mark.parametrize(
    ("request_", "reason", "field"),
    [
        (pb.ListTransactionsRequest(), "MISSING_FIELD", "external_ref"),
        (pb.ListTransactionsRequest(external_ref="po_x", page_size=101), "INVALID_PAGE_SIZE", "page_size"),
        (pb.ListTransactionsRequest(external_ref="po_x", page_size=-1), "INVALID_PAGE_SIZE", "page_size"),
        (
            pb.ListTransactionsRequest(external_ref="po_x", page_token="not-a-token"),
            "INVALID_PAGE_TOKEN",
            "page_token",
        ),
        (pb.ListTransactionsRequest(external_ref="x" * 257), "TEXT_TOO_LONG", "external_ref"),
    ],
)
async def test_bad_listing_requests_are_refused_with_their_reason(admin, request_, reason, field):
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.ListTransactions(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert info.reason == reason and field in caught.value.details() + str(info)


async def test_a_token_of_another_reference_is_refused(stub, admin):
    ref = f"po_{uid()}"
    for amount in (1, 2):
        await stub.PostTransaction(
            transfer(f"asset:cash:l{uid()}", f"revenue:sales:l{uid()}", amount, external_ref=ref),
            metadata=md(),
        )
    token = (
        await admin.ListTransactions(pb.ListTransactionsRequest(external_ref=ref, page_size=1))
    ).next_page_token
    assert token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.ListTransactions(pb.ListTransactionsRequest(external_ref=f"po_{uid()}", page_token=token))
    assert error_info(caught.value).reason == "INVALID_PAGE_TOKEN"


async def test_the_payment_service_may_not_list_transactions(stub):
    """Only the gateway (its console) and operators read a reference's transactions."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListTransactions(pb.ListTransactionsRequest(external_ref=f"po_{uid()}"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
