"""ListMovements with reference_id: only the movements of one order, refund or other reference in the
wallet, newest first, paged with a token bound to the reference; a malformed id is refused."""

from __future__ import annotations

import uuid

import grpc

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.wallet.wallet_helpers import call_error, md, money, new_key, new_seller, ref


async def test_only_the_references_movements_newest_first(stub):
    seller, order, refund = new_seller(), f"po_{uuid.uuid4().hex[:8]}", f"rf_{uuid.uuid4().hex[:8]}"
    paid = await stub.Credit(
        pb.CreditRequest(seller_id=seller, amount=money(900), reference=ref(id_=order)),
        metadata=md(new_key()),
    )
    await stub.Credit(
        pb.CreditRequest(seller_id=seller, amount=money(50), reference=ref()), metadata=md(new_key())
    )
    await stub.Credit(  # the same id in another currency's wallet stays out
        pb.CreditRequest(seller_id=seller, amount=money(7, "EUR"), reference=ref(id_=order)),
        metadata=md(new_key()),
    )
    back = await stub.Debit(
        pb.DebitRequest(seller_id=seller, amount=money(300), reference=ref(pb.REFERENCE_KIND_REFUND, refund)),
        metadata=md(new_key()),
    )
    fix = await stub.Credit(  # any kind of reference with the id counts
        pb.CreditRequest(
            seller_id=seller, amount=money(1), reference=ref(pb.REFERENCE_KIND_ADJUSTMENT, order)
        ),
        metadata=md(new_key()),
    )

    def listing(reference_id: str, **kw) -> pb.ListMovementsRequest:
        return pb.ListMovementsRequest(seller_id=seller, currency="USD", reference_id=reference_id, **kw)

    of_order = await stub.ListMovements(listing(order))
    assert [m.movement_id for m in of_order.movements] == [
        fix.movement.movement_id,
        paid.movement.movement_id,
    ]
    assert of_order.next_page_token == ""
    of_refund = (await stub.ListMovements(listing(refund))).movements
    assert [(m.kind, m.amount.amount_minor, m.reference.id) for m in of_refund] == [
        (pb.MOVEMENT_KIND_DEBIT, 300, refund)
    ]
    assert of_refund[0].movement_id == back.movement.movement_id
    assert len((await stub.ListMovements(listing(""))).movements) == 4  # no filter: the whole wallet

    first = await stub.ListMovements(listing(order, page_size=1))
    assert [m.movement_id for m in first.movements] == [fix.movement.movement_id] and first.next_page_token
    second = await stub.ListMovements(listing(order, page_size=1, page_token=first.next_page_token))
    assert [m.movement_id for m in second.movements] == [paid.movement.movement_id]
    assert second.next_page_token == ""
    # A filtered listing's token is not one of the unfiltered listing (or of another reference).
    for other in ("", refund):
        err = await call_error(stub.ListMovements(listing(other, page_token=first.next_page_token)))
        assert error_info(err).reason == "INVALID_PAGE_TOKEN"


async def test_a_malformed_reference_id_is_refused(stub):
    for bad in ("has space", "x" * 129, "po_<script>"):
        err = await call_error(
            stub.ListMovements(
                pb.ListMovementsRequest(seller_id=new_seller(), currency="USD", reference_id=bad)
            )
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(err).reason == "INVALID_REFERENCE_ID"
