"""gRPC transport of recon.v1.ReconService."""

from __future__ import annotations

from typing import cast

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.books import LedgerReader, WalletReader
from recon_svc.service import ReconService, Run, RunState, compare_wallets_with_ledger
from recon_svc.settlement.grpc import SettlementRpcs
from svckit.gen.recon.v1 import recon_service_pb2 as pb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as pb_grpc
from svckit.idempotency import IdempotencyStore
from svckit.protobuf import timestamp

# The stubs type Value() as a plain int; each number is one of the enum's.
STATE_TO_PB = {
    s: cast(pb.ReconciliationRunState, pb.ReconciliationRunState.Value(f"RECONCILIATION_RUN_STATE_{s.value}"))
    for s in RunState
}


def run_to_pb(run: Run) -> pb.ReconciliationRun:
    return pb.ReconciliationRun(
        run_id=run.run_id,
        state=STATE_TO_PB[run.state],
        interval_start_time=timestamp(run.interval_start),
        interval_end_time=timestamp(run.interval_end),
        create_time=timestamp(run.created_at),
    )


class ReconServicer(SettlementRpcs, pb_grpc.ReconServiceServicer):
    def __init__(
        self,
        service: ReconService,
        engine: AsyncEngine,
        idempotency: IdempotencyStore,
        wallets: WalletReader,
        ledger: LedgerReader,
    ) -> None:
        self._service = service
        self._engine = engine
        self._idempotency = idempotency
        self._wallets = wallets
        self._ledger = ledger

    async def CompareWalletsWithLedger(
        self, request: pb.CompareWalletsWithLedgerRequest, context: grpc.aio.ServicerContext
    ):
        report = await compare_wallets_with_ledger(self._wallets, self._ledger, request.seller_id)
        return pb.CompareWalletsWithLedgerResponse(
            ok=report.ok,
            wallets_checked=report.wallets_checked,
            accounts_checked=report.accounts_checked,
            mismatches=[
                pb.WalletLedgerMismatch(
                    seller_id=m.seller_id,
                    currency=m.currency,
                    kind=cast(
                        pb.WalletLedgerMismatchKind,
                        pb.WalletLedgerMismatchKind.Value(f"WALLET_LEDGER_MISMATCH_KIND_{m.kind.value}"),
                    ),
                    wallet_minor=m.wallet_minor,
                    ledger_minor=m.ledger_minor,
                )
                for m in report.mismatches
            ],
        )

    async def ListReconciliationRuns(
        self, request: pb.ListReconciliationRunsRequest, context: grpc.aio.ServicerContext
    ):
        async with self._engine.connect() as conn:
            runs, token = await self._service.list_runs(conn, request.page_size, request.page_token)
        return pb.ListReconciliationRunsResponse(runs=[run_to_pb(r) for r in runs], next_page_token=token)
