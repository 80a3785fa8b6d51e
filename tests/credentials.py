"""The test session's fixed credentials, in a module of their own: the secret scan (tests/secret_scan.py)
knows them without importing the conftest and everything it loads."""

GATEWAY_TEST_KEY = "mpk_" + "t" * 43
"""The shared gateway's development API key (payments + admin)."""
WEBHOOK_SECRET = "whsec_" + "gatewaytests0123456789abcdef"
"""The session's PSP webhook secret: the simulator signs with it, gateways and the payment service verify."""
