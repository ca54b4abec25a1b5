"""Admin CLI for execute settings: ``flask --app api accounts commands|webhook-secret NAME``.

Restricting commands is an administrator's decision, not something a token holder
can change, so it lives in the CLI rather than in the API.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext

from api import audit
from api.audit import audited
from api.cli import account_named, accounts
from api.execute.models import settings_for_update
from api.extensions import db
from berth import execpolicy


@click.command("commands")
@audited("policy.change")
@click.argument("name")
@click.option(
    "--allow",
    "patterns",
    multiple=True,
    help="An allow-list entry: a module.function glob, optionally followed by globs for its "
    "positional arguments, e.g. 'docker.*' or 'state.sls docker.release' (repeatable; "
    "replaces the list).",
)
@click.option(
    "--allow-all",
    is_flag=True,
    help="Every function may be executed (keyword arguments stay limited to the safe set).",
)
@click.option(
    "--allow-kwarg",
    "kwarg_specs",
    multiple=True,
    help="Keyword arguments an allowed function may take beyond the safe set: "
    "'module.function:NAME[,NAME...]', e.g. 'docker.logs:follow' (repeatable; replaces the "
    "list). pillar, saltenv, pillarenv and template are never allowed.",
)
@click.option(
    "--no-extra-kwargs",
    is_flag=True,
    help="Forget every keyword argument allowed with --allow-kwarg.",
)
@click.option(
    "--default",
    "use_default",
    is_flag=True,
    help="Back to the safe default (and no extra keyword arguments).",
)
@with_appcontext
def commands_command(  # noqa: C901 - a CLI command: one branch per option (allow, deny, kwarg specs, default)
    name: str,
    patterns: tuple[str, ...],
    allow_all: bool,
    kwarg_specs: tuple[str, ...],
    no_extra_kwargs: bool,
    use_default: bool,
) -> None:
    """Show or set which commands account NAME's tokens may execute (docs/security.md)."""
    account = account_named(name)
    settings = settings_for_update(account.id)
    if sum(map(bool, (patterns, allow_all, use_default))) > 1:
        raise click.ClickException("give one of --allow ENTRY..., --allow-all or --default")
    if sum(map(bool, (kwarg_specs, no_extra_kwargs, use_default))) > 1:
        raise click.ClickException(
            "give one of --allow-kwarg SPEC..., --no-extra-kwargs or --default"
        )
    for pattern in patterns:
        try:
            entry = execpolicy.parse_entry(pattern)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        if why := execpolicy.calls_other_functions(entry.fun):
            raise click.ClickException(
                f"--allow {pattern!r}: {entry.fun} {why}. Functions that call other functions "
                "are never executed on a device, whatever the allow-list (docs/security.md); "
                "nothing changed."
            )
    before = settings.allowed_commands
    kwargs_before = settings.allowed_kwargs
    after = before
    if allow_all:
        after = [execpolicy.ALLOW_ALL]
    elif use_default:
        after = None
    elif patterns:
        after = sorted(set(" ".join(p.split()) for p in patterns))
    kwargs_after = kwargs_before
    if use_default or no_extra_kwargs:
        kwargs_after = None
    elif kwarg_specs:
        allowed = execpolicy.SAFE_DEFAULT if after is None else after
        kwargs_after = {}
        for spec in kwarg_specs:
            try:
                fun, names = execpolicy.parse_kwarg_spec(spec)
            except ValueError as exc:
                raise click.ClickException(f"--allow-kwarg {exc}") from None
            if not execpolicy.allows_function(fun, allowed):
                raise click.ClickException(
                    f"--allow-kwarg {spec!r}: {fun} is not in the allow-list "
                    f"({' | '.join(allowed)}); allow it with --allow first"
                )
            kwargs_after[fun] = sorted(set(kwargs_after.get(fun, [])) | set(names))
        kwargs_after = dict(sorted(kwargs_after.items()))
    settings.allowed_commands = after
    settings.allowed_kwargs = kwargs_after or None
    if after != before or settings.allowed_kwargs != kwargs_before:
        details: dict[str, Any] = {"before": before, "after": after, "by": "cli"}
        if settings.allowed_kwargs != kwargs_before:
            details["allowed_kwargs"] = {"before": kwargs_before, "after": settings.allowed_kwargs}
        audit.record("policy.change", account_id=account.id, target="execute", details=details)
    db.session.commit()
    if settings.allowed_commands is None:
        click.echo(
            f"account {account.name}: allowed commands (safe default): "
            + " | ".join(execpolicy.SAFE_DEFAULT)
        )
    elif settings.allowed_commands == [execpolicy.ALLOW_ALL]:
        click.echo(f"account {account.name}: every command may be executed")
    else:
        click.echo(
            f"account {account.name}: allowed commands: "
            + (" | ".join(settings.allowed_commands) or "(none)")
        )
    beyond = sorted(set(settings.allowed_commands or ()) - set(execpolicy.SAFE_DEFAULT))
    if beyond:
        click.echo(
            "salt-api publishes only what its external_auth permits, and the shipped "
            "conf/master.d/salt-api.conf permits the safe default: add "
            + ", ".join(beyond)
            + ' there too, as narrowly (docs/fleet-api.md "salt-api permissions")'
        )
    refused = execpolicy.other_function_callers(settings.allowed_commands or ())
    if refused:
        click.echo(
            "never executed although a glob matches them (they call other functions): "
            + ", ".join(refused)
        )
    if settings.allowed_kwargs:
        click.echo(
            "extra keyword arguments (beyond the safe set): "
            + " | ".join(f"{f}: {', '.join(n)}" for f, n in settings.allowed_kwargs.items())
        )


@click.command("webhook-secret")
@audited("webhook_secret.rotate")
@click.argument("name")
@with_appcontext
def webhook_secret_command(name: str) -> None:
    """Create (or replace) account NAME's webhook signing secret; it is printed once, on the last line."""
    account = account_named(name)
    settings = settings_for_update(account.id)
    secret = settings.new_webhook_secret()
    audit.record("webhook_secret.rotate", account_id=account.id, details={"by": "cli"})
    db.session.commit()
    click.echo(
        f"new webhook secret for account {account.name} (callbacks are signed with it; shown only once):"
    )
    click.echo(secret)


def register(app: Flask) -> None:
    accounts.add_command(commands_command)
    accounts.add_command(webhook_secret_command)
