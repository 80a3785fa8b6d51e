"""The generated stubs match proto/, buf lint (STANDARD) is clean, and proto/ is wire-compatible with
the committed baseline image (buf breaking, FILE rules)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from svckit import protogen

ROOT = Path(__file__).resolve().parent.parent


def test_generated_stubs_match_the_protos():
    drift = protogen.check()
    assert drift == [], "stubs drifted from proto/; run `make proto` and commit:\n" + "\n".join(drift)


def test_drift_check_notices_a_changed_proto(tmp_path, monkeypatch):
    # The check must be able to fail: point it at a copy of proto/ with one extra field.
    copy = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", copy)
    target = copy / "recon" / "v1" / "recon_service.proto"
    target.write_text(
        target.read_text().replace(
            "string next_page_token = 2;", "string next_page_token = 2;\n  int32 total = 3;"
        )
    )
    monkeypatch.setattr(protogen, "PROTO_DIR", copy)
    assert any("recon_service_pb2" in line for line in protogen.check())


def _buf() -> str:
    exe = shutil.which("buf") or str(Path(sys.executable).parent / "buf")
    if not Path(exe).exists():
        pytest.fail("buf is not installed; it comes with the buf-bin wheel in the dev extras")
    return exe


def test_buf_lint_is_clean():
    result = subprocess.run([_buf(), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_would_catch_a_violation(tmp_path):
    bad = tmp_path / "proto" / "bad" / "v1"
    bad.mkdir(parents=True)
    (bad / "bad.proto").write_text('syntax = "proto3";\npackage bad.v1;\nenum Color { RED = 0; }\n')
    (tmp_path / "buf.yaml").write_text((ROOT / "buf.yaml").read_text())
    result = subprocess.run([_buf(), "lint"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0
    assert "ENUM_ZERO_VALUE_SUFFIX" in result.stdout or "UNSPECIFIED" in result.stdout


BASELINE = ROOT / "proto" / "baseline.binpb"


def test_protos_do_not_break_the_committed_baseline():
    """Clients built from the baseline keep working: no field, message, enum value or RPC was removed,
    renumbered or retyped. A deliberate break needs a new package version and `make proto-baseline`."""
    result = subprocess.run(
        [_buf(), "breaking", "--against", str(BASELINE)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_breaking_check_would_catch_a_removed_field(tmp_path):
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    (tmp_path / "buf.yaml").write_text((ROOT / "buf.yaml").read_text())
    target = tmp_path / "proto" / "recon" / "v1" / "recon_service.proto"
    target.write_text(target.read_text().replace("string next_page_token = 2;", ""))
    result = subprocess.run(
        [_buf(), "breaking", "--against", str(BASELINE)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "next_page_token" in result.stdout
