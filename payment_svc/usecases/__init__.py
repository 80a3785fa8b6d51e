"""Rules of pay-in, one module per use case. Transport-free: plain values in, DomainError out.

- ``commands``: the commands the transport builds, and their validation;
- ``transitions``: the one place an order changes state (shared by every use case);
- ``checkout``: CreatePayment and registration with the PSP (also resumed by the janitor);
- ``events``: HandlePspEvent;
- ``review``: an operator's decision on an order held by risk;
- ``janitor``: asks the PSP about orders still uncertain;
- ``refunds``: CreateRefund and the PSP's refund answers;
- ``queries``: reads.

Exactly-once charging rests on three things working together:
1. every PSP call carries our own id as its idempotency key (the checkout id for the hosted session,
   the payment order id for a PaymentIntent, the refund id for a refund), so repeating a call can
   only replay it;
2. every step is resumable from what is stored: re-running ``create_payment`` for the same key, or
   the janitor, picks up whatever the previous attempt did not record;
3. every state change goes through :class:`~payment_svc.usecases.transitions.Transitions`, which
   consults the transition table under a row lock, so a late or duplicate webhook can never move an
   order backwards.

:class:`payment_svc.service.PaymentService` holds the shared dependencies and delegates to these.
"""
