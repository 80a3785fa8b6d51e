"""wallet_svc: seller balances, available and reserved (``wallet.v1.WalletService``)."""
