"""Bracket-notation parsing, the single entry point for every request's parameters."""

import pytest

from psp_sim.forms import FormError, parse_params


def test_nested_dicts_and_indexed_lists() -> None:
    raw = (
        "amount=100&metadata[order]=42&line_items[0][price_data][currency]=eur"
        "&line_items[0][quantity]=2&line_items[1][quantity]=3&expand[0]=latest_charge&expand[1]=customer"
    )
    assert parse_params(raw) == {
        "amount": "100",
        "metadata": {"order": "42"},
        "line_items": [{"price_data": {"currency": "eur"}, "quantity": "2"}, {"quantity": "3"}],
        "expand": ["latest_charge", "customer"],
    }


def test_empty_bracket_lists_append_and_start_new_elements() -> None:
    assert parse_params("expand[]=a&expand[]=b") == {"expand": ["a", "b"]}
    assert parse_params("items[][x]=1&items[][y]=2&items[][x]=3") == {
        "items": [{"x": "1", "y": "2"}, {"x": "3"}]
    }


def test_indices_out_of_order_are_sorted() -> None:
    assert parse_params("a[1]=second&a[0]=first") == {"a": ["first", "second"]}


def test_percent_escapes_and_plus_are_decoded_before_brackets() -> None:
    # What a GET query string looks like on the wire, and a POST key with a space and an ampersand value.
    assert parse_params("expand%5B0%5D=latest_charge&created%5Bgte%5D=100") == {
        "expand": ["latest_charge"],
        "created": {"gte": "100"},
    }
    assert parse_params("metadata[x+y]=a%26b") == {"metadata": {"x y": "a&b"}}


@pytest.mark.parametrize("raw", ["a[b=1", "[x]=1", "a]b[=1"])
def test_malformed_keys_are_rejected(raw: str) -> None:
    with pytest.raises(FormError):
        parse_params(raw)
