"""Per-account policies checked on requests: what may be executed (``execute``) and what a
release may ask of a device (``release``). docs/security.md describes both and their defaults.

They are small functions called from the request validation, so they move with it.
"""
