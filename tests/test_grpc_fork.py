"""gRPC's fork handlers are off in every process of ours unless asked for: processes we start exec at
once, and the handlers crashed gRPC's threads when processes were started next to them."""

from __future__ import annotations

import os
import subprocess
import sys


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
