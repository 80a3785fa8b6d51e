"""Query parameters of every paginated route, and their translation to the services' page fields.

The rules are the services' (svckit.pagination): one opaque token format, and a page size above the
listing's maximum refused with INVALID_PAGE_SIZE, never shortened. The gateway only passes them on.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

_INT32 = 2**31 - 1

PageSize = Annotated[
    int,
    Query(
        description="Items per page, 1-1000; 0 or absent means 100. Above 1000 is refused "
        "(`INVALID_PAGE_SIZE`), never shortened.",
        examples=[50],
    ),
]
PageToken = Annotated[
    str,
    Query(
        max_length=4096,
        description="`next_page_token` of the previous page; absent for the first. A token is valid only "
        "for the listing and filters that returned it (`INVALID_PAGE_TOKEN`).",
    ),
]

LIST_ERRORS = (
    "`INVALID_REQUEST` (a parameter of the wrong type or format), `INVALID_PAGE_SIZE`, `INVALID_PAGE_TOKEN`"
)
"""The 400 codes every paginated route can answer; a route adds those of its filters."""


def page_size(requested: int) -> int:
    """The size for the service's int32 field. Beyond int32 is beyond every listing's maximum, so the
    service's refusal (INVALID_PAGE_SIZE) is the same as for the value asked."""
    return max(-_INT32, min(requested, _INT32))


def next_token(token: str) -> str | None:
    """A service's "no next page" (empty) is ``null`` in the REST answer."""
    return token or None
