"""Who may call the payment service and the event admin it serves (docs/security.md shows this table;
a test keeps the two equal)."""

from __future__ import annotations

from svckit.access import allow
from svckit.gen.events.v1 import events_admin_service_pb2
from svckit.gen.payments.v1 import payment_service_pb2, payout_service_pb2

# Pay-outs: people on call (grpcurl, the CLI) and the gateway's admin routes.
_PAYOUT_ADMINS = ("gateway", "operator")

ACCESS = {
    **allow(
        payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        {
            "CreatePayment": ("gateway",),
            # recon: the order a settlement row names, and its checkout's orders (reads only).
            "GetPaymentOrder": ("gateway", "operator", "recon"),
            "GetCheckout": ("gateway", "operator"),
            # recon: the checkout a settlement row's PaymentIntent charged, when the row has no metadata.
            "GetCheckoutByPaymentIntent": ("gateway", "operator", "recon"),
            # recon: the orders of a chunk of settlement rows' checkouts in one read.
            "BatchGetCheckoutOrders": ("operator", "recon"),
            # recon: the same, only the fields a settlement row is compared with, as columns.
            "BatchGetCheckoutOrderColumns": ("operator", "recon"),
            "ListPaymentOrderHistory": ("gateway", "operator"),
            "ListPaymentOrders": ("gateway", "operator", "recon"),
            "ListRefunds": ("gateway", "operator", "recon"),
            # Counts for the operator console's overview (and people on call).
            "GetPaymentStats": ("gateway", "operator"),
            # Asks the PSP and applies its answer through the state machine; recon's auto-fix, and on call.
            "RecheckPaymentOrder": ("operator", "recon"),
            # Reconciliation's auto-fix of SETTLEMENT_NOT_BOOKED; operators for the same by hand.
            "RedriveSettlement": ("operator", "recon"),
            # Only the gateway, which verified the PSP's signature on the webhook it forwards.
            "HandlePspEvent": ("gateway",),
            "CreateRefund": ("gateway",),
            "ReviewPaymentOrder": ("gateway",),
        },
    ),
    **allow(
        payout_service_pb2.DESCRIPTOR.services_by_name["PayoutService"],
        {
            **{
                name: _PAYOUT_ADMINS
                for name in payout_service_pb2.DESCRIPTOR.services_by_name["PayoutService"].methods_by_name
            },
            # recon: the pay-out a settlement file's transfer row names, and a day's pay-outs (reads).
            "GetPayout": (*_PAYOUT_ADMINS, "recon"),
            "ListPayouts": (*_PAYOUT_ADMINS, "recon"),
        },
    ),
    # Dead letters and streams: people on call, never another service; the gateway only for its operator
    # console (/console/events), one dead letter at a time, with the signed-in person's reason audited.
    **allow(
        events_admin_service_pb2.DESCRIPTOR.services_by_name["EventsAdminService"],
        {
            "ListStreams": ("gateway", "operator"),
            "ListDeadLetters": ("gateway", "operator"),
            "GetDeadLetter": ("gateway", "operator"),
            "ReplayDeadLetter": ("gateway", "operator"),
            "ReplayAllDeadLetters": ("operator",),
            "DiscardDeadLetter": ("gateway", "operator"),
        },
    ),
}
