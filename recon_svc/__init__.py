"""recon_svc: reconciliation of our books against the PSP's settlement files (``recon.v1.ReconService``)."""
