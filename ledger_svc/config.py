from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from ledger_svc.naming import NON_NEGATIVE_PREFIXES
from svckit.config import Port, ServiceSettings


class LedgerSettings(ServiceSettings):
    """Configuration of ledger_svc; every field can be set as ``LEDGER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", extra="ignore", validate_default=True)

    service_name: str = "ledger"
    database_name: str = "ledger"
    grpc_port: Port = 50052
    non_negative_prefixes: tuple[str, ...] = Field(default=NON_NEGATIVE_PREFIXES)
    """Accounts created on first use whose name starts with one of these get the non-negative rule."""
    chain_interval_seconds: float = Field(default=0.05, gt=0, le=60)
    """Pause of the chainer when the queue is drained; bounds how long a commit waits for its link while
    postings come (after a quiet spell the pause has grown, to at most 20 times this)."""
    chain_batch_size: int = Field(default=5000, ge=1, le=100_000)
    """Transactions linked per chainer transaction."""
    coalesce_postings: bool = True
    """Post concurrent single PostTransaction calls together in one batch statement (group commit)."""
    coalesce_window_seconds: float = Field(default=0.0005, ge=0, le=0.001)
    """Extra wait for more calls before a group is sent; 0 = only the calls that arrived meanwhile.
    Half a millisecond makes groups larger under load, so the server and PostgreSQL spend less CPU
    per posting (measured with benchmarks/ab_ledger.py); a lone call waits that long."""
    coalesce_max_group: int = Field(default=200, ge=1, le=1000)
    """Most postings in one group."""
    coalesce_max_in_flight: int = Field(default=1, ge=1, le=64)
    """Groups being posted at the same time (each holds one database connection)."""
    batch_max_in_flight: int = Field(default=2, ge=0, le=256)
    """PostTransactions calls whose unit of work runs at the same time in this process; the others
    wait in the server, holding nothing. 0 = no limit. Batches over overlapping accounts only queue
    on each other's row locks in the database, and that queue costs PostgreSQL CPU."""
