"""payment_svc: pay-in orchestration, PSP calls, webhooks and payouts (``payments.v1.PaymentService``)."""
