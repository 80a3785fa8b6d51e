"""Secrets and card numbers out of everything that leaves a process: log lines, tracebacks, error answers.

One module owns the patterns. :func:`redact` scrubs a string, :func:`redact_value` a nested structure
(dicts, lists, exceptions rendered as text). What counts as a secret:

- our API keys ``mpk_...``, webhook secrets ``whsec_...``, PSP secret and restricted keys ``sk_test_``/``sk_live_``/``rk_...`` (publishable ``pk_`` keys are
  public by design),
  PaymentIntent/SetupIntent client secrets ``pi_..._secret_...`` (the id before ``_secret_`` is kept);
- the value of an ``Authorization``, ``Cookie``, ``Set-Cookie`` or ``Stripe-Signature`` header, and of a
  ``password=``-like pair, wherever they appear as text (a header dict's repr, a bytes tuple, a URL query);
- the password in a URL's userinfo (``postgresql://user:pass@host``);
- card numbers: 13-19 digits, optionally grouped by spaces or dashes, that pass the Luhn check. Only the
  last four digits stay. Digit runs that fail Luhn (hashes, timestamps, ids) are left alone.

Markers look like ``[REDACTED:api_key]`` so a reader knows what was there without seeing it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

MARK = "[REDACTED:{}]"

SENSITIVE_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "stripe-signature",
        "x-api-key",
        "password",
        "passwd",
        "client_secret",
        "api_key",
        "psp_api_key",
        "dev_api_key",
        "webhook_secret",
        "stripe_webhook_secret",
        "secret",
    }
)
"""Mapping keys (compared lower-case, ``-`` and ``_`` alike) whose values are dropped whatever they hold."""

_NORMALISED_KEYS = frozenset(k.replace("-", "_") for k in SENSITIVE_KEYS)

# Named groups: the group name is the kind reported in the marker. Order matters where patterns overlap:
# header and URL forms come first so that their whole value goes, not only the token inside it.
_PATTERNS = {
    # `Authorization: Bearer x`, `'authorization': 'Bearer x'`, `(b'authorization', b'Bearer x')`.
    "header": r"(?i:\b(?P<header_name>proxy-authorization|authorization|set-cookie|cookie|stripe-signature"
    r"|x-api-key)(?P<header_sep>['\"]?\s*[:=,]\s*(?:b(?=['\"]))?)(?P<header_q>['\"])?"
    r"(?P<header_val>(?(header_q)(?!<)[^'\"\r\n]+|(?:(?:bearer|basic|digest|token)\s+)?+(?!<)[^\s;}\])'\"]+"
    r"(?:;\s*[^\s;}\])'\"]+)*)))",
    # `password=x`, `"password": "x"`, `client_secret=x` (also inside URL queries and form bodies).
    "password": r"(?i:\b(?P<pw_name>password|passwd|pwd|client_secret|api_key|secret)"
    r"(?P<pw_sep>['\"]?\s*[:=]\s*)(?P<pw_q>['\"])?(?P<pw_val>(?(pw_q)(?!<)[^'\"\r\n]+|(?!<)[^\s&,;}\])'\"]+)))",
    # scheme://user:password@host
    "url_password": r"(?i:\b(?P<url_head>[a-z][a-z0-9+.-]*://[^\s/:@]*:)(?P<url_val>[^\s/@]+)@)",
    "client_secret": r"\b(?P<cs_id>(?:pi|seti|cs|src)_[A-Za-z0-9]+)_secret_[A-Za-z0-9]+",
    "api_key": r"\bmpk_[A-Za-z0-9_-]{16,}",
    "webhook_secret": r"\bwhsec_[A-Za-z0-9+/=_-]{8,}",
    "psp_key": r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9_]{4,}",
    "pan": r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w])",
}
_SCRUB = re.compile("|".join(f"(?P<{kind}>{body})" for kind, body in _PATTERNS.items()))

# Cheap test first (substring checks run in C): a string with none of these cannot hold anything the
# big pattern looks for, and most log values (paths, states, ids, numbers) have none.
_TRIGGERS = (
    "mpk_", "whsec_", "sk_", "rk_", "secret", "://", "authorization", "cookie", "signature", "passw", "pwd",
    "api_key", "api-key",
)  # fmt: skip
_DIGITS = re.compile(r"\d{4}")


def _candidate(text: str) -> bool:
    low = text.lower()
    return any(t in low for t in _TRIGGERS) or _DIGITS.search(text) is not None


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _is_pan(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _replace(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "pan":
        text = match.group()
        if not _is_pan(text):
            return text
        return MARK.format("pan") + "…" + text.replace(" ", "").replace("-", "")[-4:]
    if kind == "header":
        q = match.group("header_q") or ""
        return f"{match.group('header_name')}{match.group('header_sep')}{q}{MARK.format('header')}"
    if kind == "password":
        q = match.group("pw_q") or ""
        return f"{match.group('pw_name')}{match.group('pw_sep')}{q}{MARK.format('password')}"
    if kind == "url_password":
        return f"{match.group('url_head')}{MARK.format('password')}@"
    if kind == "client_secret":
        return f"{match.group('cs_id')}_secret_{MARK.format('client_secret')}"
    return MARK.format(kind)


def redact(text: str) -> str:
    """``text`` with every secret and card number replaced by a marker."""
    if len(text) < 8 or not _candidate(text):
        return text
    return _SCRUB.sub(_replace, text)


def _sensitive_key(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in _NORMALISED_KEYS


def redact_field(key: object, value: Any) -> Any:
    """``value`` scrubbed, or a marker in its place when ``key`` names a secret (``authorization``, ...)."""
    if _sensitive_key(key) and value:
        return MARK.format(str(key).lower())
    return redact_value(value)


def redact_value(value: Any) -> Any:
    """A copy of ``value`` with secrets scrubbed from every string inside it.

    Dicts, lists, tuples and sets are walked; values under a sensitive key (``authorization``,
    ``password``, ...) are dropped whole; integers long enough to be a card number are checked;
    other objects are replaced by their scrubbed ``repr`` (what a renderer would print anyway).
    """
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int):
        return MARK.format("pan") if value >= 10**12 and _is_pan(str(value)) else value
    if isinstance(value, Mapping):
        return {k: redact_field(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((redact_value(v) for v in value), key=str)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace"))
    return redact(repr(value))


def find(text: str) -> Iterator[str]:
    """The kind of each secret or card number in ``text`` (for scanners; never the secret itself)."""
    if not _candidate(text):
        return
    for match in _SCRUB.finditer(text):
        if match.lastgroup != "pan" or _is_pan(match.group()):
            yield match.lastgroup or "secret"


class RedactingFormatter(logging.Formatter):
    """A stdlib formatter for processes that do not use structlog (the PSP simulator's command line):
    the whole line, traceback included, goes through :func:`redact`. Tracebacks from ``logging`` never
    show local variables."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
