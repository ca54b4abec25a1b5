"""Audit by construction (docs/security.md, "Audit log"): every state-changing view (POST, PUT,
PATCH, DELETE, the account page's forms) and every CLI command declares here what it records.

* ``@audited("project.delete")`` -- the view or command writes a row with (one of) these actions
  whenever it changes something (an idempotent no-op need not);
* ``@not_audited("why")`` -- it changes nothing an operator did (device data, telemetry) or
  nothing at all (a CLI listing); the reason is documented in docs/security.md.

``tests/functional/test_security_audit_coverage.py`` walks ``app.url_map`` and the CLI command
tree: an undeclared state-changing route or command fails it, and every audited one is really
called and must leave its row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from api.audit.log import ACTIONS

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# CLI groups that are not Berth's: schema migrations (flask-migrate) change no account's data
# and are run by whoever deploys the API.
EXEMPT_CLI_GROUPS = {"db": "schema migrations (flask-migrate), run when the API is deployed"}


def _target(func: Any) -> Any:
    # a click command declared above its @click.command: the mark goes on its callback
    return func.callback if isinstance(func, click.Command) else func


def audited(*actions: str) -> Callable:
    """Declare the audit actions the decorated view or CLI command records."""
    unknown = [a for a in actions if a not in ACTIONS]
    if not actions or unknown:
        raise ValueError(f"audit actions must be listed in api.audit.ACTIONS: {unknown or actions}")

    def mark(func):
        _target(func).audit_actions = tuple(actions)
        return func

    return mark


def not_audited(reason: str) -> Callable:
    """Declare why the decorated view or CLI command writes no audit row."""
    if not reason.strip():
        raise ValueError("say why")

    def mark(func):
        _target(func).audit_exempt = reason
        return func

    return mark


def declaration(func: Any) -> tuple[str, ...] | str | None:
    """The actions ``func`` declared, the reason it is exempt, or None when it declared nothing."""
    func = _target(func)
    actions = getattr(func, "audit_actions", None)
    return actions if actions is not None else getattr(func, "audit_exempt", None)
