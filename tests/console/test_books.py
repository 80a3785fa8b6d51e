"""The console's books over HTTP: accounts with balances found by prefix, an account's entries linked
to their transactions, a transaction with its balanced entries, and the two checks on demand
(VerifyLedger, wallets against the ledger), each audited."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest_asyncio

from tests.console.sellers_helpers import fund, registered_seller


@pytest_asyncio.fixture
async def admin_api(gw, admin_key):
    async with gw.client(admin_key) as http:
        yield http


async def test_accounts_entries_transactions_and_the_checks(operator, client, admin_api, shared_psp):
    seller = await registered_seller(admin_api, shared_psp)
    await fund(client, admin_api, seller, "25.00")
    available = (await admin_api.get(f"/v1/sellers/{seller}/wallet", params={"currency": "USD"})).json()[
        "available"
    ]
    payable = f"liability:seller_payable:{seller}/USD"

    books = await operator.http.get(
        "/console/books", params={"prefix": f"liability:seller_payable:{seller}/"}
    )
    assert books.status_code == 200, books.text
    assert f">{payable}</a>" in books.text and f'<td class="num">{available} USD</td>' in books.text
    assert books.text.count("/console/books/account?name=") == 1

    account = await operator.http.get("/console/books/account", params={"name": payable})
    assert account.status_code == 200 and f"<strong>{available} USD</strong>" in account.text
    tx_ids = re.findall(r'href="/console/books/transactions/(\d+)"', account.text)
    assert len(tx_ids) == 1 and "credit" in account.text

    tx = await operator.http.get(f"/console/books/transactions/{tx_ids[0]}")
    assert tx.status_code == 200 and f"Transaction {tx_ids[0]}" in tx.text
    assert f'href="/console/books/account?name={quote(payable, safe="")}"' in tx.text
    debits = re.findall(r'<td class="num">([\d.]+) USD</td><td class="num"></td>', tx.text)
    credits = re.findall(r'<td class="num"></td><td class="num">([\d.]+) USD</td>', tx.text)
    assert debits and credits and sum(map(float, debits)) == sum(map(float, credits))  # balanced

    csrf = (await operator.http.get("/console/books")).text.split('name="csrf" value="')[1].split('"')[0]
    verified = await operator.http.post("/console/books/verify", data={"csrf": csrf})
    assert verified.status_code == 200 and re.search(
        r"\d+ transactions and \d+ accounts checked", verified.text
    )
    compared = await operator.http.post("/console/books/compare", data={"csrf": csrf, "seller": seller})
    assert compared.status_code == 200 and "1 wallets and 1 seller_payable accounts compared: they agree" in (
        compared.text
    )
    assert (await operator.http.post("/console/books/verify", data={"csrf": "x"})).status_code == 403
    bad = await operator.http.post("/console/books/compare", data={"csrf": csrf, "seller": "no such!"})
    assert bad.status_code == 400
    audit = (await operator.http.get("/console/audit", params={"target": "ledger"})).text
    assert f"({operator.key_id})</td><td>books.verify_ledger" in audit
    assert (await operator.http.get("/console/audit", params={"target": seller})).text.count(
        "books.compare_wallets"
    ) == 1

    for path in ("/console/books/transactions/999999999999", "/console/books/transactions/abc"):
        assert (await operator.http.get(path)).status_code == 404
    missing = await operator.http.get("/console/books/account", params={"name": "asset:nothing:here/USD"})
    assert missing.status_code == 404
