"""Conversions between Python values and protobuf well-known types, shared by every servicer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar, cast

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from svckit.errors import InvalidArgument

K = TypeVar("K", int, str)


def timestamp(dt: datetime | None) -> Timestamp:
    """A protobuf Timestamp of an aware datetime; the zero Timestamp (unset) for None."""
    ts = Timestamp()
    if dt is not None:
        ts.FromDatetime(dt)
    return ts


def time_window(request: Message, start_field: str, end_field: str) -> tuple[datetime, datetime] | None:
    """The [start, end) window two Timestamp fields of a request give; None when neither is set.

    Both or neither: a window with one bound, an unreadable time or no time in it is INVALID_FILTER
    (the listing would otherwise be unbounded or silently empty)."""
    has_start, has_end = request.HasField(start_field), request.HasField(end_field)
    if not has_start and not has_end:
        return None
    if not (has_start and has_end):
        missing = end_field if has_start else start_field
        raise InvalidArgument("INVALID_FILTER", f"{missing} is required with a window", field=missing)
    bounds = []
    for name in (start_field, end_field):
        try:
            bounds.append(cast(Timestamp, getattr(request, name)).ToDatetime(tzinfo=UTC))
        except (ValueError, OverflowError):  # seconds outside 0001-9999, or nanos out of range
            raise InvalidArgument("INVALID_FILTER", f"{name} is not a valid time", field=name) from None
    start, end = bounds
    if end <= start:
        raise InvalidArgument(
            "INVALID_FILTER", f"{end_field} must be later than {start_field}", field=end_field
        )
    return start, end


def window_position(token_position: object, key_type: type[K]) -> tuple[datetime, K] | None:
    """A window listing's keyset position, (time, id), from a decoded page token's JSON list."""
    if token_position is None:
        return None
    try:
        if not isinstance(token_position, list) or len(token_position) != 2:
            raise ValueError("not a position")
        at, key = token_position
        if not isinstance(at, str) or not isinstance(key, key_type) or isinstance(key, bool):
            raise ValueError("not a position")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("not a position")
        return when, key
    except ValueError:
        raise InvalidArgument(
            "INVALID_PAGE_TOKEN", "page_token is not one this listing returned", field="page_token"
        ) from None
