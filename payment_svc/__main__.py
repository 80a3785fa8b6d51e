"""``python -m payment_svc [serve|migrate|check-config|payouts …]``."""

from payment_svc.bootstrap import MIGRATIONS, build
from payment_svc.config import PaymentSettings
from payment_svc.payouts import cli as payouts_cli
from svckit.cli import service_cli

app = service_cli("payment_svc", PaymentSettings, MIGRATIONS, build)
app.add_typer(payouts_cli.app, name="payouts")

if __name__ == "__main__":
    app()
