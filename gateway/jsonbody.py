"""The one parser of JSON request bodies: strict UTF-8, no duplicate keys, no control characters.

``json.loads`` alone keeps the last of two equal keys (``{"amount": "1.00", "amount": "900.00"}`` is
900.00, while a proxy or log reader may have seen 1.00), detects UTF-16/32 on its own, and lets NUL,
escape sequences and lone surrogates through to the database. Here the body is decoded as UTF-8, parsed
once with every object kept as its list of pairs, and then walked once: a repeated key, or a string
holding a C0 control character other than tab and newline, DEL, a C1 control character or a lone
surrogate, is refused with a 400 problem naming the field. Tab and newline pass here for free text
(a review note); single-line fields refuse them in their own schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request

from gateway.problems import ApiProblem

MAX_DEPTH = 32
"""Our bodies nest three levels; anything deeper is not one of them (and costs stack to walk)."""

_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class _Pairs(list):
    """A JSON object as parsed: its (key, value) pairs in order, duplicates included."""


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_text(text: str, field: str) -> None:
    if (bad := _FORBIDDEN.search(text)) is not None:
        raise ApiProblem(
            400,
            "INVALID_CHARACTER",
            f"{field}: character U+{ord(bad.group()):04X} at position {bad.start()} is not allowed",
            field=field,
        )


def _build(value: Any, path: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ApiProblem(
            400, "INVALID_REQUEST", f"the body nests deeper than {MAX_DEPTH} levels", field="body"
        )
    if isinstance(value, _Pairs):
        out: dict[str, Any] = {}
        for key, item in value:
            field = _child(path, key)
            _check_text(key, field)
            if key in out:
                raise ApiProblem(
                    400, "DUPLICATE_JSON_KEY", f"{field}: the key appears more than once", field=field
                )
            out[key] = _build(item, field, depth + 1)
        return out
    if isinstance(value, list):
        return [_build(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, str):
        _check_text(value, path or "body")
    return value


def parse(body: bytes) -> Any:
    """The JSON value of a request body, or an :class:`ApiProblem` (400) saying what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiProblem(
            400, "INVALID_REQUEST", f"the body is not UTF-8 (byte {exc.start})", field="body"
        ) from None
    try:
        raw = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as exc:
        raise ApiProblem(
            400, "INVALID_REQUEST", f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            field="body",
        ) from None  # fmt: skip
    except RecursionError:
        raise ApiProblem(
            400, "INVALID_REQUEST", f"the body nests deeper than {MAX_DEPTH} levels", field="body"
        ) from None
    return _build(raw, "", 0)


class JsonRequest(Request):
    """A request whose ``json()`` is :func:`parse`; FastAPI reads bodies through it."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse(await self.body())
        return self._json
