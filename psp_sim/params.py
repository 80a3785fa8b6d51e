"""Typed reads of parsed parameters, raising Stripe's 400s with the offending ``param``."""

from __future__ import annotations

from typing import Any, Literal, overload

from psp_sim.errors import invalid
from psp_sim.money import SUPPORTED_CURRENCIES

_MISSING = object()


def check_known(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in params:
        if key not in allowed:
            raise invalid(f"Received unknown parameter: {key}", param=key, code="parameter_unknown")


# The overloads tell a type checker what the code guarantees: a required parameter (or one with a
# default) is never None, so callers need no casts.
@overload
def string(params: dict[str, Any], name: str, *, required: Literal[True], default: None = None) -> str: ...
@overload
def string(params: dict[str, Any], name: str, *, required: bool = False, default: str) -> str: ...
@overload
def string(
    params: dict[str, Any], name: str, *, required: bool = False, default: str | None = None
) -> str | None: ...
def string(
    params: dict[str, Any], name: str, *, required: bool = False, default: str | None = None
) -> str | None:
    value = params.get(name, _MISSING)
    if value is _MISSING or value == "":
        if required:
            raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
        return default
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {name}", param=name, code="parameter_invalid_string")
    return value


@overload
def integer(
    params: dict[str, Any], name: str, *, required: Literal[True], minimum: int | None = None
) -> int: ...
@overload
def integer(
    params: dict[str, Any], name: str, *, required: bool = False, minimum: int | None = None
) -> int | None: ...
def integer(
    params: dict[str, Any], name: str, *, required: bool = False, minimum: int | None = None
) -> int | None:
    raw = string(params, name, required=required)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer") from None
    if minimum is not None and value < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", param=name)
    return value


def boolean(params: dict[str, Any], name: str, default: bool = False) -> bool:
    raw = string(params, name)
    if raw is None:
        return default
    if raw in ("true", "True", "1"):
        return True
    if raw in ("false", "False", "0"):
        return False
    raise invalid(f"Invalid boolean: {raw}", param=name)


@overload
def currency(params: dict[str, Any], name: str = "currency", *, required: Literal[True] = True) -> str: ...
@overload
def currency(params: dict[str, Any], name: str = "currency", *, required: bool) -> str | None: ...
def currency(params: dict[str, Any], name: str = "currency", *, required: bool = True) -> str | None:
    raw = string(params, name, required=required)
    if raw is None:
        return None
    cur = raw.lower()
    if cur not in SUPPORTED_CURRENCIES:
        raise invalid(f"Invalid currency: {raw}.", param=name)
    return cur


def mapping(params: dict[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid object: {name}", param=name)
    return value


def metadata(params: dict[str, Any], name: str = "metadata") -> dict[str, str]:
    meta = mapping(params, name)
    for key, value in meta.items():
        if not isinstance(value, str):
            raise invalid("Metadata values must be strings.", param=f"{name}[{key}]")
    # An empty value unsets the key, as in Stripe.
    return {k: v for k, v in meta.items() if v != ""}


def string_list(params: dict[str, Any], name: str) -> list[str]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"Invalid array: {name}", param=name)
    return value
