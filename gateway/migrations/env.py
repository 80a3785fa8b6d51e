from gateway.models import metadata
from svckit import migrations_env

migrations_env.run(metadata)
