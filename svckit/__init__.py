"""Cross-service plumbing for Marketplace Payments.

Transport, configuration, logging, database, idempotency and dev-stack helpers shared by every service.
Nothing here knows about payments, ledgers or wallets: business rules live in the services.
"""

import os as _os

# gRPC core's fork handlers exist for a fork that is not followed by exec. Every process we start
# execs at once (subprocess), and with the handlers on, starting processes next to gRPC's own threads
# crashed those threads now and then (a general-protection fault in its event engine, which ended a
# test worker). Off unless someone asks for them; read by gRPC when it first initialises.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
