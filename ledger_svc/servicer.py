"""gRPC transport of ledger.v1.LedgerService: translate messages (``ledger_svc.wire``), call the service
with the unit of work, nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC as _UTC

import grpc

from ledger_svc import wire
from ledger_svc.coalescer import PostingCoalescer
from ledger_svc.domain import Posting, Transaction
from ledger_svc.service import LedgerService
from ledger_svc.uow import LedgerUnitOfWork, RecordKey, StoredAnswer
from ledger_svc.wire import BATCH_SCOPE, POST_SCOPE
from svckit.context import REPLAYED_METADATA, idempotency_key_var
from svckit.errors import Aborted, DomainError, InvalidArgument, Unprocessable
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.idempotency import validate_key
from svckit.metrics import IDEMPOTENCY_CONFLICTS, IDEMPOTENT_REPLAYS
from svckit.protobuf import time_window

MAX_BATCH_ITEMS = 1000


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(
        self,
        service: LedgerService,
        uow: LedgerUnitOfWork,
        coalescer: PostingCoalescer | None = None,
        batch_max_in_flight: int = 0,
    ) -> None:
        self._service = service
        self._uow = uow
        self._coalescer = coalescer
        # See LedgerSettings.batch_max_in_flight; None = no limit.
        self._batch_slots = asyncio.Semaphore(batch_max_in_flight) if batch_max_in_flight else None

    async def _once(self, context: grpc.aio.ServicerContext, scope: str, request, response_type, work):
        """Run ``work(uow)`` once per the call's idempotency key; flag a replay in the metadata."""
        response, replayed = await self._uow.once(
            scope, idempotency_key_var.get() or "", request, response_type, work
        )
        if replayed:
            await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
        return response

    async def CreateAccount(self, request: pb.CreateAccountRequest, context: grpc.aio.ServicerContext):
        async def work(uow: LedgerUnitOfWork) -> pb.CreateAccountResponse:
            account = await self._service.create_account(
                uow, request.name, request.currency, request.non_negative
            )
            return pb.CreateAccountResponse(account=wire.account_to_pb(account))

        return await self._once(context, "ledger.CreateAccount", request, pb.CreateAccountResponse, work)

    async def GetAccount(self, request: pb.GetAccountRequest, context: grpc.aio.ServicerContext):
        account = await self._service.get_account(self._uow, request.name)
        return pb.GetAccountResponse(account=wire.account_to_pb(account))

    async def ListAccounts(self, request: pb.ListAccountsRequest, context: grpc.aio.ServicerContext):
        accounts, token = await self._service.list_accounts(
            self._uow, request.name_prefix, request.page_size, request.page_token
        )
        return pb.ListAccountsResponse(
            accounts=[wire.account_to_pb(a) for a in accounts], next_page_token=token
        )

    async def CloseAccount(self, request: pb.CloseAccountRequest, context: grpc.aio.ServicerContext):
        async def work(uow: LedgerUnitOfWork) -> pb.CloseAccountResponse:
            account = await self._service.close_account(uow, request.name)
            return pb.CloseAccountResponse(account=wire.account_to_pb(account))

        return await self._once(context, "ledger.CloseAccount", request, pb.CloseAccountResponse, work)

    async def PostTransaction(self, request: pb.PostTransactionRequest, context: grpc.aio.ServicerContext):
        # svckit.idempotency's protocol, run inside the posting function: the key's lock, replay or
        # refusal, the effect and the stored answer all happen in one statement, one round trip.
        # With a coalescer, concurrent calls share one batch statement with the same answers.
        posting, key = wire.keyed_posting(validate_key(idempotency_key_var.get()), request)
        outcome: Transaction | StoredAnswer
        try:
            if self._coalescer is not None:
                outcome = await self._coalescer.post(posting, key)
            else:
                outcome = await self._service.post_transaction(self._uow, posting, key)
        except (Aborted, Unprocessable) as err:
            IDEMPOTENCY_CONFLICTS.labels(POST_SCOPE, err.reason).inc()
            raise
        if isinstance(outcome, StoredAnswer):  # the answer stored under the key, exactly
            if outcome.replayed:
                IDEMPOTENT_REPLAYS.labels(POST_SCOPE).inc()
                await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
            return pb.PostTransactionResponse.FromString(outcome.data)
        return pb.PostTransactionResponse(transaction=wire.transaction_to_pb(outcome))

    async def PostTransactions(self, request: pb.PostTransactionsRequest, context: grpc.aio.ServicerContext):
        if len(request.items) > MAX_BATCH_ITEMS:
            raise InvalidArgument(
                "TOO_MANY_ITEMS", f"at most {MAX_BATCH_ITEMS} items per call", field="items"
            )
        items: list[tuple[Posting, RecordKey] | DomainError] = []
        seen: set[str] = set()
        for i, item in enumerate(request.items):
            try:
                key = validate_key(item.idempotency_key)
                if key in seen:
                    raise InvalidArgument(
                        "DUPLICATE_ITEM_KEY",
                        f"item {i} repeats the idempotency key of an earlier item",
                        field=f"items[{i}].idempotency_key",
                    )
            except DomainError as err:
                items.append(err)
                continue
            seen.add(key)
            items.append(wire.keyed_posting(key, item.transaction))

        # The call's key is claimed (held for the call, replayed once finished) around the batch's
        # single statement: the batch's account locks are then held only for that statement and its
        # commit, not while the answer is assembled and the call's record written. Each item is
        # idempotent on its own key inside the statement, so a call that committed its batch but died
        # before finishing is resumed by its retry: every posted item replays its transaction.
        async with self._uow.claim(BATCH_SCOPE, idempotency_key_var.get(), request) as claim:
            replayed = claim.replay(pb.PostTransactionsResponse)
            if replayed is not None:
                await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
                return replayed
            async with self._batch_slot():
                outcomes = await self._service.post_transactions(self._uow, items)
            response = wire.batch_response(outcomes)
            answer = await claim.finish(response)
            if answer is not response:  # the same call finished first (see Claim.finish)
                await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
            return answer

    def _batch_slot(self) -> contextlib.AbstractAsyncContextManager:
        return self._batch_slots if self._batch_slots is not None else contextlib.nullcontext()

    async def ReverseTransaction(
        self, request: pb.ReverseTransactionRequest, context: grpc.aio.ServicerContext
    ):
        async def work(uow: LedgerUnitOfWork) -> pb.ReverseTransactionResponse:
            tx = await self._service.reverse_transaction(
                uow,
                request.transaction_id,
                request.description,
                request.external_ref,
                dict(request.metadata),
            )
            return pb.ReverseTransactionResponse(transaction=wire.transaction_to_pb(tx))

        return await self._once(
            context, "ledger.ReverseTransaction", request, pb.ReverseTransactionResponse, work
        )

    async def GetTransaction(self, request: pb.GetTransactionRequest, context: grpc.aio.ServicerContext):
        tx = await self._service.get_transaction(self._uow, request.transaction_id)
        return pb.GetTransactionResponse(transaction=wire.transaction_to_pb(tx))

    async def ListTransactions(self, request: pb.ListTransactionsRequest, context: grpc.aio.ServicerContext):
        window = time_window(request, "post_time_from", "post_time_before")
        found, token = await self._service.list_transactions(
            self._uow, request.external_ref, request.page_size, request.page_token, window
        )
        return pb.ListTransactionsResponse(
            transactions=[wire.transaction_to_pb(t) for t in found], next_page_token=token
        )

    async def GetBalance(self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext):
        as_of = request.as_of.ToDatetime(tzinfo=_UTC) if request.HasField("as_of") else None
        return wire.balance_to_pb(await self._service.get_balance(self._uow, request.account, as_of))

    async def GetBalances(self, request: pb.GetBalancesRequest, context: grpc.aio.ServicerContext):
        if len(request.accounts) > MAX_BATCH_ITEMS:
            raise InvalidArgument(
                "TOO_MANY_ITEMS", f"at most {MAX_BATCH_ITEMS} accounts per call", field="accounts"
            )
        balances = await self._service.get_balances(self._uow, list(request.accounts))
        return pb.GetBalancesResponse(balances=[wire.balance_to_pb(b) for b in balances])

    async def ListEntries(self, request: pb.ListEntriesRequest, context: grpc.aio.ServicerContext):
        views, token = await self._service.list_entries(
            self._uow, request.account, request.page_size, request.page_token
        )
        return pb.ListEntriesResponse(
            entries=[wire.entry_view_to_pb(v) for v in views], next_page_token=token
        )

    async def VerifyLedger(self, request: pb.VerifyLedgerRequest, context: grpc.aio.ServicerContext):
        return wire.report_to_pb(await self._service.verify_ledger(self._uow, request.max_findings))
