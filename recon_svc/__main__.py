"""``python -m recon_svc [serve|migrate|run]``."""

from recon_svc.bootstrap import MIGRATIONS, build
from recon_svc.config import ReconSettings
from recon_svc.settlement.cli import register as register_settlement_cli
from svckit.cli import service_cli

app = service_cli("recon_svc", ReconSettings, MIGRATIONS, build)
register_settlement_cli(app)  # `run --date D | --file F`

if __name__ == "__main__":
    app()
