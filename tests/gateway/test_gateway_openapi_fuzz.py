"""Property-based fuzzing of the OpenAPI document (schemathesis) against the real gateway, in front of
the session's real services: whatever a generated request holds, the answer is never a 5xx, its
status is one the document lists for the route, and its body and content type match what is listed."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings

from tests.gateway.conftest import Gateway

EXAMPLES_PER_OPERATION = 15
"""Bounded so the whole fuzz stays well under half a minute on two cores."""


@pytest_asyncio.fixture(scope="module")
async def roomy(start_gateway) -> Gateway:
    # Every generated request may fail authentication or spend the key's budget: limits out of reach.
    return await start_gateway(rate_limit_requests=1_000_000, auth_failure_limit=1_000_000)


def _fuzz(raw_schema: dict, base_url: str, key: str) -> list[str]:
    """Run in a thread: the gateway under test serves on the test's event loop meanwhile."""
    # Imported here, not at the top: every worker imports every test module when it collects, and
    # schemathesis costs each of them about half a CPU-second for this one test.
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_dict(raw_schema)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation the document describes wrongly: the schema error itself
        operation = result.ok()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples every run: a failure here is reproducible
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def answers_as_documented(case) -> None:
            headers = {"Authorization": f"Bearer {key}"}
            response = case.call(base_url=base_url, headers=headers, timeout=10)
            case.validate_response(response, checks=checks)

        try:
            answers_as_documented()
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {exc}"[:3000])
    return failures


@pytest.mark.slow
async def test_every_operation_answers_as_its_openapi_document_says(roomy, keys):
    _, key = await keys.make("payments", "admin")  # let through to the routes, where the rules are
    async with roomy.client() as c:
        raw = (await c.get("/openapi.json")).json()
    failures = await asyncio.to_thread(_fuzz, raw, roomy.url, key)
    assert not failures, "\n\n".join(failures)
