"""The console's books: ledger accounts with their balances, an account's entries, a transaction with
its entries, and two checks on demand: ``VerifyLedger`` (the ledger's own invariants and hash chain)
and recon's ``CompareWalletsWithLedger`` (every wallet against its seller_payable account).

Transport only: ledger reads (``ListAccounts``, ``GetAccount``, ``GetBalance``, ``ListEntries``,
``GetTransaction``, ``VerifyLedger``) and recon's comparison. The checks move no money, so they need no
reason, but each is a POST with the CSRF token and is audited with its result (the comparison is
recorded by recon as a run too).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.console import web
from gateway.console.sellers import audited, new_action_id, refused_page, rpc, seller_ok
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.recon.v1 import recon_service_pb2 as rpb

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
_MAX_FINDINGS = 100


@dataclass(frozen=True)
class _AccountRow:
    name: str
    type: str
    currency: str
    state: str
    balance: str
    debits: str
    credits: str


def _enum(enum_type: Any, value: int, prefix: str) -> str:
    return str(enum_type.Name(value)).removeprefix(prefix).lower()


def _account_row(a: lpb.Account, b: lpb.GetBalanceResponse) -> _AccountRow:
    return _AccountRow(
        name=a.name,
        type=_enum(lpb.AccountType, a.type, "ACCOUNT_TYPE_"),
        currency=a.currency,
        state=_enum(lpb.AccountState, a.state, "ACCOUNT_STATE_"),
        balance=web.money_text(b.balance_minor, a.currency),
        debits=web.money_text(b.debits_minor, a.currency),
        credits=web.money_text(b.credits_minor, a.currency),
    )


def _account_url(name: str) -> str:
    return "/console/books/account?" + urlencode({"name": name})


@router.get("/console/books")
async def books(request: Request) -> Response:
    """Accounts by name (optionally those starting with a prefix), 25 a page, with their balances."""
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    prefix = request.query_params.get("prefix", "").strip()[:200]
    page_token = request.query_params.get("page_token", "")[:500]
    ledger = request.app.state.upstreams.ledger
    rows: list[_AccountRow] = []
    error = ""
    next_url = ""
    try:
        reply = await rpc(
            request,
            ledger.ListAccounts,
            lpb.ListAccountsRequest(name_prefix=prefix, page_size=PAGE_SIZE, page_token=page_token),
        )
        balances = await asyncio.gather(
            *(rpc(request, ledger.GetBalance, lpb.GetBalanceRequest(account=a.name)) for a in reply.accounts)
        )
        rows = [_account_row(a, b) for a, b in zip(reply.accounts, balances, strict=True)]
        if reply.next_page_token:
            query = ({"prefix": prefix} if prefix else {}) | {"page_token": reply.next_page_token}
            next_url = "/console/books?" + urlencode(query)
    except grpc.aio.AioRpcError as exc:
        error = web.rpc_error_text(exc)[1]
    return web.render_page(
        "books_accounts.html", 400 if error else 200, session, title="Books", accounts=rows, prefix=prefix,
        error=error, next_url=next_url, account_url=_account_url,
    )  # fmt: skip


@router.get("/console/books/account")
async def account(request: Request) -> Response:
    """One account: its balance and its entries, oldest first, 25 a page, each linked to its
    transaction."""
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    name = request.query_params.get("name", "")[:300]
    page_token = request.query_params.get("page_token", "")[:500]
    ledger = request.app.state.upstreams.ledger
    try:
        got, balance, entries = await asyncio.gather(
            rpc(request, ledger.GetAccount, lpb.GetAccountRequest(name=name)),
            rpc(request, ledger.GetBalance, lpb.GetBalanceRequest(account=name)),
            rpc(
                request,
                ledger.ListEntries,
                lpb.ListEntriesRequest(account=name, page_size=PAGE_SIZE, page_token=page_token),
            ),
        )
    except grpc.aio.AioRpcError as exc:
        return refused_page(exc, "Cannot show this account", session)
    rows = [
        {
            "id": e.entry_id,
            "transaction_id": e.transaction_id,
            "direction": _enum(lpb.Direction, e.direction, "DIRECTION_"),
            "amount": web.money_text(e.amount_minor, e.currency),
            "at": web.when_text(e.post_time),
        }
        for e in entries.entries
    ]
    next_url = (
        "/console/books/account?" + urlencode({"name": name, "page_token": entries.next_page_token})
        if entries.next_page_token
        else ""
    )
    return web.render_page(
        "books_account.html", 200, session, title=f"Account {name}", account=_account_row(got.account, balance),
        entries=rows, next_url=next_url, seller=_seller_of(name),
    )  # fmt: skip


def _seller_of(name: str) -> str:
    """The seller a seller_payable or seller_receivable account belongs to; empty for others."""
    for prefix in ("liability:seller_payable:", "asset:seller_receivable:"):
        if name.startswith(prefix):
            seller = name.removeprefix(prefix).rsplit("/", 1)[0]
            return seller if seller_ok(seller) else ""
    return ""


@router.get("/console/books/transactions/{transaction_id}")
async def transaction(transaction_id: str, request: Request) -> Response:
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    if not transaction_id.isdigit() or len(transaction_id) > 18:
        return web.message_page(404, "No such transaction", "A transaction id is a number.", session)
    try:
        reply = await rpc(
            request,
            request.app.state.upstreams.ledger.GetTransaction,
            lpb.GetTransactionRequest(transaction_id=int(transaction_id)),
        )
    except grpc.aio.AioRpcError as exc:
        return refused_page(exc, "Cannot show this transaction", session)
    t = reply.transaction
    entries = [
        {
            "account": e.account,
            "url": _account_url(e.account),
            "debit": web.money_text(e.amount_minor, e.currency) if e.direction == lpb.DIRECTION_DEBIT else "",
            "credit": web.money_text(e.amount_minor, e.currency)
            if e.direction == lpb.DIRECTION_CREDIT
            else "",
        }
        for e in t.entries
    ]
    return web.render_page(
        "books_transaction.html", 200, session, title=f"Transaction {t.id}", t=t, entries=entries,
        posted=web.when_text(t.post_time), metadata=sorted(t.metadata.items()), hash=t.hash.hex(),
        previous_hash=t.previous_hash.hex(),
    )  # fmt: skip


@router.post("/console/books/verify")
async def verify(request: Request) -> Response:
    """``VerifyLedger`` on demand; the result is shown and audited."""
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, _ = acting
    outcome = await audited(
        request,
        session,
        "books.verify_ledger",
        "ledger",
        "",
        rpc(
            request,
            request.app.state.upstreams.ledger.VerifyLedger,
            lpb.VerifyLedgerRequest(max_findings=_MAX_FINDINGS),
        ),
        f"console-verify-{new_action_id()}",
        describe=lambda r: "clean" if r.ok else f"{len(r.findings)}{'+' if r.truncated else ''} findings",
    )
    if outcome.error:
        return web.message_page(outcome.status, "The ledger could not be verified", outcome.error, session)
    r = outcome.reply
    findings = [
        {
            "kind": _enum(lpb.FindingKind, f.kind, "FINDING_KIND_"),
            "transaction_id": f.transaction_id,
            "account": f.account,
            "url": _account_url(f.account) if f.account else "",
            "expected": f.expected,
            "actual": f.actual,
            "detail": f.detail,
        }
        for f in r.findings
    ]
    return web.render_page("books_verify.html", 200, session, title="Ledger verified", r=r, findings=findings)


@router.post("/console/books/compare")
async def compare(request: Request) -> Response:
    """Recon's ``CompareWalletsWithLedger`` on demand (every seller, or one); shown and audited."""
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    seller = form.get("seller", "").strip()
    if seller and not seller_ok(seller):
        return web.message_page(400, "Not a seller account", "Give a seller account or none.", session)
    outcome = await audited(
        request,
        session,
        "books.compare_wallets",
        seller or "all sellers",
        "",
        rpc(
            request,
            request.app.state.upstreams.recon.CompareWalletsWithLedger,
            rpb.CompareWalletsWithLedgerRequest(seller_id=seller),
        ),
        f"console-compare-{new_action_id()}",
        describe=lambda r: f"run {r.run_id}: " + ("agree" if r.ok else f"{len(r.mismatches)} mismatches"),
    )
    if outcome.error:
        return web.message_page(outcome.status, "The books could not be compared", outcome.error, session)
    r = outcome.reply
    mismatches = [
        {
            "seller": m.seller_id,
            "currency": m.currency,
            "kind": _enum(rpb.WalletLedgerMismatchKind, m.kind, "WALLET_LEDGER_MISMATCH_KIND_"),
            "wallet": web.money_text(m.wallet_minor, m.currency),
            "ledger": web.money_text(m.ledger_minor, m.currency),
        }
        for m in r.mismatches
    ]
    return web.render_page(
        "books_compare.html", 200, session, title="Wallets against the ledger", r=r, seller=seller,
        mismatches=mismatches,
    )  # fmt: skip
