"""Admin CLI: ``flask --app api accounts|users|tokens ...``."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from api import audit
from api.accounts.models import TOKEN_SCOPES, Account, ApiToken, User
from api.audit import audited
from api.devices.models import Device
from api.extensions import db
from api.security.login import end_all_sessions
from api.tokens import create_token

accounts = click.Group("accounts", help="Manage accounts (tenants).")
users = click.Group("users", help="Manage users.")
tokens = click.Group("tokens", help="Manage API tokens.")


def account_named(name: str) -> Account:
    """The account called NAME, or the CLI's error naming it."""
    account = db.session.scalar(select(Account).where(Account.name == name))
    if account is None:
        raise click.ClickException(f"no account named {name!r}")
    return account


def parse_expires(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO-8601 datetime", param_hint="--expires"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@accounts.command("create")
@audited("account.create")
@click.argument("name")
def accounts_create(name: str) -> None:
    """Create account NAME."""
    if db.session.scalar(select(Account).where(Account.name == name)) is not None:
        raise click.ClickException(f"account {name!r} already exists")
    account = Account(name=name)
    db.session.add(account)
    db.session.flush()
    audit.record("account.create", account_id=account.id, details={"name": name, "by": "cli"})
    db.session.commit()
    click.echo(f"created account {account.id} {account.name}")


@users.command("create")
@audited("user.create")
@click.argument("email")
@click.option(
    "--account", "account_name", required=True, help="Name of the account the user belongs to."
)
@click.option("--password", required=True, help="The user's password (for the account page).")
def users_create(email: str, account_name: str, password: str) -> None:
    """Create user EMAIL in an account."""
    account = account_named(account_name)
    email = email.strip().lower()
    if "@" not in email:
        raise click.ClickException(f"{email!r} is not an email address")
    if db.session.scalar(select(User).where(User.email == email)) is not None:
        raise click.ClickException(f"user {email!r} already exists")
    if not password:
        raise click.ClickException("the password may not be empty")
    user = User(email=email, account_id=account.id)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.create",
        account_id=account.id,
        target=f"user:{user.id}",
        details={"email": user.email, "by": "cli"},
    )
    db.session.commit()
    click.echo(f"created user {user.id} {user.email} in account {account.name}")


@users.command("password")
@audited("password.change")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def users_password(email: str, password: str) -> None:
    """Set user EMAIL's password; every account-page session of the user ends."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user with email {email!r}")
    if not password:
        raise click.ClickException("the password may not be empty")
    user.set_password(password)
    end_all_sessions(user.id)
    audit.record(
        "password.change", account_id=user.account_id, user_id=user.id, details={"by": "cli"}
    )
    db.session.commit()
    click.echo(f"password of {user.email} changed; its sessions ended")


@tokens.command("create")
@audited("token.create")
@click.argument("email")
@click.option("--scope", type=click.Choice(TOKEN_SCOPES), default="user", show_default=True)
@click.option("--device", "device_ref", help="Device id or unit_id (required for --scope device).")
@click.option("--expires", help="Expiry as ISO-8601 (UTC if no offset).")
@click.option("--name", default="", help="A label for the token.")
def tokens_create(
    email: str, scope: str, device_ref: str | None, expires: str | None, name: str
) -> None:
    """Create an API token for user EMAIL; the token is printed alone on the last line."""
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"no user with email {email!r}")
    device = None
    if device_ref:
        device = db.session.scalar(
            select(Device).where(
                Device.account_id == user.account_id,
                (Device.id == device_ref) | (Device.unit_id == device_ref),
            )
        )
        if device is None:
            raise click.ClickException(f"no device {device_ref!r} in the user's account")
    try:
        token, plaintext = create_token(
            user, scope=scope, device=device, expires=parse_expires(expires), name=name
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    audit.record(
        "token.create",
        account_id=user.account_id,
        target=f"token:{token.id}",
        details={"scope": token.scope, "name": token.name, "by": "cli"},
    )
    db.session.commit()
    click.echo(
        f"created token {token.id} (scope {token.scope}) for {user.email}; it is shown only once:"
    )
    click.echo(plaintext)


@tokens.command("revoke")
@audited("token.revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID."""
    token = db.session.get(ApiToken, token_id)
    if token is None:
        raise click.ClickException(f"no token with id {token_id}")
    token.revoke()
    audit.record(
        "token.revoke",
        account_id=token.account_id,
        target=f"token:{token.id}",
        details={"by": "cli"},
    )
    db.session.commit()
    click.echo(f"revoked token {token.id}")


def register_cli(app: Flask) -> None:
    for group in (accounts, users, tokens):
        app.cli.add_command(group)
