"""Every currency the PSP takes flows through pay-in, refunds, the wallet and the ledger; a settlement
whose second half is refused leaves neither half applied, and its replay applies both once."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from svckit.events import Keys
from svckit.events.admin import EventsAdmin
from svckit.events.channels import DeadLetterEntry
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.recon.v1 import recon_service_pb2 as rpb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as rpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from tests.payments.books import balance as _balance
from tests.payments.books import posted_for as _posted_for

INT64_MAX = 2**63 - 1


def _md() -> list[tuple[str, str]]:
    return [("idempotency-key", uuid.uuid4().hex)]


async def _pay(pay, seller: str, amount: int, currency: str) -> str:
    """A direct-mode checkout of one order through the PSP simulator; returns the order id."""
    run = uuid.uuid4().hex[:8]
    reply = await pay.stub.CreatePayment(
        pb.CreatePaymentRequest(
            checkout_id=f"co_{run}",
            buyer=pb.BuyerInfo(buyer_id=f"buyer-currencies-{run}"),
            payment_orders=[
                pb.PaymentOrderInput(
                    payment_order_id=f"po_{run}",
                    seller_account=seller,
                    amount_minor=amount,
                    currency=currency,
                )
            ],
            payment_method="pm_card_visa",
        ),
        metadata=_md(),
    )
    (order,) = reply.payment_event.payment_orders
    assert order.state == pb.PAYMENT_ORDER_STATE_SUCCESS
    return order.payment_order_id


async def _flags(pay, order_id: str) -> tuple[bool, bool]:
    async with pay.handle.engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT wallet_updated, ledger_updated FROM payment_orders WHERE payment_order_id = :o"
                ),
                {"o": order_id},
            )
        ).one()
    return row.wallet_updated, row.ledger_updated


async def _eventually(check, what: str, within_seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


async def _settled(pay, order_id: str) -> None:
    async def both() -> bool:
        return await _flags(pay, order_id) == (True, True)

    await _eventually(both, f"{order_id} was not settled")


async def _wallet(channels, seller: str, currency: str) -> int:
    """available + reserved; 0 before the wallet's first movement."""
    stub = wpb_grpc.WalletServiceStub(channels["wallet"])
    try:
        w = (await stub.GetWallet(wpb.GetWalletRequest(seller_id=seller, currency=currency))).wallet
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return 0
    return w.available.amount_minor + w.reserved.amount_minor


async def _transactions_for(services, ref: str) -> int:
    async with services["ledger"].engine.connect() as conn:
        return await conn.scalar(
            sa.text("SELECT count(*) FROM transactions WHERE external_ref = :r"), {"r": ref}
        )


async def _verified(channels) -> None:
    verify = await lpb_grpc.LedgerServiceStub(channels["ledger"]).VerifyLedger(lpb.VerifyLedgerRequest())
    assert verify.ok, list(verify.findings)


async def _dead_letter(pay, needle: str) -> DeadLetterEntry:
    keys = Keys(pay.handle.settings.events_namespace)
    redis = Redis.from_url(pay.handle.settings.redis_url, decode_responses=True)
    try:
        admin = EventsAdmin(redis, keys)
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            letters, _ = await admin.list_dead_letters(page_size=100)
            mine = [e for e in letters if needle in str(e.event.payload)]
            if mine:
                return mine[-1]
            assert asyncio.get_running_loop().time() < deadline, f"no dead letter for {needle}"
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()


async def _replay(pay, entry: DeadLetterEntry) -> None:
    redis = Redis.from_url(pay.handle.settings.redis_url, decode_responses=True)
    try:
        await EventsAdmin(redis, Keys(pay.handle.settings.events_namespace)).replay(entry.id)
    finally:
        await redis.aclose()


# (currency, order amount, partial refund, commission at 10 % half-up, commission the refund gives back)
CASES = [
    ("USD", 2000, 730, 200, 73),  # 200 * 730 / 2000 = 73
    ("EUR", 2000, 555, 200, 56),  # 55.5 -> 56
    ("JPY", 505, 101, 51, 10),  # 0 decimals: 50.5 -> 51; 51 * 101 / 505 = 10.2 -> 10
    ("BHD", 20_000, 5_550, 2_000, 555),  # 3 decimals, last digit 0 as Stripe requires; 555.0
]


