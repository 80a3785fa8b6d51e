"""Who may call what: each service's access table, checked once per call by the method wrapper.

A table maps a full gRPC method name (``/ledger.v1.LedgerService/PostTransaction``) to the identities
allowed to call it (the ``spiffe://marketplace-payments/<identity>`` URI SAN of the caller's client
certificate, see svckit/tls.py). Each service declares its table in its own ``access.py`` and hands
it to the server through its composition root. A method missing from the table is refused to every
caller (fail closed); health and reflection are open to any caller that passed mutual TLS.
docs/security.md shows the tables, and a test keeps that page equal to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf.descriptor import ServiceDescriptor

from svckit.errors import PermissionDenied
from svckit.pki import IDENTITIES
from svckit.reasons import Reason

AccessTable = Mapping[str, frozenset[str]]

CALLER_NOT_ALLOWED = Reason.CALLER_NOT_ALLOWED


def allow(service: ServiceDescriptor, rules: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """The table entries of one service: ``{"CreateAccount": ("gateway", "operator")}`` becomes
    ``{"/ledger.v1.LedgerService/CreateAccount": frozenset(...)}``; names are checked here, at import."""
    table = {}
    for method, identities in rules.items():
        if method not in service.methods_by_name:
            raise ValueError(f"{service.full_name} has no method {method}")
        allowed = frozenset(identities)
        if unknown := allowed - set(IDENTITIES):
            raise ValueError(f"{service.full_name}/{method}: unknown identities {sorted(unknown)}")
        table[f"/{service.full_name}/{method}"] = allowed
    return table


def method_names(service: ServiceDescriptor) -> list[str]:
    """Every full method name of a service (for checking a table covers it)."""
    return [f"/{service.full_name}/{m.name}" for m in service.methods]


class CallerNotAllowed(PermissionDenied):
    """The caller authenticated, but the access table does not let it call this method."""

    def __init__(self, caller: str | None, method: str) -> None:
        who = caller or "a certificate without an identity"
        super().__init__(
            CALLER_NOT_ALLOWED,
            f"caller {who!r} may not call {method}",
            {"caller": caller or "", "method": method},
        )
