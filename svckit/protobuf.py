"""Conversions between Python values and protobuf well-known types, shared by every servicer."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(dt: datetime | None) -> Timestamp:
    """A protobuf Timestamp of an aware datetime; the zero Timestamp (unset) for None."""
    ts = Timestamp()
    if dt is not None:
        ts.FromDatetime(dt)
    return ts
