"""Cross-service plumbing for Marketplace Payments.

Transport, configuration, logging, database, idempotency and dev-stack helpers shared by every service.
Nothing here knows about payments, ledgers or wallets: business rules live in the services.
"""
