"""ledger_svc: the double-entry journal (``ledger.v1.LedgerService``)."""
