"""Figures read out of other tools' text (pgbench, wrk, /proc): a changed format fails here, by name."""

from __future__ import annotations

import re


def first_group(pattern: str, text: str) -> str:
    """The first group of ``pattern``'s first match in ``text``."""
    match = re.search(pattern, text)
    if match is None:
        raise RuntimeError(f"{pattern!r} is not in this output:\n{text[-2000:]}")
    return match.group(1)
