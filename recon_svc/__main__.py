"""``python -m recon_svc [serve|migrate]``."""

from recon_svc.bootstrap import MIGRATIONS, build
from recon_svc.config import ReconSettings
from svckit.cli import service_cli

app = service_cli("recon_svc", ReconSettings, MIGRATIONS, build)

if __name__ == "__main__":
    app()
