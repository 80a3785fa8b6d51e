"""Idempotency keys on a real mutating RPC (ledger CreateAccount, called as `operator`) against real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa

from svckit.db import DriverPool
from svckit.errors import AlreadyExists, Unprocessable
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import error_info, from_rpc_error
from svckit.idempotency import Claim, IdempotencyStore, fingerprint, lock_id


@pytest_asyncio.fixture
async def claims(services) -> AsyncIterator[IdempotencyStore]:
    """A store able to take long claims: they run on a driver pool of their own."""
    handle = services["ledger"]
    pool = DriverPool(handle.settings.sqlalchemy_url(), max_size=4, name="test-claims")
    yield IdempotencyStore(handle.engine, pool)
    await pool.close()


def _name() -> str:
    return f"asset:test:{uuid.uuid4().hex[:12]}"


def _md(key: str) -> list[tuple[str, str]]:
    return [("idempotency-key", key), ("x-request-id", f"req_{key}")]


async def test_same_key_same_request_replays_the_stored_response(operator_channels):
    stub = pb_grpc.LedgerServiceStub(operator_channels["ledger"])
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    key = uuid.uuid4().hex
    first_call = stub.CreateAccount(request, metadata=_md(key))
    first = await first_call
    second_call = stub.CreateAccount(request, metadata=_md(key))
    second = await second_call
    assert second == first
    assert ("idempotent-replayed", "true") not in tuple(await first_call.initial_metadata())
    assert ("idempotent-replayed", "true") in tuple(await second_call.initial_metadata())


async def test_same_key_different_request_is_refused_as_reused(operator_channels):
    stub = pb_grpc.LedgerServiceStub(operator_channels["ledger"])
    key = uuid.uuid4().hex
    await stub.CreateAccount(pb.CreateAccountRequest(name=_name(), currency="USD"), metadata=_md(key))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateAccount(pb.CreateAccountRequest(name=_name(), currency="USD"), metadata=_md(key))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err.value).reason == "IDEMPOTENCY_KEY_REUSED"
    assert from_rpc_error(err.value).kind.http_status == 422


async def test_missing_and_oversized_keys_are_invalid_arguments(operator_channels):
    stub = pb_grpc.LedgerServiceStub(operator_channels["ledger"])
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateAccount(request)
    assert error_info(err.value).reason == "IDEMPOTENCY_KEY_MISSING"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateAccount(request, metadata=_md("k" * 256))
    assert error_info(err.value).reason == "IDEMPOTENCY_KEY_TOO_LONG"
    # A 255-character key is the documented maximum and is accepted.
    await stub.CreateAccount(request, metadata=_md("k" * 255))


async def test_fifty_concurrent_identical_calls_perform_the_effect_once(operator_channels, services):
    stub = pb_grpc.LedgerServiceStub(operator_channels["ledger"])
    name = _name()
    request = pb.CreateAccountRequest(name=name, currency="EUR")
    key = uuid.uuid4().hex

    async def call():
        try:
            return await stub.CreateAccount(request, metadata=_md(key))
        except grpc.aio.AioRpcError as exc:
            return exc

    results = await asyncio.gather(*(call() for _ in range(50)))
    successes = [r for r in results if isinstance(r, pb.CreateAccountResponse)]
    refusals = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert successes, "at least the first call must succeed"
    assert all(s == successes[0] for s in successes)
    for exc in refusals:
        assert exc.code() == grpc.StatusCode.ABORTED
        assert error_info(exc).reason == "IDEMPOTENCY_KEY_IN_USE"
    # Clients retry the refused ones later and get the original answer.
    retried = await asyncio.gather(*(stub.CreateAccount(request, metadata=_md(key)) for _ in refusals))
    assert all(r == successes[0] for r in retried)
    async with services["ledger"].engine.connect() as conn:
        count = await conn.scalar(sa.text("SELECT count(*) FROM accounts WHERE name = :n"), {"n": name})
        keys = await conn.scalar(sa.text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": key})
    assert count == 1
    assert keys == 1


async def test_failed_request_stores_nothing_so_the_key_can_be_retried(operator_channels, services):
    stub = pb_grpc.LedgerServiceStub(operator_channels["ledger"])
    key = uuid.uuid4().hex
    bad = pb.CreateAccountRequest(name="not-a-valid-name", currency="USD")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreateAccount(bad, metadata=_md(key))
    assert error_info(err.value).reason == "INVALID_ACCOUNT_NAME"
    async with services["ledger"].engine.connect() as conn:
        stored = await conn.scalar(
            sa.text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": key}
        )
    assert stored == 0


async def test_purge_removes_only_keys_past_retention(services, operator_channels):
    stub = pb_grpc.LedgerServiceStub(operator_channels["ledger"])
    old_key, new_key = uuid.uuid4().hex, uuid.uuid4().hex
    await stub.CreateAccount(pb.CreateAccountRequest(name=_name(), currency="USD"), metadata=_md(old_key))
    await stub.CreateAccount(pb.CreateAccountRequest(name=_name(), currency="USD"), metadata=_md(new_key))
    engine = services["ledger"].engine
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE idempotency_keys SET created_at = now() - interval '49 hours' WHERE key = :k"),
            {"k": old_key},
        )
    deleted = await IdempotencyStore(engine).purge(older_than_hours=48)
    assert deleted >= 1
    async with engine.connect() as conn:
        remaining = set(
            (
                await conn.execute(
                    sa.text("SELECT key FROM idempotency_keys WHERE key IN (:a, :b)"),
                    {"a": old_key, "b": new_key},
                )
            ).scalars()
        )
    assert remaining == {new_key}


async def test_long_claim_holds_the_key_across_transactions_then_replays(services, claims):
    store = claims
    key = uuid.uuid4().hex
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    answer = pb.CreateAccountResponse(account=pb.Account(name=request.name, currency="USD"))

    async with store.claim("test.Long", key, request) as claim:
        assert claim.replay(pb.CreateAccountResponse) is None
        # While held, a concurrent claim of the same key is refused as in use.
        with pytest.raises(Exception) as busy:
            async with store.claim("test.Long", key, request):
                pass
        assert getattr(busy.value, "reason", None) == "IDEMPOTENCY_KEY_IN_USE"
        async with services["ledger"].engine.begin() as conn:
            await claim.save(conn, answer)

    async with store.claim("test.Long", key, request) as again:
        assert again.replay(pb.CreateAccountResponse) == answer
    with pytest.raises(Exception) as reused:
        async with store.claim("test.Long", key, pb.CreateAccountRequest(name=_name(), currency="USD")):
            pass
    assert getattr(reused.value, "reason", None) == "IDEMPOTENCY_KEY_REUSED"


async def test_long_claim_is_released_when_the_operation_fails(services, claims):
    store = claims
    key = uuid.uuid4().hex
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    with pytest.raises(RuntimeError):
        async with store.claim("test.Long", key, request):
            raise RuntimeError("PSP exploded")
    async with store.claim("test.Long", key, request) as claim:
        assert claim.replay(pb.CreateAccountResponse) is None


async def test_long_claim_that_lost_a_race_answers_with_the_winners_stored_response(services, claims):
    # The probe's snapshot can predate a holder that committed its record and unlocked just before
    # our lock attempt; the operation then re-runs, and saving must hand back the winner's answer.
    engine = services["ledger"].engine
    store = claims
    key = uuid.uuid4().hex
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    first = pb.CreateAccountResponse(
        account=pb.Account(name=request.name, currency="USD", type=pb.ACCOUNT_TYPE_ASSET)
    )
    second = pb.CreateAccountResponse(
        account=pb.Account(name=request.name, currency="USD", type=pb.ACCOUNT_TYPE_LIABILITY)
    )
    async with store.claim("test.Race", key, request) as late:
        async with engine.begin() as conn:  # the winner's record lands while we run
            await Claim("test.Race", key, late.fingerprint).save(conn, first)
        async with engine.begin() as conn:
            answer = await late.save(conn, second)
    assert answer == first
    async with store.claim("test.Race", key, request) as again:
        assert again.replay(pb.CreateAccountResponse) == first


async def test_long_claim_of_a_finished_key_releases_the_lock_it_took(services, claims):
    engine = services["ledger"].engine
    store = claims
    key = uuid.uuid4().hex
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    answer = pb.CreateAccountResponse(account=pb.Account(name=request.name, currency="USD"))
    async with store.claim("test.Done", key, request) as claim, engine.begin() as conn:
        await claim.save(conn, answer)
    for _ in range(3):  # each replay probes with a lock attempt; none may leak a held lock
        async with store.claim("test.Done", key, request) as again:
            assert again.replay(pb.CreateAccountResponse) == answer
    async with engine.connect() as conn:
        held = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
            ),
            {
                "hi": (lock_id("test.Done", key) >> 32) & 0xFFFFFFFF,
                "lo": lock_id("test.Done", key) & 0xFFFFFFFF,
            },
        )
    assert held == 0


async def test_run_whose_work_fails_because_the_key_finished_meanwhile_replays_the_winner(services):
    # The probe's snapshot can predate a holder that committed its effect and record and released
    # the lock just before our lock attempt: our work then collides with the winner's effect (here,
    # the account already exists). The caller must get the winner's answer, not the collision.
    engine = services["ledger"].engine
    store = IdempotencyStore(engine)
    key = uuid.uuid4().hex
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    winner = pb.CreateAccountResponse(account=pb.Account(name=request.name, currency="USD"))

    async def work(conn):
        async with engine.begin() as other:  # the winner lands between our probe and our effect
            await Claim("ledger.CreateAccount", key, fingerprint("ledger.CreateAccount", request)).save(
                other, winner
            )
        raise AlreadyExists("ACCOUNT_ALREADY_EXISTS", "account already exists")

    response, replayed = await store.run("ledger.CreateAccount", key, request, pb.CreateAccountResponse, work)
    assert (response, replayed) == (winner, True)

    # A failure with no finished record behind it is still the caller's error, unchanged.
    async def fails(conn):
        raise AlreadyExists("ACCOUNT_ALREADY_EXISTS", "account already exists")

    with pytest.raises(AlreadyExists):
        await store.run("ledger.CreateAccount", uuid.uuid4().hex, request, pb.CreateAccountResponse, fails)


async def test_run_whose_work_fails_while_a_different_request_finished_the_key_says_reused(services):
    engine = services["ledger"].engine
    store = IdempotencyStore(engine)
    key = uuid.uuid4().hex
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    other_request = pb.CreateAccountRequest(name=_name(), currency="USD")

    async def work(conn):
        async with engine.begin() as other:
            await Claim("ledger.CreateAccount", key, fingerprint("ledger.CreateAccount", other_request)).save(
                other, pb.CreateAccountResponse()
            )
        raise AlreadyExists("ACCOUNT_ALREADY_EXISTS", "account already exists")

    with pytest.raises(Unprocessable) as err:
        await store.run("ledger.CreateAccount", key, request, pb.CreateAccountResponse, work)
    assert err.value.reason == "IDEMPOTENCY_KEY_REUSED"


async def _advisory_lock_held(engine, scope: str, key: str) -> bool:
    lock = lock_id(scope, key)
    async with engine.connect() as conn:
        held = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
            ),
            {"hi": (lock >> 32) & 0xFFFFFFFF, "lo": lock & 0xFFFFFFFF},
        )
    return held > 0


async def test_long_claim_finish_records_the_answer_and_releases_the_key_together(services, claims):
    engine = services["ledger"].engine
    store = claims
    key = uuid.uuid4().hex
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    answer = pb.CreateAccountResponse(account=pb.Account(name=request.name, currency="USD"))
    async with store.claim("test.Finish", key, request) as claim:
        assert await _advisory_lock_held(engine, "test.Finish", key)
        assert await claim.finish(answer) == answer
        assert not await _advisory_lock_held(engine, "test.Finish", key)
    async with store.claim("test.Finish", key, request) as again:
        assert again.replay(pb.CreateAccountResponse) == answer

    # Lost a race: the winner's record is there already; finish answers with it and still releases.
    key = uuid.uuid4().hex
    winner = pb.CreateAccountResponse(account=pb.Account(name=request.name, currency="EUR"))
    async with store.claim("test.Finish", key, request) as late:
        async with engine.begin() as conn:
            await Claim("test.Finish", key, late.fingerprint).save(conn, winner)
        assert await late.finish(answer) == winner
    assert not await _advisory_lock_held(engine, "test.Finish", key)


async def test_a_store_without_a_driver_pool_refuses_long_claims_clearly(services):
    store = IdempotencyStore(services["ledger"].engine)
    with pytest.raises(RuntimeError, match="driver pool"):
        async with store.claim("test.NoPool", uuid.uuid4().hex, pb.CreateAccountRequest()):
            pass


async def _cancel_claim_after(store: IdempotencyStore, scope: str, key: str, request, yields: int) -> None:
    """Start a request that claims (scope, key) and then runs until cancelled; cancel it after
    ``yields`` turns of the event loop (anywhere from before its probe to inside the operation)."""

    async def request_handler() -> None:
        async with store.claim(scope, key, request):
            await asyncio.Event().wait()  # the claimed operation, cut short by a gRPC deadline

    task = asyncio.create_task(request_handler())
    for _ in range(yields):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_claim_cancelled_at_any_point_leaves_its_key_free(services, claims):
    # A deadline can cancel the request at any await: while its probe takes the key's session lock,
    # inside the operation, or while the lock is being released. Whichever, the request has ended,
    # so its key must be free: the connection may not go back to the pool still holding the lock.
    engine = services["ledger"].engine
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    for yields in range(40):
        key = f"cancel-{yields}-{uuid.uuid4().hex}"
        await _cancel_claim_after(claims, "test.Cancel", key, request, yields)
        assert not await _advisory_lock_held(engine, "test.Cancel", key), f"cancelled after {yields} turns"
        async with claims.claim("test.Cancel", key, request) as again:
            assert again.replay(pb.CreateAccountResponse) is None
        assert not await _advisory_lock_held(engine, "test.Cancel", key)


async def test_a_pool_for_session_locks_never_hands_out_a_connection_still_holding_one(services):
    # The pool's backstop for any user that returns a connection without releasing its lock.
    engine = services["ledger"].engine
    pool = DriverPool(
        services["ledger"].settings.sqlalchemy_url(), max_size=1, name="test-locks", session_locks=True
    )
    key = uuid.uuid4().hex
    try:
        async with pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (lock_id("test.Pool", key),))
            assert await _advisory_lock_held(engine, "test.Pool", key)
        # The pool's only connection: handed out again only once it is clean.
        async with pool.connection() as conn:
            assert not await _advisory_lock_held(engine, "test.Pool", key)
    finally:
        await pool.close()


async def test_a_claim_cancelled_again_while_releasing_its_key_still_frees_it(services, claims):
    # Cancelled at every turn, the release itself is cut short: the connection is closed instead, and
    # the server frees the lock as the session ends (a moment after the close, hence the wait).
    engine = services["ledger"].engine
    request = pb.CreateAccountRequest(name=_name(), currency="USD")
    key = uuid.uuid4().hex
    entered = asyncio.Event()

    async def request_handler() -> None:
        async with claims.claim("test.Cancel", key, request):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(request_handler())
    await entered.wait()
    while not task.done():
        task.cancel()
        await asyncio.sleep(0)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for _ in range(200):
        if not await _advisory_lock_held(engine, "test.Cancel", key):
            break
        await asyncio.sleep(0.05)
    assert not await _advisory_lock_held(engine, "test.Cancel", key)
    async with claims.claim("test.Cancel", key, request) as again:
        assert again.replay(pb.CreateAccountResponse) is None
