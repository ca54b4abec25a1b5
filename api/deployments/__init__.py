"""Deployments: a release's state on each of its devices.

``service.py`` queues them and derives their states, ``reports.py`` applies a device's report to
its deployment (idempotent), ``targets.py`` says which devices a release (or its rollout) targets
and writes their pillar, ``fleet.py`` is the console's fleet query (filters, outcome counts, keyset
pages in SQL). No Flask request objects; the views, the CLI and the master endpoints call them.
"""
