"""Who may call the wallets (docs/security.md shows this table; a test keeps the two equal)."""

from __future__ import annotations

from svckit.access import allow
from svckit.gen.wallet.v1 import wallet_service_pb2

READERS = ("gateway", "payment", "recon", "operator")

ACCESS = allow(
    wallet_service_pb2.DESCRIPTOR.services_by_name["WalletService"],
    {
        "GetWallet": READERS,
        "BatchGetWallets": READERS,
        "ListWallets": READERS,
        "ListMovements": READERS,
        "GetReservation": READERS,
        # Money moves only through the payment service: settlement and refunds (Credit, Debit,
        # ApplyBatch) and pay-outs (Reserve, Release, CaptureReservation).
        "Credit": ("payment",),
        "Debit": ("payment",),
        "ApplyBatch": ("payment",),
        "Reserve": ("payment",),
        "Release": ("payment",),
        "CaptureReservation": ("payment",),
    },
)
