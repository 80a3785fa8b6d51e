"""One catalogue of reason codes: every code raised is in svckit/reasons.py, every catalogued code is
raised somewhere and documented in docs/errors.md."""

from __future__ import annotations

import re
from pathlib import Path

from svckit import reasons_doc
from svckit.errors import ErrorKind
from svckit.reasons import Reason

ROOT = Path(__file__).resolve().parent.parent


def test_every_reason_raised_in_the_source_is_in_the_catalogue():
    sites = reasons_doc.raised_sites()
    unknown = [f"{s.path}:{s.line}: {s.code}" for s in sites if s.code not in Reason.__members__]
    assert not unknown, "reason codes missing from svckit/reasons.py:\n" + "\n".join(unknown)


def test_no_catalogued_reason_is_dead():
    raised = {s.code for s in reasons_doc.raised_sites()}
    dead = sorted(set(Reason.__members__) - raised)
    assert not dead, f"catalogued but raised nowhere (remove them, or raise them): {dead}"


def test_the_scan_finds_literals_helpers_and_members():
    source = (
        'raise InvalidArgument("SOME_CODE", "m", field="x")\n'
        'raise ApiProblem(400, "OTHER_CODE", "m", field="Idempotency-Key")\n'
        'raise _field_error(reason="THIRD_CODE", message="m", field_name="f")\n'
        "TABLE = {400: Reason.FOURTH_CODE}\n"
        'os.environ["DATABASE_URL"]\n'
        'Internal(err.reason, "not a literal")\n'
    )
    found = [(s.code, s.line, s.kind, s.http_status) for s in reasons_doc.sites_in(source, "gateway/x.py")]
    assert found == [
        ("SOME_CODE", 1, ErrorKind.INVALID_ARGUMENT, None),
        ("OTHER_CODE", 2, None, 400),
        ("THIRD_CODE", 3, ErrorKind.INVALID_ARGUMENT, None),
        ("FOURTH_CODE", 4, None, None),
    ]


def test_an_unknown_literal_is_reported_with_file_and_line(tmp_path):
    pkg = tmp_path / "wallet_svc"
    pkg.mkdir()
    (pkg / "service.py").write_text('x = 1\nraise FailedPrecondition("NOT_IN_THE_CATALOGUE", "m")\n')
    sites = reasons_doc.raised_sites(tmp_path)
    assert [(s.path, s.line, s.code) for s in sites] == [("wallet_svc/service.py", 2, "NOT_IN_THE_CATALOGUE")]
    assert "NOT_IN_THE_CATALOGUE" not in Reason.__members__


def test_each_fault_has_one_code_at_the_gateway_and_in_the_services():
    # The pairs the restructuring unified: the public REST names won.
    for retired in ("NO_ORDERS", "DUPLICATE_ORDER_ID", "NON_POSITIVE_AMOUNT", "INVALID_EVENT_PAYLOAD"):
        assert retired not in Reason.__members__
    for kept in ("NO_PAYMENT_ORDERS", "DUPLICATE_PAYMENT_ORDER_ID", "AMOUNT_NOT_POSITIVE", "INVALID_PAYLOAD"):
        assert kept in Reason.__members__


def test_catalogue_entries_are_upper_snake_with_a_meaning_and_consistent_statuses():
    for reason in Reason:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", reason.value)
        assert reason == reason.name and reason.meaning.strip()
        if reason.kind is not None:
            assert isinstance(reason.kind, ErrorKind)
            assert reason.http_status == reason.kind.http_status


def test_each_code_is_raised_with_its_catalogued_status():
    wrong = []
    for site in reasons_doc.raised_sites():
        reason = Reason.__members__.get(site.code)
        if reason is None:
            continue  # reported by the test above
        if reason.kind is not None and site.kind is not None and site.kind is not reason.kind:
            wrong.append(
                f"{site.path}:{site.line}: {site.code} raised as {site.kind.name}, not {reason.kind.name}"
            )
        if reason.http_status is not None and site.http_status not in (None, reason.http_status):
            wrong.append(
                f"{site.path}:{site.line}: {site.code} answered {site.http_status}, not {reason.http_status}"
            )
    assert not wrong, "\n".join(wrong)


def test_every_catalogued_code_is_documented_in_docs_errors_md():
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", doc, re.MULTILINE))
    missing = [r.value for r in Reason if r.value not in rows]
    assert not missing, f"not in docs/errors.md: {missing}"
    stale = sorted(set(rows) - set(Reason.__members__))
    assert not stale, f"docs/errors.md lists codes the catalogue does not have: {stale}"
    assert all(rows[r.value].strip() == r.meaning for r in Reason)


def test_docs_errors_md_is_the_generated_table():
    assert reasons_doc.main(["--check"]) == 0, "run: python -m svckit.reasons_doc"
