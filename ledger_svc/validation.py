"""The ledger's stateless rules: what a posting must look like before the database is asked (shape,
sizes, one currency per balanced side, positive amounts, normalized currencies and text). Checked by
the service before any unit of work opens, and by the coalescer before it groups calls; the stateful
rules (closed accounts, balances, reverse-once) are the posting function's, under its row locks."""

from __future__ import annotations

from collections.abc import Mapping

from ledger_svc.domain import Direction, EntryLine, Posting
from ledger_svc.naming import parse_account
from svckit.errors import InvalidArgument
from svckit.money import MoneyError, normalize_currency

MAX_ENTRIES = 100
MAX_DESCRIPTION = 1024
MAX_EXTERNAL_REF = 256
MAX_METADATA_PAIRS = 64
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1024
INT64_MAX = 2**63 - 1


# Valid codes already normalized (a few hundred at most: only codes that passed are kept).
_NORMALIZED_CURRENCIES: dict[str, str] = {}


def checked_currency(code: str, field_name: str = "currency") -> str:
    known = _NORMALIZED_CURRENCIES.get(code)
    if known is not None:
        return known
    try:
        normalized = normalize_currency(code)
    except MoneyError as exc:
        raise InvalidArgument(exc.reason, str(exc), field=field_name) from None
    _NORMALIZED_CURRENCIES[code] = normalized
    return normalized


def checked_text(value: str, limit: int, field_name: str) -> str:
    if len(value) > limit:
        raise InvalidArgument(
            "TEXT_TOO_LONG", f"{field_name} is longer than {limit} characters", field=field_name
        )
    if "\x00" in value:
        raise InvalidArgument("INVALID_TEXT", f"{field_name} contains a NUL character", field=field_name)
    return value


def checked_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidArgument(
            "TOO_MANY_METADATA_PAIRS", f"at most {MAX_METADATA_PAIRS} metadata pairs", field="metadata"
        )
    return {
        checked_text(k, MAX_METADATA_KEY, "metadata key"): checked_text(
            v, MAX_METADATA_VALUE, "metadata value"
        )
        for k, v in metadata.items()
    }


def validate_posting(posting: Posting) -> Posting:
    """Check everything that needs no database; return the posting with normalized currencies.

    Postings that are already normal (the common case: upper-case currencies, ``Direction``
    members, a plain dict of metadata) come back as the same object, without copies."""
    entries = posting.entries
    if len(entries) < 2:
        raise InvalidArgument("TOO_FEW_ENTRIES", "a transaction needs at least two entries", field="entries")
    if len(entries) > MAX_ENTRIES:
        raise InvalidArgument("TOO_MANY_ENTRIES", f"at most {MAX_ENTRIES} entries", field="entries")
    unchanged = True
    account_currency: dict[str, str] = {}
    sums: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        _, named_currency = parse_account(entry.account)
        direction = entry.direction
        if direction is not Direction.DEBIT and direction is not Direction.CREDIT:
            if direction not in (Direction.DEBIT, Direction.CREDIT):  # a plain "D" / "C" is fine too
                raise InvalidArgument(
                    "INVALID_DIRECTION",
                    f"entry {i}: direction must be debit or credit",
                    field=f"entries[{i}]",
                )
            unchanged = False
        if entry.amount_minor <= 0:
            raise InvalidArgument(
                "AMOUNT_NOT_POSITIVE",
                f"entry {i}: amount_minor must be positive, got {entry.amount_minor}",
                field=f"entries[{i}].amount_minor",
            )
        currency = _NORMALIZED_CURRENCIES.get(entry.currency) or checked_currency(
            entry.currency, f"entries[{i}].currency"
        )
        if currency != entry.currency:
            unchanged = False
        if named_currency is not None and named_currency != currency:
            # The ledger opens an account on first use in its entry's currency: checking the name's
            # suffix here, before posting, keeps every account in the currency its name says.
            raise InvalidArgument(
                "CURRENCY_MISMATCH",
                f"entry {i}: account {entry.account} is named for {named_currency}, not {currency}",
                field=f"entries[{i}].currency",
                account=entry.account,
            )
        seen = account_currency.setdefault(entry.account, currency)
        if seen != currency:
            raise InvalidArgument(
                "CURRENCY_MISMATCH",
                f"account {entry.account} appears in {seen} and {currency} in one transaction",
                field=f"entries[{i}].currency",
            )
        total = sums.get(currency)
        if total is None:
            total = sums[currency] = [0, 0]
        total[0 if direction == Direction.DEBIT else 1] += entry.amount_minor
    for currency, (debits, credits) in sorted(sums.items()):
        if debits != credits:
            raise InvalidArgument(
                "UNBALANCED_TRANSACTION",
                f"{currency} debits {debits} != credits {credits}",
                field="entries",
                currency=currency,
            )
        if debits > INT64_MAX:
            raise InvalidArgument("AMOUNT_TOO_LARGE", f"{currency} total exceeds int64", field="entries")
    description = checked_text(posting.description, MAX_DESCRIPTION, "description")
    external_ref = checked_text(posting.external_ref, MAX_EXTERNAL_REF, "external_ref")
    metadata = checked_metadata(posting.metadata) if posting.metadata else posting.metadata
    if unchanged and (not metadata or type(posting.metadata) is dict):
        return posting
    return Posting(
        entries=tuple(
            EntryLine(e.account, Direction(e.direction), e.amount_minor, checked_currency(e.currency))
            for e in entries
        ),
        description=description,
        external_ref=external_ref,
        metadata=metadata or {},
    )
