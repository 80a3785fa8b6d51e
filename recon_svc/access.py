"""Who may call reconciliation (docs/security.md shows this table; a test keeps the two equal)."""

from __future__ import annotations

from svckit.access import allow
from svckit.gen.recon.v1 import recon_service_pb2

ACCESS = allow(
    recon_service_pb2.DESCRIPTOR.services_by_name["ReconService"],
    {
        "ListReconciliationRuns": ("gateway", "operator"),
        # Reads both books and records the comparison; moves no money.
        "CompareWalletsWithLedger": ("gateway", "operator"),
    },
)
