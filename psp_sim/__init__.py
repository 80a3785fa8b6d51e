"""Stateful, Stripe-compatible PSP simulator.

The unmodified ``stripe`` SDK talks to it through
``StripeClient(api_key, base_addresses={"api": base_url})``. See ``docs/psp_sim.md``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
