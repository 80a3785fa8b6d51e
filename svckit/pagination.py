"""Keyset pagination, the same for every listing of every service.

A page token is opaque to clients. It carries the listing it belongs to (its name and filter) and the
keyset position after which the next page starts, so a token handed to another listing, or to the
same listing with another filter, is refused rather than silently paging through something else.
A page size of 0 means the listing's default; a size above the listing's maximum is refused, never
clamped (a client asking for more than it can get should learn so, not receive a short page).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from svckit.errors import InvalidArgument


def page_size(requested: int, *, default: int, maximum: int) -> int:
    if requested < 0 or requested > maximum:
        raise InvalidArgument(
            "INVALID_PAGE_SIZE", f"page_size must be between 0 and {maximum}", field="page_size"
        )
    return requested or default


def encode_token(listing: Any, position: Any) -> str:
    """A token for the page after ``position`` of ``listing`` (both JSON values)."""
    raw = json.dumps({"f": listing, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, listing: Any, position_type: type | tuple[type, ...] = object) -> Any:
    """The position a token of ``listing`` carries, or None for no token (the first page)."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["f"] != listing or not isinstance(data["p"], position_type):
            raise ValueError("not a token of this listing")
        return data["p"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(
            "INVALID_PAGE_TOKEN", "page_token is not one this listing returned", field="page_token"
        ) from None
