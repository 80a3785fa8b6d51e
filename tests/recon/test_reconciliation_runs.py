"""Every wallet-ledger comparison is recorded as a reconciliation run: started RUNNING, then SUCCEEDED
with its outcome and counts, or FAILED with the reason of the error that stopped it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from recon_svc.books import PayableAccount, WalletTotal
from recon_svc.service import ReconService, RunKind, RunState
from recon_svc.uow import ReconUnitOfWork
from svckit.errors import Unavailable
from svckit.gen.recon.v1 import recon_service_pb2 as rpb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as rpb_grpc
from svckit.grpc_errors import error_info
from tests.recon.test_wallet_ledger_check import _compare, _credit, _post


async def _runs(channels) -> list[rpb.ReconciliationRun]:
    stub = rpb_grpc.ReconServiceStub(channels["recon"])
    runs, token = [], ""
    while True:
        page = await stub.ListReconciliationRuns(
            rpb.ListReconciliationRunsRequest(page_size=100, page_token=token)
        )
        runs.extend(page.runs)
        if not page.next_page_token:
            return runs
        token = page.next_page_token


async def _run(channels, run_id: str) -> rpb.ReconciliationRun:
    (run,) = [r for r in await _runs(channels) if r.run_id == run_id]
    return run


async def test_a_comparison_is_recorded_as_a_finished_run_with_its_counts(channels, operator_channels):
    seller = f"rr-{uuid.uuid4().hex[:8]}"
    await _credit(channels, seller, 300)
    await _post(channels, seller, 300)
    report = await _compare(operator_channels, seller)
    assert report.ok and report.run_id.startswith("rcn_")
    run = await _run(operator_channels, report.run_id)
    assert run.kind == rpb.RECONCILIATION_RUN_KIND_WALLET_LEDGER
    assert run.state == rpb.RECONCILIATION_RUN_STATE_SUCCEEDED
    assert (run.ok, run.wallets_checked, run.accounts_checked, run.mismatch_count) == (True, 1, 1, 0)
    assert run.failure_reason == ""
    assert run.HasField("finish_time") and run.finish_time.ToDatetime() >= run.create_time.ToDatetime()
    assert not run.HasField("interval_start_time") and not run.HasField("interval_end_time")


async def test_a_run_that_finds_differences_says_how_many(channels, operator_channels):
    seller = f"rr-{uuid.uuid4().hex[:8]}"
    await _credit(channels, seller, 500)
    await _post(channels, seller, 499)
    await _credit(channels, seller, 70, "EUR")  # no ledger account in EUR
    report = await _compare(operator_channels, seller)
    assert not report.ok and len(report.mismatches) == 2
    run = await _run(operator_channels, report.run_id)
    assert run.state == rpb.RECONCILIATION_RUN_STATE_SUCCEEDED
    assert (run.ok, run.wallets_checked, run.accounts_checked, run.mismatch_count) == (False, 2, 1, 2)


async def test_a_comparison_the_books_refuse_is_recorded_as_failed_with_the_reason(operator_channels):
    before = {r.run_id for r in await _runs(operator_channels)}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _compare(operator_channels, "not a seller id!")
    assert error_info(err.value).reason == "INVALID_SELLER_ID"
    new = [r for r in await _runs(operator_channels) if r.run_id not in before]
    failed = [r for r in new if r.failure_reason == "INVALID_SELLER_ID"]
    assert failed, new
    run = failed[0]
    assert run.state == rpb.RECONCILIATION_RUN_STATE_FAILED and run.HasField("finish_time")
    assert run.kind == rpb.RECONCILIATION_RUN_KIND_WALLET_LEDGER


class _Wallets:
    async def wallets(self, seller_id: str) -> AsyncIterator[WalletTotal]:
        yield WalletTotal(seller_id, "USD", 10)


class _UnreachableLedger:
    async def seller_payables(self, seller_id: str) -> AsyncIterator[PayableAccount]:
        raise Unavailable("UPSTREAM_UNAVAILABLE", "the ledger did not answer")
        yield  # an async generator, like the real reader


class _Ledger:
    async def seller_payables(self, seller_id: str) -> AsyncIterator[PayableAccount]:
        yield PayableAccount(seller_id, "USD", 10)


async def test_the_service_records_runs_through_its_unit_of_work(services):
    """The service alone, with fake books: a run goes RUNNING -> SUCCEEDED, or -> FAILED with the
    reason of the error, which is raised to the caller."""
    uow = ReconUnitOfWork(services["recon"].engine)
    seller = f"rr-{uuid.uuid4().hex[:8]}"
    run, report = await ReconService(_Wallets(), _Ledger()).compare_wallets_with_ledger(uow, seller)
    assert report.ok and run.kind is RunKind.WALLET_LEDGER and run.state is RunState.SUCCEEDED
    assert (run.wallets_checked, run.accounts_checked, run.mismatch_count) == (1, 1, 0)
    assert run.finished_at is not None and run.finished_at >= run.created_at

    with pytest.raises(Unavailable):
        await ReconService(_Wallets(), _UnreachableLedger()).compare_wallets_with_ledger(uow, seller)
    runs, _ = await ReconService(_Wallets(), _Ledger()).list_runs(uow, 100, "")
    failed = [r for r in runs if r.failure_reason == "UPSTREAM_UNAVAILABLE"]
    assert failed and failed[0].state is RunState.FAILED and failed[0].finished_at is not None
