"""Verifying a PSP webhook signature (Stripe's ``Stripe-Signature``) against one or more secrets.

The check is the stripe SDK's (HMAC-SHA256 of ``"{t}.{payload}"``, constant-time compare, timestamp no
older than the tolerance); the SDK does not refuse timestamps in the future, so that is added here.
Several secrets are tried in turn, so a secret can be rotated without a window of refused events.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import stripe

from svckit.errors import PermissionDenied


def signature_time(header: str) -> int | None:
    """The ``t=`` of a ``Stripe-Signature`` header (whole seconds since the epoch), if it has one."""
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t" and value.strip().isdigit():
            return int(value.strip())
    return None


def verify_stripe_signature(
    payload: bytes, header: str, secrets: Sequence[str], tolerance_seconds: int
) -> None:
    """Return when ``header`` signs ``payload`` with one of ``secrets`` within the tolerance (either
    way); raise :class:`PermissionDenied` (reason ``INVALID_SIGNATURE``) otherwise. Messages never
    contain a secret."""
    if not header:
        raise PermissionDenied("INVALID_SIGNATURE", "the event carries no PSP signature")
    if not secrets:
        raise PermissionDenied("INVALID_SIGNATURE", "no webhook secret is configured to verify the event")
    signed_at = signature_time(header)
    if signed_at is not None and signed_at > time.time() + tolerance_seconds:
        raise PermissionDenied("INVALID_SIGNATURE", "the signature is dated in the future")
    why = "the signature does not match"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=tolerance_seconds)
            return
        except stripe.SignatureVerificationError as exc:
            why = str(exc.user_message or exc).split(" for payload")[0]
        except (ValueError, TypeError, AttributeError):  # not UTF-8: nothing Stripe signs
            why = "the payload is not UTF-8"
    raise PermissionDenied("INVALID_SIGNATURE", f"PSP signature refused: {why}")
