"""``python -m payment_svc [serve|migrate]``."""

from payment_svc.bootstrap import MIGRATIONS, build
from payment_svc.config import PaymentSettings
from svckit.cli import service_cli

app = service_cli("payment_svc", PaymentSettings, MIGRATIONS, build)

if __name__ == "__main__":
    app()
