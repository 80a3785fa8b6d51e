"""The coalescer's database plumbing: its group statements run on plain autocommit psycopg connections
of its own pool (one per lane, kept between groups), which it closes when the service stops."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from ledger_svc import bootstrap as ledger_bootstrap
from ledger_svc.config import LedgerSettings
from svckit.db import drop_database
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.runtime import start_service
from tests.ledger.ledger_helpers import md, transfer

_GROUP_SESSIONS = (
    "SELECT state, count(*) FROM pg_stat_activity "
    "WHERE datname = %s AND query LIKE '%%FROM ledger_post_batch(%%' GROUP BY state"
)


async def test_groups_share_one_plain_autocommit_session_per_lane_closed_on_stop(infra):
    name = f"{infra.prefix}_ledger_{uuid.uuid4().hex[:8]}"
    url = infra.database_url_for(name)
    handle = await start_service(
        infra.settings(LedgerSettings, database_name=name, coalesce_postings=True, coalesce_max_in_flight=1),
        ledger_bootstrap.MIGRATIONS,
        ledger_bootstrap.build,
    )
    try:
        async with infra.channel(handle.address) as channel:
            stub = pb_grpc.LedgerServiceStub(channel)
            for burst in range(5):  # several groups, one after the other
                replies = await asyncio.gather(
                    *(
                        stub.PostTransaction(transfer("asset:conn:a", f"revenue:conn:r{i}", 1 + burst), metadata=md())
                        for i in range(8)
                    )
                )  # fmt: skip
                assert all(r.transaction.id for r in replies)
        with psycopg.connect(infra.database_url, autocommit=True) as admin:
            # One lane: every group ran on the same session, which sits idle (not in a transaction:
            # each group's statement committed on its own).
            assert dict(admin.execute(_GROUP_SESSIONS, (name,)).fetchall()) == {"idle": 1}
    finally:
        await handle.stop(0.1)
    with psycopg.connect(infra.database_url, autocommit=True) as admin:
        # Stopping the service closed the coalescer's pool along with the others. A closed session's
        # backend leaves pg_stat_activity a moment after the client hangs up, so give it that moment.
        for _ in range(100):
            if admin.execute(_GROUP_SESSIONS, (name,)).fetchall() == []:
                break
            await asyncio.sleep(0.05)
        assert admin.execute(_GROUP_SESSIONS, (name,)).fetchall() == []
    drop_database(url)