@pytest.mark.parametrize(("currency", "amount", "refund", "commission", "given_back"), CASES)
async def test_a_pay_in_and_a_partial_refund_settle_in_their_own_currency(
    pay, channels, services, currency, amount, refund, commission, given_back
):
    seller = f"cur-{uuid.uuid4().hex[:8]}"
    order_id = await _pay(pay, seller, amount, currency)
    await _settled(pay, order_id)
    assert await _wallet(channels, seller, currency) == amount - commission

    reply = await pay.stub.CreateRefund(
        pb.CreateRefundRequest(payment_order_id=order_id, amount_minor=refund), metadata=_md()
    )
    assert reply.refund.state == pb.REFUND_STATE_SUCCEEDED
    owed = amount - commission - (refund - given_back)

    async def refund_settled() -> bool:
        return await _transactions_for(services, reply.refund.refund_id) == 1

    await _eventually(refund_settled, "the refund was not posted")
    assert await _wallet(channels, seller, currency) == owed
    payable = f"liability:seller_payable:{seller}/{currency}"
    assert await _balance(channels, payable) == owed
    posted = await _posted_for(services, [order_id, reply.refund.refund_id])
    assert posted == {
        f"asset:psp_receivable:stripe/{currency}": amount - refund,
        payable: -owed,
        f"revenue:commission/{currency}": -(commission - given_back),
    }
    assert await _flags(pay, order_id) == (True, True)
    await _verified(channels)


async def test_one_seller_paid_in_two_currencies_has_two_wallets_and_two_payables(
    pay, channels, operator_channels
):
    seller = f"cur2-{uuid.uuid4().hex[:8]}"
    for currency, amount in (("EUR", 2000), ("JPY", 500)):
        await _settled(pay, await _pay(pay, seller, amount, currency))
    assert await _wallet(channels, seller, "EUR") == 1800
    assert await _wallet(channels, seller, "JPY") == 450
    assert await _balance(channels, f"liability:seller_payable:{seller}/EUR") == 1800
    assert await _balance(channels, f"liability:seller_payable:{seller}/JPY") == 450
    report = await rpb_grpc.ReconServiceStub(operator_channels["recon"]).CompareWalletsWithLedger(
        rpb.CompareWalletsWithLedgerRequest(seller_id=seller)
    )
    assert report.ok, list(report.mismatches)
    assert (report.wallets_checked, report.accounts_checked) == (2, 2)


async def test_a_ledger_refusal_of_a_pay_in_leaves_the_wallet_untouched(
    pay, channels, services, operator_channels
):
    seller = f"closed-{uuid.uuid4().hex[:8]}"
    payable = f"liability:seller_payable:{seller}/EUR"
    ledger = lpb_grpc.LedgerServiceStub(operator_channels["ledger"])
    await ledger.CreateAccount(lpb.CreateAccountRequest(name=payable, currency="EUR"), metadata=_md())
    await ledger.CloseAccount(lpb.CloseAccountRequest(name=payable), metadata=_md())

    order_id = await _pay(pay, seller, 2000, "EUR")
    letter = await _dead_letter(pay, order_id)
    assert "ACCOUNT_CLOSED" in letter.last_error
    assert await _wallet(channels, seller, "EUR") == 0
    assert await _transactions_for(services, order_id) == 0
    assert await _flags(pay, order_id) == (False, False)
    await _verified(channels)


async def test_a_refused_wallet_credit_undoes_the_pay_in_posting(pay, channels, services):
    seller = f"full-{uuid.uuid4().hex[:8]}"
    # A wallet that cannot take another yen: the credit after the ledger posting is refused.
    await wpb_grpc.WalletServiceStub(channels["wallet"]).Credit(
        wpb.CreditRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=INT64_MAX - 10, currency="JPY"),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_ADJUSTMENT, id=f"adj-{seller}"),
        ),
        metadata=_md(),
    )
    order_id = await _pay(pay, seller, 500, "JPY")
    letter = await _dead_letter(pay, order_id)
    assert "BALANCE_LIMIT_EXCEEDED" in letter.last_error
    assert await _wallet(channels, seller, "JPY") == INT64_MAX - 10
    # Posted, then reversed: the order's own transactions net to nothing on every account.
    assert await _transactions_for(services, order_id) == 2
    assert set((await _posted_for(services, [order_id])).values()) == {0}
    assert await _balance(channels, f"liability:seller_payable:{seller}/JPY") == 0
    assert await _flags(pay, order_id) == (False, False)
    await _verified(channels)


async def test_a_refund_the_ledger_refuses_gives_the_wallet_debit_back(
    pay, channels, services, operator_channels
):
    seller = f"rclosed-{uuid.uuid4().hex[:8]}"
    order_id = await _pay(pay, seller, 20_000, "BHD")
    await _settled(pay, order_id)
    ledger = lpb_grpc.LedgerServiceStub(operator_channels["ledger"])
    await ledger.CloseAccount(
        lpb.CloseAccountRequest(name=f"liability:seller_payable:{seller}/BHD"), metadata=_md()
    )
    reply = await pay.stub.CreateRefund(
        pb.CreateRefundRequest(payment_order_id=order_id, amount_minor=5_000), metadata=_md()
    )
    letter = await _dead_letter(pay, reply.refund.refund_id)
    assert "ACCOUNT_CLOSED" in letter.last_error
    assert await _wallet(channels, seller, "BHD") == 18_000  # debited, then credited back
    assert await _transactions_for(services, reply.refund.refund_id) == 0
    await _verified(channels)


