"""Rules of the ledger. Transport-free: takes plain values and the unit of work, returns domain values
(``ledger_svc.domain``), raises DomainError. Each use case asks the unit of work for the kind of unit
it needs (``ledger_svc.uow``) and gives its connection to the repository.

Stateless rules (shape of a posting, balance per currency, positive amounts) are checked here before
the database is touched; stateful ones (closed accounts, account currency, non-negative balances,
reverse-once) are checked by the ``ledger_post`` function under the account row locks, so they hold
under any concurrency. Every refusal leaves nothing behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ledger_svc import chain, repository
from ledger_svc.domain import (
    Account,
    Balance,
    Direction,
    EntryLine,
    EntryView,
    Finding,
    FindingKind,
    Posting,
    Transaction,
    VerifyReport,
)
from ledger_svc.naming import (
    NON_NEGATIVE_PREFIXES,
    AccountType,
    check_currency,
    parse_account_name,
)
from ledger_svc.uow import LedgerUnitOfWork, RecordKey, StoredAnswer
from ledger_svc.validation import (
    MAX_DESCRIPTION,
    MAX_EXTERNAL_REF,
    checked_currency,
    checked_metadata,
    checked_text,
    validate_posting,
)
from svckit import pagination
from svckit.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unprocessable,
)
from svckit.protobuf import window_position
from svckit.reasons import Reason

__all__ = ["LedgerService"]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
# Transactions carry their entries, so their pages are smaller.
MAX_TRANSACTIONS_PAGE = 100
MAX_WINDOW_PAGE = 1000
"""A window listing is read whole by reconciliation: larger pages, fewer calls."""
DEFAULT_TRANSACTIONS_PAGE = 20


# Refusals the posting function reports, by reason; every other reason is a bug and raises.
_REFUSALS: dict[str, type[DomainError]] = {
    Reason.ACCOUNT_CLOSED: FailedPrecondition,
    Reason.INSUFFICIENT_BALANCE: FailedPrecondition,
    Reason.ALREADY_REVERSED: FailedPrecondition,
    Reason.CANNOT_REVERSE_REVERSAL: FailedPrecondition,
    Reason.BALANCE_OVERFLOW: FailedPrecondition,
    Reason.CURRENCY_MISMATCH: InvalidArgument,
    Reason.TRANSACTION_NOT_FOUND: NotFound,
    Reason.ACCOUNT_NOT_FOUND: NotFound,
    Reason.IDEMPOTENCY_KEY_IN_USE: Aborted,
    Reason.IDEMPOTENCY_KEY_REUSED: Unprocessable,
}


def _refusal(reason: str, message: str | None) -> DomainError:
    # The statements give a message with every reason; the reason stands in should one be missing.
    return _REFUSALS[reason](reason, message or reason)


def _to_account(row) -> Account:
    return Account(
        name=row.name,
        type=AccountType(row.type),
        currency=row.currency,
        created_at=row.created_at,
        non_negative=row.non_negative,
        closed_at=row.closed_at,
    )


def _signed(type_: AccountType, debits: int, credits: int) -> int:
    return debits - credits if type_.debit_normal else credits - debits


class LedgerService:
    def __init__(self, non_negative_prefixes: Sequence[str] = NON_NEGATIVE_PREFIXES) -> None:
        self._non_negative_prefixes = list(non_negative_prefixes)

    # --- accounts ---------------------------------------------------------------------------

    async def create_account(
        self, uow: LedgerUnitOfWork, name: str, currency: str, non_negative: bool = False
    ) -> Account:
        type_ = parse_account_name(name)
        currency = checked_currency(currency)
        check_currency(name, currency)
        async with uow.transaction() as conn:
            row = await repository.insert_account(conn, name, type_.value, currency, non_negative)
        if row is None:
            raise AlreadyExists("ACCOUNT_ALREADY_EXISTS", f"account {name!r} already exists", {"name": name})
        return _to_account(row)

    @staticmethod
    async def _account_row(conn: Any, name: str) -> Any:
        row = await repository.get_account(conn, name)
        if row is None:
            raise NotFound("ACCOUNT_NOT_FOUND", f"no account named {name!r}", {"name": name})
        return row

    async def get_account(self, uow: LedgerUnitOfWork, name: str) -> Account:
        async with uow.read() as conn:
            return _to_account(await self._account_row(conn, name))

    async def list_accounts(
        self, uow: LedgerUnitOfWork, name_prefix: str, page_size: int, page_token: str
    ) -> tuple[list[Account], str]:
        size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        listing = ["accounts", name_prefix]
        after = pagination.decode_token(page_token, listing, str) or ""
        async with uow.read() as conn:
            rows = await repository.list_accounts(conn, name_prefix, after, size + 1)
        accounts = [_to_account(r) for r in rows[:size]]
        next_token = pagination.encode_token(listing, accounts[-1].name) if len(rows) > size else ""
        return accounts, next_token

    async def close_account(self, uow: LedgerUnitOfWork, name: str) -> Account:
        async with uow.transaction() as conn:
            row = await repository.close_account(conn, name)
            if row is None:
                row = await self._account_row(conn, name)  # already closed: answer it unchanged
        return _to_account(row)

    # --- postings ---------------------------------------------------------------------------

    async def post_transaction(
        self, uow: LedgerUnitOfWork, posting: Posting, key: RecordKey
    ) -> Transaction | StoredAnswer:
        """Post one transaction once per key, in one statement (its own unit of work): the new
        transaction, or the stored answer of the key's first use (replayed). Raises on refusal;
        nothing is written then."""
        posting = validate_posting(posting)
        item = repository.item_json(posting, uow.record(posting, key))
        async with uow.statement() as conn:
            (row,) = await repository.post(conn, [item], self._non_negative_prefixes)
        if row.o_stored is not None:
            return StoredAnswer(bytes(row.o_stored), replayed=True)
        if row.o_reason is not None:
            raise _refusal(row.o_reason, row.o_message)
        return self._transaction(row, posting)

    async def post_transactions(
        self,
        uow: LedgerUnitOfWork,
        items: Sequence[tuple[Posting, RecordKey] | DomainError],
        *,
        validated: bool = False,
    ) -> list[StoredAnswer | DomainError]:
        """Post each item on its own in one unit of work (one statement, one round trip); refusals
        don't spread. Per item: the answer stored under its key (a new transaction's, or replayed),
        or its refusal.

        An item given as a DomainError was refused by the caller (e.g. a bad key) and is passed through.
        ``validated``: every posting already went through ``validate_posting`` (the coalescer's case).
        """
        outcomes: list[StoredAnswer | DomainError | None] = []
        to_post: list[int] = []  # where each posted item's outcome goes
        keyed: list[tuple[Posting, RecordKey]] = []
        for item in items:
            if isinstance(item, DomainError):
                outcomes.append(item)
                continue
            posting, key = item
            try:
                valid = posting if validated else validate_posting(posting)
            except DomainError as err:
                outcomes.append(err)
                continue
            to_post.append(len(outcomes))
            keyed.append((valid, key))
            outcomes.append(None)
        if keyed:
            columns = repository.batch_columns(
                [(p, uow.record(p, k)) for p, k in keyed], self._non_negative_prefixes
            )
            async with uow.batch_statement() as conn:
                rows = await repository.post_batch(conn, columns)
            for index, (stored, reason, message, answer) in zip(to_post, rows, strict=True):
                if stored is not None:
                    outcomes[index] = StoredAnswer(stored, replayed=True)
                elif reason is not None:
                    outcomes[index] = _refusal(reason, message)
                elif answer is not None:  # the answer stored for the new transaction
                    outcomes[index] = StoredAnswer(answer, replayed=False)
                else:
                    raise RuntimeError("ledger_post_batch gave an item no outcome")
        return [o for o in outcomes if o is not None]

    async def reverse_transaction(
        self,
        uow: LedgerUnitOfWork,
        transaction_id: int,
        description: str = "",
        external_ref: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> Transaction:
        """Post the mirror image of a transaction; at most once per transaction, even concurrently."""
        posting = Posting(
            entries=(),
            description=checked_text(
                description or f"reversal of {transaction_id}", MAX_DESCRIPTION, "description"
            ),
            external_ref=checked_text(external_ref, MAX_EXTERNAL_REF, "external_ref"),
            metadata=checked_metadata(metadata or {}),
        )
        async with uow.transaction() as conn:
            (row,) = await repository.post(
                conn, [repository.item_json(posting, reverses=transaction_id)], self._non_negative_prefixes
            )
        if row.o_reason is not None:
            raise _refusal(row.o_reason, row.o_message)
        mirrored = row.o_entries
        lines = tuple(
            EntryLine(a, Direction(d), int(m), c)
            for a, d, m, c in zip(mirrored["a"], mirrored["d"], mirrored["m"], mirrored["c"], strict=True)
        )
        return self._transaction(row, Posting(lines, posting.description, posting.external_ref, posting.metadata),
                                 reverses_id=transaction_id)  # fmt: skip

    @staticmethod
    def _transaction(row: Any, posting: Posting, reverses_id: int | None = None) -> Transaction:
        return Transaction(
            id=row.o_tx_id,
            entries=posting.entries,
            description=posting.description,
            external_ref=posting.external_ref,
            metadata=dict(posting.metadata),
            posted_at=row.o_posted_at,
            reverses_id=reverses_id,
        )

    async def get_transaction(self, uow: LedgerUnitOfWork, transaction_id: int) -> Transaction:
        async with uow.read() as conn:
            row = await repository.get_transaction(conn, transaction_id)
            if row is None:
                raise NotFound(
                    "TRANSACTION_NOT_FOUND",
                    f"no transaction with id {transaction_id}",
                    {"id": str(transaction_id)},
                )
            entry_rows = await repository.transaction_entries(conn, transaction_id)
        return self._stored(row, entry_rows)

    @staticmethod
    def _stored(row: Any, entry_rows: Sequence[Any]) -> Transaction:
        lines = tuple(EntryLine(e.name, Direction(e.direction), e.amount, e.currency) for e in entry_rows)
        return Transaction(
            id=row.id,
            entries=lines,
            description=row.description,
            external_ref=row.external_ref,
            metadata=dict(row.metadata),
            posted_at=row.posted_at,
            reverses_id=row.reverses_id,
            sequence=row.seq or 0,
            hash=bytes(row.hash or b""),
            previous_hash=bytes(row.prev_hash or b""),
        )

    async def list_transactions(
        self,
        uow: LedgerUnitOfWork,
        external_ref: str,
        page_size: int,
        page_token: str,
        window: tuple[datetime, datetime] | None = None,
    ) -> tuple[list[Transaction], str]:
        """The transactions of one business event, oldest first, with their entries; with a ``window``,
        those posted in it (of ``external_ref`` when given)."""
        if window is not None:
            return await self._transactions_posted(uow, external_ref, page_size, page_token, window)
        if not external_ref:
            raise InvalidArgument("MISSING_FIELD", "external_ref is required", field="external_ref")
        external_ref = checked_text(external_ref, MAX_EXTERNAL_REF, "external_ref")
        size = pagination.page_size(
            page_size, default=DEFAULT_TRANSACTIONS_PAGE, maximum=MAX_TRANSACTIONS_PAGE
        )
        listing = ["transactions", external_ref]
        after = pagination.decode_token(page_token, listing, int) or 0
        async with uow.read() as conn:
            rows = await repository.transactions_by_ref(conn, external_ref, after, size + 1)
            more, rows = len(rows) > size, rows[:size]
            entry_rows = await repository.entries_of(conn, [r.id for r in rows]) if rows else []
        by_tx: dict[int, list[Any]] = defaultdict(list)
        for e in entry_rows:
            by_tx[e.transaction_id].append(e)
        found = [self._stored(r, by_tx[r.id]) for r in rows]
        return found, pagination.encode_token(listing, found[-1].id) if more else ""

    async def _transactions_posted(
        self,
        uow: LedgerUnitOfWork,
        external_ref: str,
        page_size: int,
        page_token: str,
        window: tuple[datetime, datetime],
    ) -> tuple[list[Transaction], str]:
        if external_ref:
            external_ref = checked_text(external_ref, MAX_EXTERNAL_REF, "external_ref")
        size = pagination.page_size(page_size, default=DEFAULT_TRANSACTIONS_PAGE, maximum=MAX_WINDOW_PAGE)
        listing = ["posted", external_ref, window[0].isoformat(), window[1].isoformat()]
        after = window_position(pagination.decode_token(page_token, listing, list), int)
        async with uow.read() as conn:
            rows = await repository.transactions_posted(conn, window, external_ref, after, size + 1)
            more, rows = len(rows) > size, rows[:size]
            entry_rows = await repository.entries_of(conn, [r.id for r in rows]) if rows else []
        by_tx: dict[int, list[Any]] = defaultdict(list)
        for e in entry_rows:
            by_tx[e.transaction_id].append(e)
        found = [self._stored(r, by_tx[r.id]) for r in rows]
        last = rows[-1] if rows else None
        token = (
            pagination.encode_token(listing, [last.posted_at.isoformat(), last.id]) if more and last else ""
        )
        return found, token

    # --- balances and entries ---------------------------------------------------------------

    async def get_balance(
        self, uow: LedgerUnitOfWork, account: str, as_of: datetime | None = None
    ) -> Balance:
        async with uow.read() as conn:
            row = await self._account_row(conn, account)
            if as_of is None:
                debits, credits, last_tx = row.debits_posted, row.credits_posted, row.last_transaction_id
            else:
                totals = await repository.totals_as_of(conn, row.id, as_of)
                debits, credits, last_tx = int(totals.debits), int(totals.credits), int(totals.last_tx)
        return Balance(
            account=row.name,
            currency=row.currency,
            debits_minor=debits,
            credits_minor=credits,
            balance_minor=_signed(AccountType(row.type), debits, credits),
            last_transaction_id=last_tx,
        )

    async def get_balances(self, uow: LedgerUnitOfWork, names: Sequence[str]) -> list[Balance]:
        """The current balance of each named account that exists, in the order named (one read)."""
        async with uow.read() as conn:
            rows = {row.name: row for row in await repository.get_accounts(conn, names)}
        return [
            Balance(
                account=row.name,
                currency=row.currency,
                debits_minor=row.debits_posted,
                credits_minor=row.credits_posted,
                balance_minor=_signed(AccountType(row.type), row.debits_posted, row.credits_posted),
                last_transaction_id=row.last_transaction_id,
            )
            for row in (rows.get(name) for name in names)
            if row is not None
        ]

    async def list_entries(
        self, uow: LedgerUnitOfWork, account: str, page_size: int, page_token: str
    ) -> tuple[list[EntryView], str]:
        listing = ["entries", account]
        async with uow.read() as conn:
            row = await self._account_row(conn, account)
            size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
            after = pagination.decode_token(page_token, listing, int) or 0
            rows = await repository.list_entries(conn, row.id, after, size + 1)
        views = [
            EntryView(r.id, r.transaction_id, Direction(r.direction), r.amount, r.currency, r.posted_at)
            for r in rows[:size]
        ]
        next_token = pagination.encode_token(listing, views[-1].entry_id) if len(rows) > size else ""
        return views, next_token

    # --- hash chain -------------------------------------------------------------------------

    async def link_pending(self, uow: LedgerUnitOfWork, limit: int = 5000) -> int:
        """Link up to ``limit`` queued transactions into the hash chain; how many were linked. One
        statement, which is its own transaction (the chainer's pass)."""
        async with uow.statement() as conn:
            return await repository.link_pending(conn, limit)

    # --- verification -----------------------------------------------------------------------

    async def verify_ledger(
        self, uow: LedgerUnitOfWork, max_findings: int = 1000, link_batch: int = 5000
    ) -> VerifyReport:
        """Link what is queued, then check the ledger (``check_ledger``): the report then covers every
        transaction committed so far."""
        while await self.link_pending(uow, link_batch) >= link_batch:
            pass
        return await self.check_ledger(uow, max_findings)

    async def check_ledger(self, uow: LedgerUnitOfWork, max_findings: int = 1000) -> VerifyReport:
        """Recompute the chain, the balance of every transaction and every account from the entries,
        all on one snapshot."""
        async with uow.snapshot() as conn:
            return await self._check(conn, max_findings)

    async def _check(self, conn: Any, max_findings: int) -> VerifyReport:
        report = VerifyReport()
        limit = max_findings if max_findings > 0 else 1000

        def found(finding: Finding) -> None:
            if len(report.findings) < limit:
                report.findings.append(finding)
            else:
                report.truncated = True

        previous = chain.GENESIS_HASH
        expected_seq = 1
        async for row in repository.walk_chain(conn):
            report.transactions_checked += 1
            if row.seq != expected_seq:
                found(Finding(FindingKind.SEQUENCE_GAP, row.transaction_id, expected=str(expected_seq),
                              actual=str(row.seq), detail="chain sequence numbers must be gapless"))  # fmt: skip
            prev_hash, stored_hash = bytes(row.prev_hash), bytes(row.hash)
            if prev_hash != previous:
                found(Finding(FindingKind.CHAIN_BROKEN, row.transaction_id, expected=previous.hex(),
                              actual=prev_hash.hex(), detail="previous_hash differs from the prior link"))  # fmt: skip
            names = row.names or []
            lines = list(
                zip(names, row.directions or [], row.amounts or [], row.currencies or [], strict=True)
            )
            canonical = chain.payload(
                seq=row.seq,
                tx_id=row.transaction_id,
                posted_at=row.posted_at,
                reverses_id=row.reverses_id,
                description=row.description,
                external_ref=row.external_ref,
                metadata=row.metadata,
                entries=lines,
            )
            recomputed = chain.link_hash(canonical, prev_hash)
            if recomputed != stored_hash:
                found(Finding(FindingKind.HASH_MISMATCH, row.transaction_id, expected=recomputed.hex(),
                              actual=stored_hash.hex(), detail="transaction or entries changed after commit"))  # fmt: skip
            sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for (name, direction, amount, currency), account_currency in zip(
                lines, row.account_currencies or [], strict=True
            ):
                sums[currency][0 if direction == "D" else 1] += amount
                if currency != account_currency:
                    found(Finding(FindingKind.CURRENCY_MISMATCH, row.transaction_id, account=name,
                                  expected=account_currency, actual=currency))  # fmt: skip
            if len(lines) < 2:
                found(Finding(FindingKind.UNBALANCED_TRANSACTION, row.transaction_id, expected=">= 2 entries",
                              actual=str(len(lines))))  # fmt: skip
            for currency, (debits, credits) in sorted(sums.items()):
                if debits != credits:
                    found(Finding(FindingKind.UNBALANCED_TRANSACTION, row.transaction_id,
                                  expected=f"credits {debits}", actual=f"credits {credits}",
                                  detail=f"{currency} debits {debits} != credits {credits}"))  # fmt: skip
            previous = stored_hash
            expected_seq = row.seq + 1

        head = await repository.get_chain_head(conn)
        if head.last_seq != expected_seq - 1 or bytes(head.last_hash) != previous:
            found(Finding(FindingKind.CHAIN_HEAD_MISMATCH, expected=f"{expected_seq - 1}:{previous.hex()}",
                          actual=f"{head.last_seq}:{bytes(head.last_hash).hex()}"))  # fmt: skip
        for unchained in await repository.unchained_transactions(conn):
            if unchained.queued:
                report.pending_link += 1  # committed after the chainer's last pass; not a problem
            else:
                found(Finding(FindingKind.UNCHAINED_TRANSACTION, unchained.id,
                              detail="transaction has no chain link and is not queued for one"))  # fmt: skip

        async for acc in repository.account_sums(conn):
            report.accounts_checked += 1
            for side, stored, summed in (
                ("debits", acc.debits_posted, int(acc.entry_debits)),
                ("credits", acc.credits_posted, int(acc.entry_credits)),
            ):
                if stored != summed:
                    found(Finding(FindingKind.BALANCE_MISMATCH, account=acc.name, expected=str(summed),
                                  actual=str(stored), detail=f"stored {side} total vs sum of entries"))  # fmt: skip
            balance = _signed(AccountType(acc.type), int(acc.entry_debits), int(acc.entry_credits))
            if acc.non_negative and balance < 0:
                found(Finding(FindingKind.NEGATIVE_BALANCE, account=acc.name, expected=">= 0",
                              actual=str(balance)))  # fmt: skip
        return report
