"""The audit log: an append-only record of who did what, when (docs/security.md).

Call :func:`record` from any request (or CLI command) that changes something an
auditor cares about; it adds the row to the current session, so it is committed
with the change it describes (and rolled back with it)::

    from api import audit
    audit.record("release.create", account_id=g.account.id, target=f"release:{release.id}",
                 details={"version": release.version})

Who and from where are taken from the request (``g.token``, ``g.user``,
``request.remote_addr``) unless given. ``details`` must never hold a secret:
values under keys that look like one (password, token, secret, ...) are replaced
by ``"***"`` before they are stored.

Every state-changing view and CLI command declares what it records with ``@audited(action)``
(or why it records nothing with ``@not_audited(reason)``); ``api/audit/declarations.py``.
"""

from __future__ import annotations

from flask import Flask

from api.audit.declarations import audited, not_audited
from api.audit.log import ACTIONS, AuditEntry, record, redact

__all__ = ["ACTIONS", "AuditEntry", "audited", "not_audited", "record", "redact", "init_app"]


def init_app(app: Flask) -> None:
    from api.audit.views import bp

    app.register_blueprint(bp)
