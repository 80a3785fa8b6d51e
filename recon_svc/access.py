"""Who may call reconciliation (docs/security.md shows this table; a test keeps the two equal)."""

from __future__ import annotations

from svckit.access import allow
from svckit.gen.recon.v1 import recon_service_pb2

ACCESS = allow(
    recon_service_pb2.DESCRIPTOR.services_by_name["ReconService"],
    {
        "ListReconciliationRuns": ("gateway", "operator"),
        # Reads both books and records the comparison; moves no money. The gateway calls it for the
        # console's Books page (an operator's on-demand check, audited there).
        "CompareWalletsWithLedger": ("gateway", "operator"),
        # Settlement runs and the exceptions queue: people, directly or through the gateway's admin routes
        # (/v1/admin/reconciliation/...), which call exactly the RPCs the gateway is listed for.
        "StartSettlementRun": ("gateway", "operator"),
        "GetSettlementRun": ("gateway", "operator"),
        "ListMismatches": ("gateway", "operator"),
        # Assign and annotate: also the gateway, for its operator console (/console/reconciliation).
        "AssignMismatch": ("gateway", "operator"),
        "AnnotateMismatch": ("gateway", "operator"),
        "ResolveMismatches": ("gateway", "operator"),
        "GetMismatch": ("gateway", "operator"),
    },
)
