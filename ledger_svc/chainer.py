"""The chainer: links committed transactions into the hash chain, many per database transaction.

Postings only queue their transaction (``chain_queue``), so they never wait on one global lock and
their commits share WAL flushes. The chain is serialized here instead, off the posting path; a
transaction is linked within about one interval of its commit. Several replicas may each run a
chainer: the chain head's row lock makes their passes take turns.
"""

from __future__ import annotations

import asyncio

from ledger_svc.service import LedgerService
from ledger_svc.uow import LedgerUnitOfWork
from svckit.logging import get_logger

log = get_logger(__name__)


IDLE_PAUSE_FACTOR = 20
"""An idle chainer's pause grows, doubling per empty pass, up to this many intervals: a ledger with no
postings then asks a few times a second instead of twenty, and the first posting after a quiet spell
waits at most that long for its link (nothing reads the chain without linking first: VerifyLedger
links what is queued)."""


async def chain_forever(
    service: LedgerService, uow: LedgerUnitOfWork, interval_seconds: float, batch: int
) -> None:
    pause = interval_seconds
    while True:
        linked = 0
        try:
            # One statement = one transaction: no BEGIN and COMMIT round trips per pass.
            linked = await service.link_pending(uow, batch)
        except Exception:
            log.exception("chainer pass failed; will retry")
        if linked >= batch:  # a full batch means more are waiting: go again at once
            continue
        pause = interval_seconds if linked else min(pause * 2, interval_seconds * IDLE_PAUSE_FACTOR)
        await asyncio.sleep(pause)
