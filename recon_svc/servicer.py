"""gRPC transport of recon.v1.ReconService."""

from __future__ import annotations

from typing import cast

import grpc

from recon_svc.service import ReconService, Run, RunKind, RunState
from recon_svc.settlement.grpc import SettlementRpcs
from recon_svc.uow import ReconUnitOfWork
from svckit.gen.recon.v1 import recon_service_pb2 as pb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as pb_grpc
from svckit.protobuf import time_window, timestamp

# The stubs type Value() as a plain int; each number is one of the enum's.
STATE_TO_PB = {
    s: cast(pb.ReconciliationRunState, pb.ReconciliationRunState.Value(f"RECONCILIATION_RUN_STATE_{s.value}"))
    for s in RunState
}
KIND_TO_PB = {
    k: cast(pb.ReconciliationRunKind, pb.ReconciliationRunKind.Value(f"RECONCILIATION_RUN_KIND_{k.value}"))
    for k in RunKind
}


def run_to_pb(run: Run) -> pb.ReconciliationRun:
    msg = pb.ReconciliationRun(
        run_id=run.run_id,
        state=STATE_TO_PB[run.state],
        create_time=timestamp(run.created_at),
        kind=KIND_TO_PB[run.kind],
        ok=run.ok,
        wallets_checked=run.wallets_checked,
        accounts_checked=run.accounts_checked,
        mismatch_count=run.mismatch_count,
        failure_reason=run.failure_reason,
    )
    if run.interval_start is not None:
        msg.interval_start_time.CopyFrom(timestamp(run.interval_start))
    if run.interval_end is not None:
        msg.interval_end_time.CopyFrom(timestamp(run.interval_end))
    if run.finished_at is not None:
        msg.finish_time.CopyFrom(timestamp(run.finished_at))
    return msg


class ReconServicer(SettlementRpcs, pb_grpc.ReconServiceServicer):
    def __init__(
        self,
        service: ReconService,
        uow: ReconUnitOfWork,
    ) -> None:
        self._service = service
        self._uow = uow

    async def CompareWalletsWithLedger(
        self, request: pb.CompareWalletsWithLedgerRequest, context: grpc.aio.ServicerContext
    ):
        window = time_window(request, "interval_start_time", "interval_end_time")
        run, report, records = await self._service.internal_checks(self._uow, request.seller_id, window)
        return pb.CompareWalletsWithLedgerResponse(
            run_id=run.run_id,
            ok=run.ok,
            records_checked=records.records_checked if records else 0,
            book_items_checked=records.book_items_checked if records else 0,
            record_mismatch_count=records.mismatch_count if records else 0,
            record_mismatches=[
                pb.RecordMismatch(
                    code=m.code.value,
                    classification=m.classification.value,
                    our_reference=m.our_reference,
                    currency=m.currency,
                    amount_minor=m.amount_minor,
                    differences=[
                        pb.FieldDifference(field=d.field, ours=d.ours, theirs=d.theirs) for d in m.differences
                    ],
                    mismatch_id=mismatch_id,
                )
                for m, mismatch_id in (records.mismatches if records else [])
            ],
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
        runs, token = await self._service.list_runs(self._uow, request.page_size, request.page_token)
        return pb.ListReconciliationRunsResponse(runs=[run_to_pb(r) for r in runs], next_page_token=token)
