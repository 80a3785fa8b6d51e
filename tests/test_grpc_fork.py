"""gRPC's fork handlers are off in every process of ours unless asked for: processes we start exec at
once, and the handlers crashed gRPC's threads when processes were started next to them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _setting_seen_by_a_fresh_process(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"} | env
    return subprocess.run(
        [sys.executable, "-c", "import os, svckit; print(os.environ['GRPC_ENABLE_FORK_SUPPORT'])"],
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_importing_svckit_turns_grpc_fork_handlers_off_and_an_explicit_choice_wins():
    assert _setting_seen_by_a_fresh_process() == "false"
    assert _setting_seen_by_a_fresh_process(GRPC_ENABLE_FORK_SUPPORT="true") == "true"


# Records the variable as gRPC is first imported (its C core reads it then), then loads a script.
_WATCH_GRPC_IMPORT = """
import importlib.abc, importlib.util, os, sys
seen = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "grpc" and not seen:
            seen.append(os.environ.get("GRPC_ENABLE_FORK_SUPPORT"))
        return None
sys.meta_path.insert(0, Watch())
spec = importlib.util.spec_from_file_location("loaded_script", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules["loaded_script"] = module
spec.loader.exec_module(module)
print(seen[0] if seen else "grpc not imported")
"""


@pytest.mark.parametrize("script", ["benchmarks/chaos.py", "tests/conftest.py"])
def test_processes_that_start_children_turn_grpc_fork_handlers_off_before_grpc_loads(script):
    """Chaos finding 11 (docs/reliability.md): the campaign runner and the test suite's conftest set
    the variable after importing gRPC, so the core's fork handlers stayed on: one service of about
    thirty the runner started died with SIGABRT between fork and exec ("epoll_wait error: Bad file
    descriptor"), and `pg_ctl promote` run by a test died with SIGSEGV in 2 runs of 5."""
    root = Path(__file__).resolve().parent.parent
    clean = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    seen = subprocess.run(
        [sys.executable, "-c", _WATCH_GRPC_IMPORT, str(root / script)],
        env=clean, cwd=root, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert seen == "false"
