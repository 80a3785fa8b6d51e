"""The wallet and ledger calls pay-outs make, each under an idempotency key derived from the pay-out id.

Books of a pay-out P of seller S in currency CUR (docs/payouts.md):
    netted: Dr liability:seller_payable:S/CUR D / Cr asset:seller_receivable:S/CUR D   (key payout:<id>:netpost)
            then a wallet Debit of D (key payout:<id>:net), first, when S owes a debt D (reversed,
            key payout:<id>:netreverse, when the wallet refuses the debit)
    sent:   Dr liability:seller_payable:S/CUR P / Cr liability:payouts_in_transit/CUR P   (key payout:<id>:post)
    paid:   Dr liability:payouts_in_transit/CUR P / Cr asset:bank:operating/CUR P        (key payout:<id>:paid)
    failed: the reversal of ``sent`` (and of ``paid`` when it was paid first).
The wallet mirrors them: Reserve when sent, CaptureReservation when paid, Release when failed (or a
Credit back when a paid pay-out fails later, its reservation being captured already).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import grpc

from ledger_svc import naming
from svckit.context import IDEMPOTENCY_KEY_METADATA
from svckit.errors import DomainError, FailedPrecondition, error_class_for
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import from_rpc_error


def _key(payout_id: str, step: str) -> tuple[tuple[str, str], ...]:
    return ((IDEMPOTENCY_KEY_METADATA, f"payout:{payout_id}:{step}"),)


def _entry(account: str, debit: bool, amount: int, currency: str) -> lpb.Entry:
    direction = lpb.DIRECTION_DEBIT if debit else lpb.DIRECTION_CREDIT
    return lpb.Entry(account=account, direction=direction, amount_minor=amount, currency=currency)


def _paid_request(payout_id: str, amount: int, currency: str) -> lpb.PostTransactionRequest:
    """Dr payouts_in_transit / Cr bank:operating: the single and the batched paid posting (one
    request, so either replays the other under the same key)."""
    return lpb.PostTransactionRequest(
        entries=[
            _entry(naming.payouts_in_transit(currency), True, amount, currency),
            _entry(naming.bank_operating(currency), False, amount, currency),
        ],
        description=f"pay-out {payout_id} paid",
        external_ref=payout_id,
        metadata={"source": "payment_svc", "reference": payout_id, "kind": "payout_paid"},
    )


def _refusal(error: wpb.ItemError | lpb.ItemError) -> DomainError:
    """A batch item's refusal as the typed error its single call would have raised."""
    err = DomainError.__new__(error_class_for(error.code))
    DomainError.__init__(err, error.reason, error.message)
    return err


