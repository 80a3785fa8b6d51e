"""The serving process's garbage-collector tuning (svckit.runtime.settle_heap, run by every service's
``serve`` once started; measured on the ledger, see docs/benchmarks.md)."""

from __future__ import annotations

import gc

from svckit.runtime import GC_GEN0_THRESHOLD, settle_heap


def test_settle_heap_freezes_what_exists_and_raises_the_young_threshold():
    before = gc.get_threshold()
    survivor = [object()]  # a container alive at start-up
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, *before[1:])
        # Frozen objects are out of every generation, so no collection walks them again.
        assert not any(o is survivor for o in gc.get_objects())
        gc.collect()
        assert survivor[0] is not None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
