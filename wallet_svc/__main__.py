"""``python -m wallet_svc [serve|migrate]``."""

from svckit.cli import service_cli
from wallet_svc.bootstrap import MIGRATIONS, build
from wallet_svc.config import WalletSettings

app = service_cli("wallet_svc", WalletSettings, MIGRATIONS, build)

if __name__ == "__main__":
    app()
