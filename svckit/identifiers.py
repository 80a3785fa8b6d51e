"""Identifier rules every service applies to the same values, each defined once.

A seller id travels from a payment order (``seller_account``) to the seller's wallet (``seller_id``)
and into a ledger account name (``liability:seller_payable:<seller>/<CUR>``): one rule keeps an id that
one service accepts from being refused by the next after money has moved.
"""

from __future__ import annotations

import re

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_.\-@]{1,128}$")
"""An id chosen outside the ledger (a seller, a PSP): also what an account name's id segment may hold."""

EXTERNAL_ID_RULE = "1-128 letters, digits or _.-@"


def is_external_id(value: str | None) -> bool:
    return bool(value) and EXTERNAL_ID.match(value or "") is not None


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
"""A buyer's e-mail address as the gateway accepts it (a shape check; the PSP sends the receipts)."""

EMAIL_MAX_LENGTH = 254


def is_email(value: str | None) -> bool:
    return bool(value) and len(value or "") <= EMAIL_MAX_LENGTH and EMAIL.match(value or "") is not None
