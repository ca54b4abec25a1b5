"""Tenants (accounts), their users and API tokens: the tables in :mod:`api.accounts.models`."""
