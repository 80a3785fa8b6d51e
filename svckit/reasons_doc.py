"""Find every reason code raised in the source, and write docs/errors.md from the catalogue.

    python -m svckit.reasons_doc            # rewrite docs/errors.md
    python -m svckit.reasons_doc --check    # exit 1 if docs/errors.md is stale

A reason is raised where an UPPER_SNAKE string literal is passed to a DomainError subclass, MoneyError,
ApiProblem or one of the helpers that build them, or wherever a ``Reason.X`` member is named (tables
that map to reasons use the members, so they are found too).
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from svckit.errors import DomainError, ErrorKind
from svckit.reasons import Reason

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "payment_svc", "ledger_svc", "wallet_svc", "recon_svc", "svckit")
DOC = ROOT / "docs" / "errors.md"
_SKIPPED = {Path("svckit/gen"), Path("svckit/reasons.py"), Path("svckit/reasons_doc.py")}
_UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$|^[A-Z]{4,}$")


def _subclasses(cls: type[DomainError]) -> dict[str, type[DomainError]]:
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


_ERROR_CLASSES = _subclasses(DomainError)

# Callables whose literal arguments are reasons: the error types and the helpers that wrap them.
RAISERS = set(_ERROR_CLASSES) | {
    "MoneyError",
    "ApiProblem",
    "problem",
    "_bad",
    "_field_error",
    "_reject",
    "_problem_bytes",
}


# The category each raiser always uses (DomainError subclasses carry their own).
_INVALID_ARGUMENT_HELPERS = {"MoneyError", "_bad", "_field_error"}


@dataclass(frozen=True)
class Site:
    code: str
    path: str
    line: int
    kind: ErrorKind | None = None
    """The category it is raised with, where the raise site fixes one."""
    http_status: int | None = None
    """The HTTP status given next to it (ApiProblem, the middleware's own answers)."""

    @property
    def package(self) -> str:
        return self.path.split("/", 1)[0]


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _kind_of(callee: str) -> ErrorKind | None:
    if callee in _INVALID_ARGUMENT_HELPERS:
        return ErrorKind.INVALID_ARGUMENT
    cls = _ERROR_CLASSES.get(callee)
    return cls.kind if cls is not None and cls is not DomainError else None


def sites_in(source: str, path: str) -> list[Site]:
    found: list[Site] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and (callee := _callee(node)) in RAISERS:
            values = [*node.args, *(k.value for k in node.keywords if k.arg in ("reason", "code"))]
            statuses = [a.value for a in node.args if isinstance(a, ast.Constant) and type(a.value) is int]
            found += [
                Site(v.value, path, v.lineno, _kind_of(callee), statuses[0] if statuses else None)
                for v in values
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and _UPPER_SNAKE.match(v.value)
            ]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "Reason"
            and node.attr.isupper()
        ):
            found.append(Site(node.attr, path, node.lineno))
    return found


def raised_sites(root: Path = ROOT) -> list[Site]:
    """Every place in the services, the gateway and svckit that raises a reason (not psp_sim)."""
    found: list[Site] = []
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            rel = file.relative_to(root)
            if any(rel == s or s in rel.parents for s in _SKIPPED):
                continue
            found += sites_in(file.read_text(encoding="utf-8"), rel.as_posix())
    return found


def render(sites: list[Site]) -> str:
    answered: dict[str, set[str]] = defaultdict(set)
    for site in sites:
        answered[site.code].add(site.package)
    rows = []
    for reason in sorted(Reason, key=lambda r: r.value):
        grpc_status = f"`{reason.kind.grpc_code.name}`" if reason.kind else "—"
        http = str(reason.http_status) if reason.http_status else "varies"
        by = ", ".join(sorted(answered.get(reason.value, ()))) or "—"
        rows.append(f"| `{reason.value}` | {reason.meaning} | {grpc_status} | {http} | {by} |")
    return "\n".join(
        [
            "# Error reason codes",
            "",
            "<!-- Generated from svckit/reasons.py by `python -m svckit.reasons_doc`; do not edit by hand. -->",
            "",
            "Every error the services and the gateway answer carries one stable UPPER_SNAKE reason: in gRPC as",
            "`google.rpc.ErrorInfo.reason` (domain `marketplace-payments`), in REST as the problem+json `code`.",
            "A fault has one code, the same at the gateway and in the service behind it, so a client branches",
            "on one vocabulary. The catalogue is `svckit/reasons.py`; tests/test_reasons.py fails on a code",
            "raised anywhere but missing there, and on a catalogued code nothing raises.",
            "",
            "gRPC status and HTTP status are given where a code is always raised with the same one (`—` /",
            '"varies" otherwise: `INVALID_SIGNATURE` is PERMISSION_DENIED from the payment service and 400 at',
            "the webhook endpoint; `HTTP_ERROR` takes the status it stands for). *Answered by* lists the",
            "packages that raise it; `svckit` codes come from shared code and may be answered by any service",
            "using it. The PSP simulator (psp_sim) answers Stripe's own codes and is not listed.",
            "",
            "| code | meaning | gRPC status | HTTP status | answered by |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if docs/errors.md is stale")
    args = parser.parse_args(argv)
    text = render(raised_sites())
    if args.check:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python -m svckit.reasons_doc", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
