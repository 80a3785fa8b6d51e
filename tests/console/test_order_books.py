"""An order's books on its console page: the ledger transactions and wallet movements that settlement
made for the order and for its refunds, each linked; the checkout's risk decision; ledger text shown
escaped."""

from __future__ import annotations

import asyncio
import re
import time
from decimal import Decimal
from urllib.parse import quote

import httpx
from markupsafe import escape

from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from tests.console.conftest import Operator, paid_order
from tests.console.sellers_helpers import settled
from tests.ledger.ledger_helpers import md, transfer, uid

_TX_LINK = re.compile(r'href="/console/books/transactions/(\d+)"')


def _books(page: str) -> str:
    """The page's Books section."""
    start = page.index('<section class="scroll" id="books">')
    return page[start : page.index("</section>", start)]


async def _books_until(operator: Operator, order_id: str, refund_id: str, within: float = 20.0) -> str:
    """The order's Books once the refund is in both books (settlement runs after the PSP's webhook)."""
    deadline = time.monotonic() + within
    while True:
        page = await operator.http.get(f"/console/payments/{order_id}")
        assert page.status_code == 200, page.text
        books = _books(page.text)
        if books.count(f">{refund_id}</td>") >= 2:  # a ledger row and a wallet row
            return books
        assert time.monotonic() < deadline, f"refund {refund_id} never booked: {books}"
        await asyncio.sleep(0.1)


async def test_the_order_page_links_the_orders_and_its_refunds_books(operator, client: httpx.AsyncClient):
    order_id = await paid_order(client, amount="25.00")
    await settled(client, order_id)
    order = (await client.get(f"/v1/payments/{order_id}")).json()
    seller, net = order["seller_account"], str(Decimal(order["amount"]) - Decimal(order["commission"]))

    page = await operator.http.get(f"/console/payments/{order_id}")
    assert page.status_code == 200
    assert "<dt>Risk check</dt><dd>approve</dd>" in page.text
    books = _books(page.text)
    paid_tx = _TX_LINK.findall(books)
    assert len(paid_tx) == 1
    payable = f"liability:seller_payable:{seller}/USD"
    assert f'href="/console/books/account?name={quote(payable, safe="")}"' in books
    assert f'<td class="num"></td><td class="num">{net} USD</td>' in books  # the seller's credit
    seller_url = f'href="/console/sellers/{seller}?currency=USD"'
    assert books.count(seller_url) == 2  # the section's link and the one movement's
    assert re.search(rf"<td>{order_id}</td><td>credit</td><td class=\"num\">{net} USD</td>", books)
    tx_page = await operator.http.get(f"/console/books/transactions/{paid_tx[0]}")
    assert tx_page.status_code == 200 and order_id in tx_page.text  # its external reference

    r = await client.post(
        f"/v1/payments/{order_id}/refunds", json={"amount": "5.00"}, headers={"Idempotency-Key": uid()}
    )
    assert r.status_code in (200, 201, 202), r.text
    refund_id = r.json()["refund"]["refund_id"]
    books = await _books_until(operator, order_id, refund_id)
    tx_ids = _TX_LINK.findall(books)
    assert len(tx_ids) == 2 and tx_ids[0] == paid_tx[0] and int(tx_ids[1]) > int(tx_ids[0])
    assert books.count(seller_url) == 3  # and the refund's movement
    assert re.search(rf"<td>{refund_id}</td><td>debit</td><td class=\"num\">[\d.]+ USD</td>", books)
    refund_tx = await operator.http.get(f"/console/books/transactions/{tx_ids[1]}")
    assert refund_tx.status_code == 200 and refund_id in refund_tx.text


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def test_the_risk_rule_is_shown_and_ledger_text_escaped(operator, client, channels):
    held = await paid_order(client, amount="6000.00")  # held for review by the amount rule
    ledger = lpb_grpc.LedgerServiceStub(channels["ledger"])
    posted = await ledger.PostTransaction(
        transfer(f"asset:test:o{uid()}", f"revenue:test:o{uid()}", 1, description=HOSTILE, external_ref=held),
        metadata=md(),
    )
    page = await operator.http.get(f"/console/payments/{held}")
    assert page.status_code == 200
    assert "<dt>Risk check</dt><dd>review (rule amount_review)</dd>" in page.text
    books = _books(page.text)
    assert f'href="/console/books/transactions/{posted.transaction.id}"' in books
    assert escape(HOSTILE) in books and "<script" not in page.text and "<img" not in page.text
    assert "No wallet movement yet." in books
