"""Rules of the ledger. Transport-free: takes plain values and a connection, raises DomainError.

Stateless rules (shape of a posting, balance per currency, positive amounts) are checked here before
the database is touched; stateful ones (closed accounts, account currency, non-negative balances,
reverse-once) are checked by the ``ledger_post`` function under the account row locks, so they hold
under any concurrency. Every refusal leaves nothing behind.
"""

from __future__ import annotations

import enum
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_svc import chain, repository
from ledger_svc.naming import (
    NON_NEGATIVE_PREFIXES,
    AccountType,
    check_currency,
    parse_account,
    parse_account_name,
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
from svckit.money import MoneyError, normalize_currency
from svckit.reasons import Reason

__all__ = ["AccountType", "LedgerService", "parse_account_name"]

MAX_ENTRIES = 100
MAX_DESCRIPTION = 1024
MAX_EXTERNAL_REF = 256
MAX_METADATA_PAIRS = 64
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 1024
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
_INT64_MAX = 2**63 - 1


class Direction(enum.StrEnum):
    DEBIT = "D"
    CREDIT = "C"


@dataclass(frozen=True)
class Account:
    name: str
    type: AccountType
    currency: str
    created_at: datetime
    non_negative: bool = False
    closed_at: datetime | None = None


@dataclass(frozen=True)
class EntryLine:
    account: str
    direction: Direction
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Posting:
    entries: tuple[EntryLine, ...]
    description: str = ""
    external_ref: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Transaction:
    id: int
    entries: tuple[EntryLine, ...]
    description: str
    external_ref: str
    metadata: Mapping[str, str]
    posted_at: datetime
    reverses_id: int | None = None
    # Set once the transaction is linked into the chain, i.e. after its commit.
    sequence: int = 0
    hash: bytes = b""
    previous_hash: bytes = b""


@dataclass(frozen=True)
class ItemKey:
    """A posting's idempotency key, handled by the posting function with svckit.idempotency's
    protocol and table (scope, key, advisory lock id, request fingerprint).

    ``encode_answer`` gives the stored answer's bytes for a validated posting, less the id and post
    time that the database assigns and appends (``ledger_post_response``); it comes from the
    transport, which owns the wire format.
    """

    scope: str
    key: str
    lock_id: int
    fingerprint: bytes
    encode_answer: Callable[[Posting], bytes]


@dataclass(frozen=True)
class ItemOutcome:
    """Exactly one of: a new transaction, a refusal, or the stored answer of an earlier use of the key.

    A new transaction comes as ``transaction`` from the single path, and from the batch path as
    ``answer`` only: the answer stored under its key (made from the key's ``encode_answer`` by the
    database), which the transport sends as is, so no ``Transaction`` is built that nobody reads.
    """

    transaction: Transaction | None = None
    error: DomainError | None = None
    stored_response: bytes | None = None
    answer: bytes | None = None


@dataclass(frozen=True)
class Balance:
    account: str
    currency: str
    debits_minor: int
    credits_minor: int
    balance_minor: int
    last_transaction_id: int


@dataclass(frozen=True)
class EntryView:
    entry_id: int
    transaction_id: int
    direction: Direction
    amount_minor: int
    currency: str
    posted_at: datetime


class FindingKind(enum.StrEnum):
    HASH_MISMATCH = "HASH_MISMATCH"
    CHAIN_BROKEN = "CHAIN_BROKEN"
    SEQUENCE_GAP = "SEQUENCE_GAP"
    UNBALANCED_TRANSACTION = "UNBALANCED_TRANSACTION"
    BALANCE_MISMATCH = "BALANCE_MISMATCH"
    CHAIN_HEAD_MISMATCH = "CHAIN_HEAD_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    NEGATIVE_BALANCE = "NEGATIVE_BALANCE"
    UNCHAINED_TRANSACTION = "UNCHAINED_TRANSACTION"


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    transaction_id: int = 0
    account: str = ""
    expected: str = ""
    actual: str = ""
    detail: str = ""


@dataclass
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    transactions_checked: int = 0
    accounts_checked: int = 0
    truncated: bool = False
    pending_link: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings and not self.truncated


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


# Valid codes already normalized (a few hundred at most: only codes that passed are kept).
_NORMALIZED_CURRENCIES: dict[str, str] = {}


def _currency(code: str, field_name: str = "currency") -> str:
    known = _NORMALIZED_CURRENCIES.get(code)
    if known is not None:
        return known
    try:
        normalized = normalize_currency(code)
    except MoneyError as exc:
        raise InvalidArgument(exc.reason, str(exc), field=field_name) from None
    _NORMALIZED_CURRENCIES[code] = normalized
    return normalized


def _text(value: str, limit: int, field_name: str) -> str:
    if len(value) > limit:
        raise InvalidArgument(
            "TEXT_TOO_LONG", f"{field_name} is longer than {limit} characters", field=field_name
        )
    if "\x00" in value:
        raise InvalidArgument("INVALID_TEXT", f"{field_name} contains a NUL character", field=field_name)
    return value


def _metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidArgument(
            "TOO_MANY_METADATA_PAIRS", f"at most {MAX_METADATA_PAIRS} metadata pairs", field="metadata"
        )
    return {
        _text(k, MAX_METADATA_KEY, "metadata key"): _text(v, MAX_METADATA_VALUE, "metadata value")
        for k, v in metadata.items()
    }


def validate_posting(posting: Posting) -> Posting:
    """Check everything that needs no database; return the posting with normalized currencies.

    Postings that are already normal (the common case: upper-case currencies, ``Direction``
    members, a plain dict of metadata) come back as the same object, without copies."""
    entries = posting.entries
    if len(entries) < 2:
        raise InvalidArgument("TOO_FEW_ENTRIES", "a transaction needs at least two entries", field="entries")
    if len(entries) > MAX_ENTRIES:
        raise InvalidArgument("TOO_MANY_ENTRIES", f"at most {MAX_ENTRIES} entries", field="entries")
    unchanged = True
    account_currency: dict[str, str] = {}
    sums: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        _, named_currency = parse_account(entry.account)
        direction = entry.direction
        if direction is not Direction.DEBIT and direction is not Direction.CREDIT:
            if direction not in (Direction.DEBIT, Direction.CREDIT):  # a plain "D" / "C" is fine too
                raise InvalidArgument(
                    "INVALID_DIRECTION",
                    f"entry {i}: direction must be debit or credit",
                    field=f"entries[{i}]",
                )
            unchanged = False
        if entry.amount_minor <= 0:
            raise InvalidArgument(
                "AMOUNT_NOT_POSITIVE",
                f"entry {i}: amount_minor must be positive, got {entry.amount_minor}",
                field=f"entries[{i}].amount_minor",
            )
        currency = _NORMALIZED_CURRENCIES.get(entry.currency) or _currency(
            entry.currency, f"entries[{i}].currency"
        )
        if currency != entry.currency:
            unchanged = False
        if named_currency is not None and named_currency != currency:
            # The ledger opens an account on first use in its entry's currency: checking the name's
            # suffix here, before posting, keeps every account in the currency its name says.
            raise InvalidArgument(
                "CURRENCY_MISMATCH",
                f"entry {i}: account {entry.account} is named for {named_currency}, not {currency}",
                field=f"entries[{i}].currency",
                account=entry.account,
            )
        seen = account_currency.setdefault(entry.account, currency)
        if seen != currency:
            raise InvalidArgument(
                "CURRENCY_MISMATCH",
                f"account {entry.account} appears in {seen} and {currency} in one transaction",
                field=f"entries[{i}].currency",
            )
        total = sums.get(currency)
        if total is None:
            total = sums[currency] = [0, 0]
        total[0 if direction == Direction.DEBIT else 1] += entry.amount_minor
    for currency, (debits, credits) in sorted(sums.items()):
        if debits != credits:
            raise InvalidArgument(
                "UNBALANCED_TRANSACTION",
                f"{currency} debits {debits} != credits {credits}",
                field="entries",
                currency=currency,
            )
        if debits > _INT64_MAX:
            raise InvalidArgument("AMOUNT_TOO_LARGE", f"{currency} total exceeds int64", field="entries")
    description = _text(posting.description, MAX_DESCRIPTION, "description")
    external_ref = _text(posting.external_ref, MAX_EXTERNAL_REF, "external_ref")
    metadata = _metadata(posting.metadata) if posting.metadata else posting.metadata
    if unchanged and (not metadata or type(posting.metadata) is dict):
        return posting
    return Posting(
        entries=tuple(
            EntryLine(e.account, Direction(e.direction), e.amount_minor, _currency(e.currency))
            for e in entries
        ),
        description=description,
        external_ref=external_ref,
        metadata=metadata or {},
    )


def _item_json(posting: Posting, key: ItemKey | None = None, reverses: int | None = None) -> dict:
    item: dict = {
        "a": [e.account for e in posting.entries],
        "d": [e.direction.value for e in posting.entries],
        "m": [e.amount_minor for e in posting.entries],
        "c": [e.currency for e in posting.entries],
        "desc": posting.description,
        "ref": posting.external_ref,
        "meta": dict(posting.metadata),
    }
    if reverses is not None:
        item["rev"] = reverses
    if key is not None:
        item["key"] = {
            "scope": key.scope,
            "key": key.key,
            "lock": key.lock_id,
            "fp": key.fingerprint.hex(),
            "tpl": key.encode_answer(posting).hex(),
        }
    return item


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
        self, conn: AsyncConnection, name: str, currency: str, non_negative: bool = False
    ) -> Account:
        type_ = parse_account_name(name)
        currency = _currency(currency)
        check_currency(name, currency)
        row = await repository.insert_account(conn, name, type_.value, currency, non_negative)
        if row is None:
            raise AlreadyExists("ACCOUNT_ALREADY_EXISTS", f"account {name!r} already exists", {"name": name})
        return _to_account(row)

    async def _account_row(self, conn: AsyncConnection, name: str):
        row = await repository.get_account(conn, name)
        if row is None:
            raise NotFound("ACCOUNT_NOT_FOUND", f"no account named {name!r}", {"name": name})
        return row

    async def get_account(self, conn: AsyncConnection, name: str) -> Account:
        return _to_account(await self._account_row(conn, name))

    async def list_accounts(
        self, conn: AsyncConnection, name_prefix: str, page_size: int, page_token: str
    ) -> tuple[list[Account], str]:
        size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        listing = ["accounts", name_prefix]
        after = pagination.decode_token(page_token, listing, str) or ""
        rows = await repository.list_accounts(conn, name_prefix, after, size + 1)
        accounts = [_to_account(r) for r in rows[:size]]
        next_token = pagination.encode_token(listing, accounts[-1].name) if len(rows) > size else ""
        return accounts, next_token

    async def close_account(self, conn: AsyncConnection, name: str) -> Account:
        row = await repository.close_account(conn, name)
        if row is None:
            row = await self._account_row(conn, name)  # already closed: answer it unchanged
        return _to_account(row)

    # --- postings ---------------------------------------------------------------------------

    async def post_transaction(self, conn: AsyncConnection, posting: Posting, key: ItemKey) -> ItemOutcome:
        """Post one transaction once per key, in one statement (its own unit of work on an autocommit
        connection): the new transaction, or the stored answer of the key's first use. Raises on
        refusal; nothing is written then."""
        posting = validate_posting(posting)
        (row,) = await repository.post(conn, [_item_json(posting, key)], self._non_negative_prefixes)
        if row.o_stored is not None:
            return ItemOutcome(stored_response=bytes(row.o_stored))
        if row.o_reason is not None:
            raise _refusal(row.o_reason, row.o_message)
        return ItemOutcome(transaction=self._transaction(row, posting))

    async def post_transactions(
        self,
        conn: psycopg.AsyncConnection,
        items: Sequence[tuple[Posting, ItemKey] | DomainError],
        *,
        validated: bool = False,
    ) -> list[ItemOutcome]:
        """Post each item on its own in one unit of work and one round trip; refusals don't spread.

        ``conn``: a plain psycopg connection in autocommit mode, so the one statement is the unit of
        work (see ``repository.post_batch``).
        An item given as a DomainError was refused by the caller (e.g. a bad key) and is passed through.
        ``validated``: every posting already went through ``validate_posting`` (the coalescer's case).
        """
        outcomes: list[ItemOutcome | None] = []
        to_post: list[int] = []  # where each posted item's outcome goes
        keyed: list[tuple[Posting, ItemKey]] = []
        for item in items:
            if isinstance(item, DomainError):
                outcomes.append(ItemOutcome(error=item))
                continue
            posting, key = item
            try:
                valid = posting if validated else validate_posting(posting)
            except DomainError as err:
                outcomes.append(ItemOutcome(error=err))
                continue
            to_post.append(len(outcomes))
            keyed.append((valid, key))
            outcomes.append(None)
        if keyed:
            rows = await self._post_batch(conn, keyed)
            for index, (stored, reason, message, answer) in zip(to_post, rows, strict=True):
                if stored is not None:
                    outcomes[index] = ItemOutcome(stored_response=stored)
                elif reason is not None:
                    outcomes[index] = ItemOutcome(error=_refusal(reason, message))
                else:  # the stored answer is the new transaction, ready for the transport
                    outcomes[index] = ItemOutcome(answer=answer)
        return [o for o in outcomes if o is not None]

    async def _post_batch(
        self, conn: psycopg.AsyncConnection, items: list[tuple[Posting, ItemKey]]
    ) -> list[repository.BatchRow]:
        """One statement for the whole batch (``ledger_post_batch``): one result row per item."""
        first: list[int] = []
        count: list[int] = []
        lines: list[EntryLine] = []
        for posting, _ in items:
            first.append(len(lines) + 1)
            count.append(len(posting.entries))
            lines.extend(posting.entries)
        names = [e.account for e in lines]
        # Direction is a StrEnum: its members are the strings "D" and "C" themselves.
        dirs = [e.direction for e in lines]
        amts = [e.amount_minor for e in lines]
        curs = [e.currency for e in lines]
        text, ints, blobs = (
            repository.array_literal,
            repository.int_array_literal,
            repository.bytea_array_literal,
        )
        return await repository.post_batch(
            conn,
            {
                "first": ints(first),
                "count": ints(count),
                "names": text(names),
                "dirs": text(dirs),
                "amts": ints(amts),
                "curs": text(curs),
                "descs": text([p.description for p, _ in items]),
                "refs": text([p.external_ref for p, _ in items]),
                "metas": text([json.dumps(dict(p.metadata)) if p.metadata else "{}" for p, _ in items]),
                "scope": items[0][1].scope,
                "keys": text([k.key for _, k in items]),
                "locks": ints([k.lock_id for _, k in items]),
                "fps": blobs([k.fingerprint for _, k in items]),
                "tpls": blobs([k.encode_answer(p) for p, k in items]),
                "prefixes": text(self._non_negative_prefixes),
            },
        )

    async def reverse_transaction(
        self,
        conn: AsyncConnection,
        transaction_id: int,
        description: str = "",
        external_ref: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> Transaction:
        """Post the mirror image of a transaction; at most once per transaction, even concurrently."""
        posting = Posting(
            entries=(),
            description=_text(description or f"reversal of {transaction_id}", MAX_DESCRIPTION, "description"),
            external_ref=_text(external_ref, MAX_EXTERNAL_REF, "external_ref"),
            metadata=_metadata(metadata or {}),
        )
        (row,) = await repository.post(
            conn, [_item_json(posting, reverses=transaction_id)], self._non_negative_prefixes
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
    def _transaction(row, posting: Posting, reverses_id: int | None = None) -> Transaction:
        return Transaction(
            id=row.o_tx_id,
            entries=posting.entries,
            description=posting.description,
            external_ref=posting.external_ref,
            metadata=dict(posting.metadata),
            posted_at=row.o_posted_at,
            reverses_id=reverses_id,
        )

    async def get_transaction(self, conn: AsyncConnection, transaction_id: int) -> Transaction:
        row = await repository.get_transaction(conn, transaction_id)
        if row is None:
            raise NotFound(
                "TRANSACTION_NOT_FOUND",
                f"no transaction with id {transaction_id}",
                {"id": str(transaction_id)},
            )
        lines = tuple(
            EntryLine(e.name, Direction(e.direction), e.amount, e.currency)
            for e in await repository.transaction_entries(conn, transaction_id)
        )
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

    # --- balances and entries ---------------------------------------------------------------

    async def get_balance(
        self, conn: AsyncConnection, account: str, as_of: datetime | None = None
    ) -> Balance:
        row = await self._account_row(conn, account)
        type_ = AccountType(row.type)
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
            balance_minor=_signed(type_, debits, credits),
            last_transaction_id=last_tx,
        )

    async def list_entries(
        self, conn: AsyncConnection, account: str, page_size: int, page_token: str
    ) -> tuple[list[EntryView], str]:
        row = await self._account_row(conn, account)
        size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        listing = ["entries", account]
        after = pagination.decode_token(page_token, listing, int) or 0
        rows = await repository.list_entries(conn, row.id, after, size + 1)
        views = [
            EntryView(r.id, r.transaction_id, Direction(r.direction), r.amount, r.currency, r.posted_at)
            for r in rows[:size]
        ]
        next_token = pagination.encode_token(listing, views[-1].entry_id) if len(rows) > size else ""
        return views, next_token

    # --- hash chain -------------------------------------------------------------------------

    async def link_pending(self, conn: AsyncConnection, limit: int = 5000) -> int:
        """Link queued transactions into the hash chain (the chainer's unit of work)."""
        return await repository.link_pending(conn, limit)

    # --- verification -----------------------------------------------------------------------

    async def verify_ledger(self, conn: AsyncConnection, max_findings: int = 1000) -> VerifyReport:
        """Recompute the chain, the balance of every transaction and every account from the entries.

        Run it on a REPEATABLE READ connection so all checks see one snapshot.
        """
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


async def snapshot_isolation(conn: AsyncConnection) -> None:
    """Make a fresh connection read one consistent snapshot (for verification)."""
    await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    await conn.execute(sa.text("SELECT 1"))
