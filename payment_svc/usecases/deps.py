"""What every use case is built from: the units of work, the PSP, the risk provider, the settings and
the shared :class:`~payment_svc.usecases.transitions.Transitions`."""

from __future__ import annotations

from dataclasses import dataclass

from payment_svc.config import PaymentSettings
from payment_svc.psp import PspPort
from payment_svc.risk import RiskProvider
from payment_svc.uow import UnitsOfWork
from payment_svc.usecases.transitions import SettlementSink, Transitions


@dataclass(frozen=True)
class Deps:
    uows: UnitsOfWork  # the only way to the database (payment_svc.uow)
    psp: PspPort
    risk: RiskProvider
    settings: PaymentSettings
    settlement: SettlementSink
    moves: Transitions


class UseCase:
    """Unpacks :class:`Deps` into the attributes the use cases' code reads."""

    def __init__(self, deps: Deps) -> None:
        self._uows = deps.uows
        self._psp = deps.psp
        self._risk = deps.risk
        self._settings = deps.settings
        self._settlement = deps.settlement
        self._moves = deps.moves
