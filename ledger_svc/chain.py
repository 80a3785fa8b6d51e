"""The canonical encoding behind the hash chain, recomputed in Python by VerifyLedger.

The database computes the same bytes in ``ledger_tx_payload`` (``ledger_svc/sql/ledger_tx_payload.sql``) when it links a
transaction at commit; this module is the independent second implementation an auditor trusts.
Every text field is length-prefixed (``<utf-8 octets>:<text>``), so no choice of description,
metadata or account name can make two different transactions encode alike.

    payload = "LTX1|" seq "|" id "|" posted_at_microseconds "|" reverses_id_or_0 "|"
              lp(description) lp(external_ref)
              n_metadata "|" (lp(key) lp(value))* sorted by key's UTF-8 bytes
              n_entries "|" (lp(account) direction "|" amount "|" currency "|")* in entry order
    hash    = SHA-256(utf8(payload) || previous_hash)       (previous_hash of seq 1: 32 zero bytes)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

GENESIS_HASH = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _lp(text: str) -> str:
    return f"{len(text.encode())}:{text}"


def epoch_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def payload(
    *,
    seq: int,
    tx_id: int,
    posted_at: datetime,
    reverses_id: int | None,
    description: str,
    external_ref: str,
    metadata: Mapping[str, str],
    entries: Sequence[tuple[str, str, int, str]],
) -> bytes:
    """Canonical bytes of one transaction; ``entries`` are (account, 'D'|'C', amount, currency)."""
    parts = [f"LTX1|{seq}|{tx_id}|{epoch_micros(posted_at)}|{reverses_id or 0}|"]
    parts.append(_lp(description) + _lp(external_ref))
    parts.append(f"{len(metadata)}|")
    for key in sorted(metadata, key=lambda k: k.encode()):
        parts.append(_lp(key) + _lp(str(metadata[key])))
    parts.append(f"{len(entries)}|")
    for account, direction, amount, currency in entries:
        parts.append(f"{_lp(account)}{direction}|{amount}|{currency}|")
    return "".join(parts).encode()


def link_hash(canonical: bytes, previous_hash: bytes) -> bytes:
    return hashlib.sha256(canonical + previous_hash).digest()
