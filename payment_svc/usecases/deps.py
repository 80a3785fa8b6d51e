"""What every use case is built from: the database handles, the PSP, the risk provider, the
settings and the shared :class:`~payment_svc.usecases.transitions.Transitions`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from payment_svc.config import PaymentSettings
from payment_svc.psp import PspPort
from payment_svc.risk import RiskProvider
from payment_svc.usecases.transitions import SettlementSink, Transitions
from svckit.db import DriverPool


@dataclass(frozen=True)
class Deps:
    engine: AsyncEngine  # units of work that need a transaction
    reader: AsyncEngine  # reads that need no multi-statement snapshot (autocommit)
    driver: DriverPool  # the hot one-statement units of work, on plain psycopg
    psp: PspPort
    risk: RiskProvider
    settings: PaymentSettings
    settlement: SettlementSink
    moves: Transitions


class UseCase:
    """Unpacks :class:`Deps` into the attributes the use cases' code reads."""

    def __init__(self, deps: Deps) -> None:
        self._engine = deps.engine
        self._reader = deps.reader
        self._driver = deps.driver
        self._psp = deps.psp
        self._risk = deps.risk
        self._settings = deps.settings
        self._settlement = deps.settlement
        self._moves = deps.moves
