"""Generate the Python stubs for everything under ``proto/`` into ``svckit/gen``.

Run ``python -m svckit.protogen`` (or ``make proto``). ``--check`` regenerates into a temporary folder
and exits non-zero when the committed stubs differ, which is what the drift test and CI rely on.

protoc writes absolute imports such as ``from payments.v1 import x_pb2``; we rewrite them to
``from svckit.gen.payments.v1 import x_pb2`` so the stubs live inside this package instead of
needing their own entry on ``sys.path``.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
GEN_DIR = Path(__file__).resolve().parent / "gen"
GEN_PACKAGE = "svckit.gen"


def _proto_files() -> list[Path]:
    return sorted(PROTO_DIR.rglob("*.proto"))


def _own_top_packages() -> set[str]:
    return {p.relative_to(PROTO_DIR).parts[0] for p in _proto_files()}


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = str(resources.files("grpc_tools") / "_proto")
    files = [str(p.relative_to(PROTO_DIR)) for p in _proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    own = "|".join(sorted(_own_top_packages()))
    import_re = re.compile(rf"^(from|import) ({own})(\.v\d+)", re.MULTILINE)
    for path in out_dir.rglob("*.py*"):
        text = path.read_text()
        new = import_re.sub(rf"\1 {GEN_PACKAGE}.\2\3", text)
        if new != text:
            path.write_text(new)
    for directory in (d for d in out_dir.rglob("*") if d.is_dir()):
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("")
    (out_dir / "__init__.py").write_text(
        '"""Generated from proto/ by `python -m svckit.protogen`. Do not edit."""\n'
    )


def check() -> list[str]:
    """Return the stub files that differ from a fresh generation (empty when in sync)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "gen"
        generate(fresh)
        drift: list[str] = []
        committed = {
            p.relative_to(GEN_DIR) for p in GEN_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        }
        expected = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        drift += [f"missing: {p}" for p in sorted(expected - committed)]
        drift += [f"stale: {p}" for p in sorted(committed - expected)]
        drift += [
            f"differs: {p}"
            for p in sorted(expected & committed)
            if not filecmp.cmp(fresh / p, GEN_DIR / p, shallow=False)
        ]
        return drift


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed stubs differ from proto/")
    ns = parser.parse_args()
    if ns.check:
        drift = check()
        if drift:
            print("generated stubs are out of date; run `make proto`:\n  " + "\n  ".join(drift))
            sys.exit(1)
        print("generated stubs match proto/")
        return
    if GEN_DIR.exists():
        shutil.rmtree(GEN_DIR)
    generate(GEN_DIR)
    print(f"generated stubs for {len(_proto_files())} proto files into {GEN_DIR.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