async def test_a_refund_while_the_money_is_held_for_a_payout_becomes_the_sellers_debt(
    pay, channels, services
):
    seller = f"debt-{uuid.uuid4().hex[:8]}"
    order_id = await _pay(pay, seller, 2000, "EUR")
    await _settled(pay, order_id)
    wallet = wpb_grpc.WalletServiceStub(channels["wallet"])
    # The seller's money is held for a payout: the refund cannot take it, and is not refused either.
    held = await wallet.Reserve(
        wpb.ReserveRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=1700, currency="EUR"),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=f"payout-{seller}"),
        ),
        metadata=_md(),
    )
    reply = await pay.stub.CreateRefund(
        pb.CreateRefundRequest(payment_order_id=order_id, amount_minor=1000), metadata=_md()
    )
    refund_id = reply.refund.refund_id

    async def posted_once() -> bool:
        return await _transactions_for(services, refund_id) == 1

    await _eventually(posted_once, "the refund was not posted")
    # Net 900: the 100 available is taken, the other 800 is what the seller owes us.
    assert await _wallet(channels, seller, "EUR") == 1700  # available 0, the pay-out's 1700 reserved
    assert await _balance(channels, f"liability:seller_payable:{seller}/EUR") == 1700
    assert await _balance(channels, f"asset:seller_receivable:{seller}/EUR") == 800
    posted = await _posted_for(services, [refund_id])
    assert posted["asset:psp_receivable:stripe/EUR"] == -1000
    assert posted["revenue:commission/EUR"] == 100
    await wallet.Release(
        wpb.ReleaseRequest(
            reservation_id=held.reservation.reservation_id,
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=f"payout-{seller}"),
        ),
        metadata=_md(),
    )
    assert await _wallet(channels, seller, "EUR") == 1700
    await _verified(channels)


async def test_a_dead_lettered_pay_in_replayed_after_the_fix_applies_both_halves_once(
    pay, channels, services
):
    seller = f"replay-{uuid.uuid4().hex[:8]}"
    wallet = wpb_grpc.WalletServiceStub(channels["wallet"])
    # A wallet that cannot take another yen: the credit is refused and the posting undone.
    await wallet.Credit(
        wpb.CreditRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=INT64_MAX - 10, currency="JPY"),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_ADJUSTMENT, id=f"adj-{seller}"),
        ),
        metadata=_md(),
    )
    order_id = await _pay(pay, seller, 500, "JPY")
    letter = await _dead_letter(pay, order_id)
    assert "BALANCE_LIMIT_EXCEEDED" in letter.last_error

    await wallet.Debit(  # the fix: room in the wallet
        wpb.DebitRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=INT64_MAX - 10, currency="JPY"),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_ADJUSTMENT, id=f"adj-back-{seller}"),
        ),
        metadata=_md(),
    )
    await _replay(pay, letter)

    async def settled() -> bool:
        return await _flags(pay, order_id) == (True, True)

    await _eventually(settled, "the replayed pay-in was not settled")
    assert await _wallet(channels, seller, "JPY") == 450
    assert await _balance(channels, f"liability:seller_payable:{seller}/JPY") == 450
    assert await _transactions_for(services, order_id) == 3  # posted, reversed, posted again
    async with pay.handle.engine.connect() as conn:
        attempt = await conn.scalar(
            sa.text("SELECT settlement_attempt FROM payment_orders WHERE payment_order_id = :o"),
            {"o": order_id},
        )
    assert attempt == 1  # the replay used the keys of a fresh attempt
    await _verified(channels)


