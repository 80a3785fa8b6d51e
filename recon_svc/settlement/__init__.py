"""Reconciliation against the PSP's settlement file: parse, match, classify (issue 15)."""
