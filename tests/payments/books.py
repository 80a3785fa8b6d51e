"""Reading the books in settlement tests: balances through the ledger's API, and the entries of
one test's own transactions (the shared accounts also move with other tests' orders)."""

from __future__ import annotations

import grpc
import sqlalchemy as sa

from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc


async def balance(channels, account: str) -> int:
    """The account's balance; 0 before its first posting (the account does not exist yet)."""
    stub = lpb_grpc.LedgerServiceStub(channels["ledger"])
    try:
        return (await stub.GetBalance(lpb.GetBalanceRequest(account=account))).balance_minor
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return 0


async def posted_for(services, refs: list[str]) -> dict[str, int]:
    """Signed (debit-positive) totals per account of the ledger transactions of these references only."""
    async with services["ledger"].engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT a.name, sum(CASE e.direction WHEN 'D' THEN e.amount ELSE -e.amount END)"
                " FROM entries e JOIN transactions t ON t.id = e.transaction_id"
                " JOIN accounts a ON a.id = e.account_id"
                " WHERE t.external_ref = ANY(:refs) GROUP BY a.name"
            ),
            {"refs": refs},
        )
        return {name: int(total) for name, total in rows}
