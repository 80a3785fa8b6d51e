"""Who may call the ledger (docs/security.md shows this table; a test keeps the two equal)."""

from __future__ import annotations

from svckit.access import allow
from svckit.gen.ledger.v1 import ledger_service_pb2

READERS = ("gateway", "payment", "recon", "operator")

ACCESS = allow(
    ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"],
    {
        # Accounts: opened and closed by operators, directly or through the gateway's admin routes.
        "CreateAccount": ("gateway", "operator"),
        "CloseAccount": ("gateway", "operator"),
        "GetAccount": READERS,
        "ListAccounts": READERS,
        # Money moves only through the payment service (orders, refunds, pay-outs) and, for the PSP's
        # settlement of captured money (bank, fees, psp_receivable), through reconciliation.
        "PostTransaction": ("payment", "recon"),
        # recon: a chunk of settlement rows booked in one call (one transaction per currency and account its
        # gross goes to).
        "PostTransactions": ("payment", "recon"),
        "ReverseTransaction": ("payment",),
        "GetTransaction": READERS,
        # An order's or refund's transactions, for the console's order page; recon reads a day's transactions
        # (a post-time window) and a record's for its per-record checks (reads only).
        "ListTransactions": ("gateway", "recon", "operator"),
        "GetBalance": READERS,
        "GetBalances": READERS,
        "ListEntries": READERS,
        "VerifyLedger": READERS,
    },
)