class Books:
    """Wallet and ledger over gRPC (the ``payment`` identity). Remote refusals come out as DomainError."""

    def __init__(
        self, wallet: wpb_grpc.WalletServiceStub, ledger: lpb_grpc.LedgerServiceStub, deadline_seconds: float
    ) -> None:
        self._wallet = wallet
        self._ledger = ledger
        self._deadline = deadline_seconds

    async def _call(self, method, request, metadata=()):
        try:
            return await method(request, metadata=metadata, timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    # -- reads ---------------------------------------------------------------------------------

    async def available(self, seller: str, currency: str) -> int:
        reply = await self._call(
            self._wallet.GetWallet, wpb.GetWalletRequest(seller_id=seller, currency=currency)
        )
        return int(reply.wallet.available.amount_minor)

    async def available_many(self, wallets: Sequence[tuple[str, str]]) -> list[int]:
        """:meth:`available` of many (seller, currency) in one ``BatchGetWallets`` (at most 1000)."""
        reply = await self._call(
            self._wallet.BatchGetWallets,
            wpb.BatchGetWalletsRequest(
                wallets=[wpb.GetWalletRequest(seller_id=s, currency=c) for s, c in wallets]
            ),
        )
        return [int(w.available.amount_minor) for w in reply.wallets]

    async def debts_many(self, sellers: Sequence[tuple[str, str]]) -> list[int]:
        """:meth:`debt` of many (seller, currency) in one ``GetBalances`` (at most 1000; a seller
        without a receivable account owes nothing)."""
        names = [naming.seller_receivable(s, c) for s, c in sellers]
        reply = await self._call(self._ledger.GetBalances, lpb.GetBalancesRequest(accounts=names))
        found = {b.account: int(b.balance_minor) for b in reply.balances}
        return [found.get(name, 0) for name in names]

    async def payable(self, seller: str, currency: str, as_of=None) -> int:
        """What the ledger says we owe the seller (0 before the account's first entry)."""
        request = lpb.GetBalanceRequest(account=naming.seller_payable(seller, currency))
        if as_of is not None:
            request.as_of.CopyFrom(as_of)
        try:
            return int((await self._call(self._ledger.GetBalance, request)).balance_minor)
        except DomainError as err:
            if err.reason == "ACCOUNT_NOT_FOUND":
                return 0
            raise

    async def debt(self, seller: str, currency: str) -> int:
        """What the seller owes us (``asset:seller_receivable``: refunds beyond their balance)."""
        request = lpb.GetBalanceRequest(account=naming.seller_receivable(seller, currency))
        try:
            return int((await self._call(self._ledger.GetBalance, request)).balance_minor)
        except DomainError as err:
            if err.reason == "ACCOUNT_NOT_FOUND":
                return 0
            raise

    async def entries(self, seller: str, currency: str) -> list[lpb.AccountEntry]:
        account = naming.seller_payable(seller, currency)
        found: list[lpb.AccountEntry] = []
        token = ""
        while True:
            try:
                reply = await self._call(
                    self._ledger.ListEntries,
                    lpb.ListEntriesRequest(account=account, page_size=1000, page_token=token),
                )
            except DomainError as err:
                if err.reason == "ACCOUNT_NOT_FOUND":
                    return []
                raise
            found.extend(reply.entries)
            token = reply.next_page_token
            if not token:
                return found

    async def transaction(self, transaction_id: int) -> lpb.Transaction:
        reply = await self._call(
            self._ledger.GetTransaction, lpb.GetTransactionRequest(transaction_id=transaction_id)
        )
        return reply.transaction

    # -- the steps -----------------------------------------------------------------------------

    async def reserve(self, payout_id: str, seller: str, amount: int, currency: str) -> str:
        reply = await self._call(
            self._wallet.Reserve,
            wpb.ReserveRequest(
                seller_id=seller,
                amount=money_pb2.Money(amount_minor=amount, currency=currency),
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=payout_id),
            ),
            _key(payout_id, "reserve"),
        )
        return str(reply.reservation.reservation_id)

    async def reserve_many(
        self, reservations: Sequence[tuple[str, str, int, str]]
    ) -> list[str | DomainError]:
        """:meth:`reserve` for many (payout id, seller, amount, currency) in one ``ApplyBatch`` call (at
        most 1000), each item under its pay-out's own key in the single ``Reserve``'s key space, so
        either replays the other after a crash; the reservation id of each, or the wallet's refusal."""
        reply = await self._call(
            self._wallet.ApplyBatch,
            wpb.ApplyBatchRequest(
                items=[
                    wpb.ApplyBatchItem(
                        idempotency_key=f"payout:{payout_id}:reserve",
                        reserve=wpb.ReserveRequest(
                            seller_id=seller,
                            amount=money_pb2.Money(amount_minor=amount, currency=currency),
                            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=payout_id),
                        ),
                    )
                    for payout_id, seller, amount, currency in reservations
                ]
            ),
        )
        return [
            _refusal(r.error) if r.HasField("error") else str(r.reserve.reservation.reservation_id)
            for r in reply.results
        ]

    async def paid_many(self, paid: Sequence[tuple[str, str, int, str]]) -> list[int | DomainError]:
        """:meth:`capture` then :meth:`post_paid` for many (payout id, reservation id, amount, currency):
        one ``ApplyBatch`` of captures, then one ``PostTransactions`` of the postings of those captured,
        each item under the single calls' key; the paid transaction id of each, or the refusal (a
        refused capture posts nothing, as the single path would not reach its posting)."""
        captured = await self._call(
            self._wallet.ApplyBatch,
            wpb.ApplyBatchRequest(
                items=[
                    wpb.ApplyBatchItem(
                        idempotency_key=f"payout:{payout_id}:capture",
                        capture=wpb.CaptureReservationRequest(
                            reservation_id=reservation_id,
                            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=payout_id),
                        ),
                    )
                    for payout_id, reservation_id, _, _ in paid
                ]
            ),
        )
        outcomes: list[int | DomainError] = [
            _refusal(r.error) if r.HasField("error") else 0 for r in captured.results
        ]
        todo = [i for i, o in enumerate(outcomes) if not isinstance(o, DomainError)]
        if not todo:
            return outcomes
        posted = await self._call(
            self._ledger.PostTransactions,
            lpb.PostTransactionsRequest(
                items=[
                    lpb.PostTransactionsItem(
                        idempotency_key=f"payout:{paid[i][0]}:paid",
                        transaction=_paid_request(paid[i][0], paid[i][2], paid[i][3]),
                    )
                    for i in todo
                ]
            ),
            ((IDEMPOTENCY_KEY_METADATA, f"payout-batch:{uuid.uuid4().hex}"),),
        )
        for i, r in zip(todo, posted.results, strict=True):
            outcomes[i] = _refusal(r.error) if r.HasField("error") else int(r.transaction.id)
        return outcomes

    async def debit_debt(self, payout_id: str, seller: str, amount: int, currency: str) -> None:
        """Take the seller's debt off their available balance (the first half of netting it)."""
        await self._call(
            self._wallet.Debit,
            wpb.DebitRequest(
                seller_id=seller,
                amount=money_pb2.Money(amount_minor=amount, currency=currency),
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=payout_id),
            ),
            _key(payout_id, "net"),
        )

    async def post_netted(self, payout_id: str, seller: str, amount: int, currency: str) -> int:
        """Dr seller_payable / Cr seller_receivable: we owe the seller less, they owe us nothing."""
        reply = await self._call(
            self._ledger.PostTransaction,
            lpb.PostTransactionRequest(
                entries=[
                    _entry(naming.seller_payable(seller, currency), True, amount, currency),
                    _entry(naming.seller_receivable(seller, currency), False, amount, currency),
                ],
                description=f"pay-out {payout_id}: debt of {seller} netted",
                external_ref=payout_id,
                metadata={"source": "payment_svc", "reference": payout_id, "kind": "debt_netted"},
            ),
            _key(payout_id, "netpost"),
        )
        return int(reply.transaction.id)

    async def post_sent(self, payout_id: str, seller: str, amount: int, currency: str) -> int:
        reply = await self._call(
            self._ledger.PostTransaction,
            lpb.PostTransactionRequest(
                entries=[
                    _entry(naming.seller_payable(seller, currency), True, amount, currency),
                    _entry(naming.payouts_in_transit(currency), False, amount, currency),
                ],
                description=f"pay-out {payout_id} sent to {seller}",
                external_ref=payout_id,
                metadata={"source": "payment_svc", "reference": payout_id, "kind": "payout"},
            ),
            _key(payout_id, "post"),
        )
        return int(reply.transaction.id)

    async def post_write_off(self, key: str, seller: str, amount: int, currency: str, reason: str) -> int:
        """Dr expense:bad_debt / Cr seller_receivable: the platform gives up (part of) a seller's debt."""
        reply = await self._call(
            self._ledger.PostTransaction,
            lpb.PostTransactionRequest(
                entries=[
                    _entry(naming.expense_bad_debt(currency), True, amount, currency),
                    _entry(naming.seller_receivable(seller, currency), False, amount, currency),
                ],
                description=f"debt of {seller} written off: {reason}",
                external_ref=seller,
                metadata={"source": "payment_svc", "reference": seller, "kind": "debt_write_off"},
            ),
            ((IDEMPOTENCY_KEY_METADATA, key),),
        )
        return int(reply.transaction.id)

    async def post_sent_many(self, sent: Sequence[tuple[str, str, int, str]]) -> list[int | None]:
        """:meth:`post_sent` for many (payout id, seller, amount, currency) in one ``PostTransactions``
        call (at most 1000), each under its pay-out's own key (the single call's key space, so either
        replays the other); the transaction id of each, or None when the ledger refused that one."""
        reply = await self._call(
            self._ledger.PostTransactions,
            lpb.PostTransactionsRequest(
                items=[
                    lpb.PostTransactionsItem(
                        idempotency_key=f"payout:{payout_id}:post",
                        transaction=lpb.PostTransactionRequest(
                            entries=[
                                _entry(naming.seller_payable(seller, currency), True, amount, currency),
                                _entry(naming.payouts_in_transit(currency), False, amount, currency),
                            ],
                            description=f"pay-out {payout_id} sent to {seller}",
                            external_ref=payout_id,
                            metadata={"source": "payment_svc", "reference": payout_id, "kind": "payout"},
                        ),
                    )
                    for payout_id, seller, amount, currency in sent
                ]
            ),
            # The items carry the keys that matter; the call's own key only names this attempt.
            ((IDEMPOTENCY_KEY_METADATA, f"payout-batch:{uuid.uuid4().hex}"),),
        )
        return [None if r.HasField("error") else int(r.transaction.id) for r in reply.results]

    async def post_paid(self, payout_id: str, amount: int, currency: str) -> int:
        reply = await self._call(
            self._ledger.PostTransaction, _paid_request(payout_id, amount, currency), _key(payout_id, "paid")
        )
        return int(reply.transaction.id)

    async def reverse(self, payout_id: str, transaction_id: int, step: str, why: str) -> None:
        """Reverse a posting of the pay-out once (a reversal already made answers as done)."""
        try:
            await self._call(
                self._ledger.ReverseTransaction,
                lpb.ReverseTransactionRequest(
                    transaction_id=transaction_id,
                    description=f"pay-out {payout_id}: {why}",
                    external_ref=payout_id,
                    metadata={"source": "payment_svc", "reference": payout_id, "kind": f"payout_{step}"},
                ),
                _key(payout_id, step),
            )
        except FailedPrecondition as err:
            if err.reason != "ALREADY_REVERSED":
                raise

    async def capture(self, payout_id: str, reservation_id: str) -> None:
        await self._call(
            self._wallet.CaptureReservation,
            wpb.CaptureReservationRequest(
                reservation_id=reservation_id,
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=payout_id),
            ),
            _key(payout_id, "capture"),
        )

    async def release(self, payout_id: str, reservation_id: str) -> None:
        await self._call(
            self._wallet.Release,
            wpb.ReleaseRequest(
                reservation_id=reservation_id,
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=payout_id),
            ),
            _key(payout_id, "release"),
        )

    async def credit_back(self, payout_id: str, seller: str, amount: int, currency: str) -> None:
        """A paid pay-out came back: its captured money returns to the seller's available balance."""
        await self._call(
            self._wallet.Credit,
            wpb.CreditRequest(
                seller_id=seller,
                amount=money_pb2.Money(amount_minor=amount, currency=currency),
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=payout_id),
            ),
            _key(payout_id, "returned"),
        )
