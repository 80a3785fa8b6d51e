"""``python -m ledger_svc [serve|migrate]``."""

from ledger_svc.bootstrap import MIGRATIONS, build
from ledger_svc.config import LedgerSettings
from svckit.cli import service_cli

app = service_cli("ledger_svc", LedgerSettings, MIGRATIONS, build)

if __name__ == "__main__":
    app()