async def test_a_batch_in_several_currencies_fails_whole_on_a_refusal_and_settles_the_rest_alone(
    pay, channels, services, operator_channels
):
    from payment_svc.bootstrap import build_settlement_handler
    from payment_svc.settlement import ORDER_SUCCEEDED
    from svckit.events import Event, TerminalError

    run = uuid.uuid4().hex[:6]
    ok_seller, closed_seller = f"bm-{run}-ok", f"bm-{run}-closed"
    admin = lpb_grpc.LedgerServiceStub(operator_channels["ledger"])
    ledger = lpb_grpc.LedgerServiceStub(channels["ledger"])  # the handler posts as `payment`
    closed = f"liability:seller_payable:{closed_seller}/JPY"
    await admin.CreateAccount(lpb.CreateAccountRequest(name=closed, currency="JPY"), metadata=_md())
    await admin.CloseAccount(lpb.CloseAccountRequest(name=closed), metadata=_md())

    def order(i: int, seller: str, amount: int, currency: str, commission: int) -> Event:
        order_id = f"po_bm_{run}_{i}"
        payload = {
            "payment_order_id": order_id,
            "checkout_id": f"co_bm_{run}",
            "seller_account": seller,
            "amount_minor": amount,
            "commission_minor": commission,
            "currency": currency,
        }
        return Event(f"e-bm-{run}-{i}", ORDER_SUCCEEDED, order_id, payload, "")

    handler = build_settlement_handler(
        wpb_grpc.WalletServiceStub(channels["wallet"]), ledger, pay.handle.engine, 10
    )
    eur, jpy = order(0, ok_seller, 2000, "EUR", 200), order(1, closed_seller, 500, "JPY", 50)
    with pytest.raises(TerminalError, match="ACCOUNT_CLOSED"):
        async with pay.handle.engine.begin() as conn:
            await handler(conn, [eur, jpy])
    # The consumer's one-by-one pass: the euro order completes, the yen order is refused untouched.
    async with pay.handle.engine.begin() as conn:
        await handler(conn, [eur])
    with pytest.raises(TerminalError, match="ACCOUNT_CLOSED"):
        async with pay.handle.engine.begin() as conn:
            await handler(conn, [jpy])
    assert await _wallet(channels, ok_seller, "EUR") == 1800
    assert await _balance(channels, f"liability:seller_payable:{ok_seller}/EUR") == 1800
    assert await _transactions_for(services, eur.payload["payment_order_id"]) == 1
    assert await _wallet(channels, closed_seller, "JPY") == 0
    assert await _transactions_for(services, jpy.payload["payment_order_id"]) == 0

    # An event that cannot be booked as it stands is refused before either half.
    for bad in ({"currency": "XXX"}, {"commission_minor": 2001}, {"seller_account": "a/b"}):
        event = order(2, ok_seller, 2000, "EUR", 200)
        event.payload.update(bad)
        with pytest.raises(TerminalError):
            async with pay.handle.engine.begin() as conn:
                await handler(conn, [event])
    assert await _transactions_for(services, f"po_bm_{run}_2") == 0
    assert await _wallet(channels, ok_seller, "EUR") == 1800


async def test_a_second_half_waiting_for_a_retry_leaves_the_first_flagged_and_the_retry_completes_it(
    pay, channels, services
):
    from payment_svc.bootstrap import build_settlement_handler
    from payment_svc.settlement import ORDER_SUCCEEDED
    from svckit.devstack.infra import free_port
    from svckit.events import Event, TransientError

    run = uuid.uuid4().hex[:6]
    seller, order_id, checkout = f"tr-{run}", f"po_tr_{run}", f"co_tr_{run}"
    async with pay.handle.engine.begin() as conn:  # an order that succeeded, as the service stores it
        await conn.execute(sa.text("INSERT INTO payment_events (checkout_id) VALUES (:c)"), {"c": checkout})
        await conn.execute(
            sa.text(
                "INSERT INTO payment_orders (payment_order_id, checkout_id, seller_account, amount_minor,"
                " currency, state, commission_minor) VALUES (:o, :c, :s, 500, 'JPY', 'SUCCESS', 50)"
            ),
            {"o": order_id, "c": checkout, "s": seller},
        )
    payload = {
        "payment_order_id": order_id,
        "checkout_id": checkout,
        "seller_account": seller,
        "amount_minor": 500,
        "commission_minor": 50,
        "currency": "JPY",
    }
    event = Event(f"e-tr-{run}", ORDER_SUCCEEDED, order_id, payload, "")
    ledger = lpb_grpc.LedgerServiceStub(channels["ledger"])
    # A wallet nobody listens on: the credit fails as unavailable, its outcome unknown.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}") as dead:
        down = build_settlement_handler(wpb_grpc.WalletServiceStub(dead), ledger, pay.handle.engine, 2)
        with pytest.raises(TransientError):
            async with pay.handle.engine.begin() as conn:
                await down(conn, [event])
    assert await _flags(pay, order_id) == (False, True)
    assert await _transactions_for(services, order_id) == 1
    assert await _wallet(channels, seller, "JPY") == 0

    up = build_settlement_handler(
        wpb_grpc.WalletServiceStub(channels["wallet"]), ledger, pay.handle.engine, 10
    )
    async with pay.handle.engine.begin() as conn:
        await up(conn, [event])
    assert await _flags(pay, order_id) == (True, True)
    assert await _transactions_for(services, order_id) == 1  # the posting was replayed, not repeated
    assert await _wallet(channels, seller, "JPY") == 450
    assert await _balance(channels, f"liability:seller_payable:{seller}/JPY") == 450
