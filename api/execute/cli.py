"""Admin CLI for execute settings: ``flask --app api accounts commands|webhook-secret NAME``.

Restricting commands is an administrator's decision, not something a token holder
can change, so it lives in the CLI rather than in the API.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from api.execute.models import settings_for_update
from api.extensions import db
from api.models import Account

_PATTERN_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.*?[]!")


def _account(name: str) -> Account:
    account = db.session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise click.ClickException(f"no account named {name!r}")
    return account


@click.command("commands")
@click.argument("name")
@click.option(
    "--allow",
    "patterns",
    multiple=True,
    help="A module.function glob, e.g. 'docker.*' (repeatable).",
)
@click.option(
    "--allow-all", is_flag=True, help="Lift the restriction: every command may be executed."
)
@with_appcontext
def commands_command(name: str, patterns: tuple[str, ...], allow_all: bool) -> None:
    """Show or set which commands account NAME's tokens may execute."""
    account = _account(name)
    settings = settings_for_update(account.id)
    if allow_all and patterns:
        raise click.ClickException("give either --allow PATTERN... or --allow-all, not both")
    for pattern in patterns:
        if "." not in pattern or not set(pattern) <= _PATTERN_CHARS:
            raise click.ClickException(
                f"{pattern!r} is not a module.function glob like 'docker.*' or 'test.ping'"
            )
    if allow_all:
        settings.allowed_commands = None
    elif patterns:
        settings.allowed_commands = sorted(set(patterns))
    db.session.commit()
    if settings.allowed_commands is None:
        click.echo(f"account {account.name}: every command may be executed")
    else:
        click.echo(
            f"account {account.name}: allowed commands: {' '.join(settings.allowed_commands) or '(none)'}"
        )


@click.command("webhook-secret")
@click.argument("name")
@with_appcontext
def webhook_secret_command(name: str) -> None:
    """Create (or replace) account NAME's webhook signing secret; it is printed once, on the last line."""
    account = _account(name)
    settings = settings_for_update(account.id)
    secret = settings.new_webhook_secret()
    db.session.commit()
    click.echo(
        f"new webhook secret for account {account.name} (callbacks are signed with it; shown only once):"
    )
    click.echo(secret)


def register(app: Flask) -> None:
    from api.cli import accounts

    accounts.add_command(commands_command)
    accounts.add_command(webhook_secret_command)
