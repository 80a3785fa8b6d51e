"""Stripe's form/query encoding: ``a[b][c]=v``, lists as ``a[0]=x`` (stripe-python) or ``a[]=x`` (others).

Everything the API receives goes through :func:`parse_params`, so bracket handling lives in one place.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl


class FormError(ValueError):
    """A key whose brackets cannot be decoded (e.g. ``a[b``) or mixes list and dict use."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def _split_key(key: str) -> list[str]:
    first = key.find("[")
    if first == -1:
        return [key]
    if first == 0 or not key.endswith("]"):
        raise FormError(f"Invalid parameter name: {key}", key)
    parts = [key[:first]]
    rest = key[first:]
    while rest:
        if rest[0] != "[":
            raise FormError(f"Invalid parameter name: {key}", key)
        close = rest.find("]")
        if close == -1:
            raise FormError(f"Invalid parameter name: {key}", key)
        parts.append(rest[1:close])
        rest = rest[close + 1 :]
    return parts


class _Seq:
    """Placeholder for a list while indices arrive in any order; ``a[]`` appends."""

    __slots__ = ("items", "next_append")

    def __init__(self) -> None:
        self.items: dict[int, Any] = {}
        self.next_append = 0

    def slot(self, token: str, following: str | None, key: str) -> int:
        if token == "":
            # rack's rule for a[][x]=1&a[][y]=2: a new element starts when the current one already has the key
            last = self.next_append - 1
            if (
                following is not None
                and last >= 0
                and isinstance(self.items.get(last), dict)
                and following not in self.items[last]
            ):
                return last
            self.next_append += 1
            return self.next_append - 1
        index = int(token)
        self.next_append = max(self.next_append, index + 1)
        return index


def _is_index(token: str) -> bool:
    return token == "" or token.isdigit()


def _finish(node: Any) -> Any:
    if isinstance(node, _Seq):
        return [_finish(node.items[i]) for i in sorted(node.items)]
    if isinstance(node, dict):
        return {k: _finish(v) for k, v in node.items()}
    return node


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Turn decoded ``(key, value)`` pairs into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        if "[" not in key:
            root[key] = value
            continue
        tokens = _split_key(key)
        node: Any = root
        for pos, token in enumerate(tokens):
            last = pos == len(tokens) - 1
            following = None if last else tokens[pos + 1]
            if isinstance(node, _Seq):
                if not _is_index(token):
                    raise FormError(f"Invalid array index in {key}", key)
                slot: Any = node.slot(token, following, key)
                container = node.items
            elif isinstance(node, dict):
                slot = token
                container = node
            else:
                raise FormError(f"Parameter {key} conflicts with a scalar value", key)
            if last:
                container[slot] = value
                break
            child = container.get(slot)
            if child is None or not isinstance(child, dict | _Seq):
                # ``following`` is None only for the last token, which stored its value above.
                child = _Seq() if following is not None and _is_index(following) else {}
                container[slot] = child
            node = child
    return _finish(root)


def parse_params(raw: bytes | str) -> dict[str, Any]:
    """Decode a form body or query string (percent-escapes and ``+`` first, then brackets)."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not raw:
        return {}
    return parse_pairs(parse_qsl(raw, keep_blank_values=True))
