from svckit import migrations_env
from wallet_svc.models import metadata

migrations_env.run(metadata)
