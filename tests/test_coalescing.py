"""svckit.coalescing: the queueing rules every coalescing service relies on, with a recording group runner."""

from __future__ import annotations

import asyncio

import pytest

from svckit.coalescing import Coalescer
from svckit.errors import DomainError, Unavailable


class Recorder:
    """Runs groups after a gate opens, recording each group's items."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.gate = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, items: list[str]) -> list[str]:
        self.groups.append(items)
        await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [f"done:{item}" for item in items]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_calls_arriving_while_a_group_runs_share_the_next_group_in_arrival_order():
    rec = Recorder()
    c: Coalescer[str, str] = Coalescer(rec, name="t")
    first = asyncio.ensure_future(c.submit("a", "ka"))
    await _settle()
    later = [asyncio.ensure_future(c.submit(x, f"k{x}")) for x in "bcd"]
    await _settle()
    rec.gate.set()
    assert await first == "done:a"
    assert [await f for f in later] == ["done:b", "done:c", "done:d"]
    assert rec.groups == [["a"], ["b", "c", "d"]]


async def test_a_key_never_shares_a_group_with_itself_nor_with_a_group_in_flight():
    rec = Recorder()
    c: Coalescer[str, str] = Coalescer(rec, name="t")
    first = asyncio.ensure_future(c.submit("a1", "same"))
    await _settle()
    queued = [asyncio.ensure_future(c.submit(x, k)) for x, k in [("a2", "same"), ("b", "kb"), ("a3", "same")]]
    await _settle()
    rec.gate.set()
    await asyncio.gather(first, *queued)
    # a2 waited for a1's group to finish; a3 waits for a2's.
    assert rec.groups == [["a1"], ["a2", "b"], ["a3"]]


async def test_items_whose_claims_disagree_go_to_different_groups():
    rec = Recorder()
    c: Coalescer[str, str] = Coalescer(rec, name="t")
    blocker = asyncio.ensure_future(c.submit("x", "kx"))
    await _settle()
    usd = asyncio.ensure_future(c.submit("usd", "k1", {"acct": "USD"}))
    eur = asyncio.ensure_future(c.submit("eur", "k2", {"acct": "EUR"}))
    other = asyncio.ensure_future(c.submit("usd2", "k3", {"acct": "USD", "other": "EUR"}))
    await _settle()
    rec.gate.set()
    await asyncio.gather(blocker, usd, eur, other)
    assert rec.groups == [["x"], ["usd", "usd2"], ["eur"]]


@pytest.mark.parametrize(
    ("raised", "reason"),
    [
        (Unavailable("TRANSIENT_CONFLICT", "deadlock"), "TRANSIENT_CONFLICT"),
        (OSError("gone"), "GROUP_TRANSACTION_FAILED"),
    ],
)
async def test_a_failed_group_gives_every_call_a_retryable_refusal(raised, reason):
    rec = Recorder()
    rec.fail_with = raised
    c: Coalescer[str, str] = Coalescer(rec, name="t")
    blocker = asyncio.ensure_future(c.submit("x", "kx"))
    await _settle()
    calls = [asyncio.ensure_future(c.submit(x, f"k{x}")) for x in "ab"]
    await _settle()
    rec.gate.set()
    results = await asyncio.gather(blocker, *calls, return_exceptions=True)
    assert all(isinstance(r, DomainError) and r.reason == reason for r in results), results
    assert all(isinstance(r, Unavailable) for r in results)


async def test_a_caller_that_left_before_its_group_formed_is_skipped():
    rec = Recorder()
    c: Coalescer[str, str] = Coalescer(rec, name="t")
    blocker = asyncio.ensure_future(c.submit("x", "kx"))
    await _settle()
    gone = asyncio.ensure_future(c.submit("gone", "kg"))
    kept = asyncio.ensure_future(c.submit("kept", "kk"))
    await _settle()
    gone.cancel()
    rec.gate.set()
    assert await kept == "done:kept"
    await blocker
    assert rec.groups == [["x"], ["kept"]]
    await c.close()
