"""Pay-outs: sellers paid each period, exactly once, through the PSP (docs/payouts.md).

One module per use case, over the repository of :mod:`payment_svc.payouts.repository`:

- ``domain``: states, periods, skip reasons and the typed rows (no I/O);
- ``registry``: register, update, pause and resume sellers;
- ``run``: preview and start a period's run; plans each seller and creates the pay-outs;
- ``steps``: drives one pay-out through reserve → post → transfer → payout, resumable at any step;
- ``events``: the PSP's ``payout.paid`` / ``payout.failed`` / ``payout.canceled``;
- ``janitor``: resumes interrupted pay-outs and asks the PSP about those without a final answer;
- ``statements``: a seller's statement of a period, from the ledger;
- ``books``: the wallet and ledger calls pay-outs make (gRPC, keys derived from the pay-out id).

Exactly once rests on: one ``payouts`` row per (seller, period) (a UNIQUE constraint, so concurrent
runs create one pay-out); a claim lease so one worker drives a pay-out at a time; and every remote
effect keyed by the pay-out id (``payout:<id>:reserve`` …, the PSP idempotency keys ``<id>:transfer``
and ``<id>:payout``), so resuming after a crash or an ambiguous answer can only replay.
"""
