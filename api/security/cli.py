"""Operator CLI: ``flask --app api platform-token ...`` and ``flask --app api enrollment ...``.

Master-scope credentials are an operator's act: they are made here, never on the account page.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from api import audit
from api.audit import audited, not_audited
from api.cli import account_named, accounts, parse_expires
from api.extensions import db
from api.policies.cli import release_policy_command
from api.security import enrollment, platform
from api.types import utcnow

platform_tokens = click.Group(
    "platform-token", help="Master credentials of a Salt tier serving every account."
)
enrollment_tokens = click.Group(
    "enrollment", help="Enrollment tokens devices join an account with."
)


@platform_tokens.command("create")
@audited("token.create")
@click.option("--name", required=True, help="A label, e.g. the master's host name.")
@with_appcontext
def platform_create(name: str) -> None:
    """Create a platform master token; the token is printed alone on the last line."""
    row, plaintext = platform.create(name)
    audit.record(
        "token.create",
        target=f"platform_token:{row.id}",
        details={"scope": "platform", "name": name, "by": "cli"},
    )
    db.session.commit()
    click.echo(f"created platform token {row.id} ({name}); it is shown only once:")
    click.echo(plaintext)


@platform_tokens.command("revoke")
@audited("token.revoke")
@click.argument("token_id", type=int)
@with_appcontext
def platform_revoke(token_id: int) -> None:
    """Revoke platform token TOKEN_ID."""
    row = db.session.get(platform.PlatformToken, token_id)
    if row is None:
        raise click.ClickException(f"no platform token with id {token_id}")
    if not row.revoked:
        row.revoked, row.revoked_at = True, utcnow()
        audit.record("token.revoke", target=f"platform_token:{row.id}", details={"by": "cli"})
    db.session.commit()
    click.echo(f"revoked platform token {row.id}")


@platform_tokens.command("list")
@not_audited("read-only: lists, changes nothing")
@with_appcontext
def platform_list() -> None:
    """List platform tokens (never the tokens)."""
    for row in db.session.scalars(
        select(platform.PlatformToken).order_by(platform.PlatformToken.id)
    ):
        state = "revoked" if row.revoked else "active"
        click.echo(f"{row.id}\t{row.name}\t{state}\tlast used {row.last_used or 'never'}")


@enrollment_tokens.command("create")
@audited("enrollment_token.create")
@click.argument("account_name")
@click.option("--name", default="", help="A label for the token.")
@click.option("--expires", help="Expiry as ISO-8601 (UTC if no offset).")
@click.option("--uses", type=click.IntRange(1, 1_000_000), help="How many devices it may enroll.")
@with_appcontext
def enrollment_create(account_name: str, name: str, expires: str | None, uses: int | None) -> None:
    """Create an enrollment token of ACCOUNT_NAME; the token is printed alone on the last line."""
    account = account_named(account_name)
    expires_at = parse_expires(expires)
    if expires_at is not None and expires_at <= utcnow():
        raise click.BadParameter("the expiry must be in the future", param_hint="--expires")
    row, plaintext = enrollment.create(account.id, name=name, expires=expires_at, max_uses=uses)
    audit.record(
        "enrollment_token.create",
        account_id=account.id,
        target=f"enrollment_token:{row.id}",
        details={"name": name, "max_uses": uses, "by": "cli"},
    )
    db.session.commit()
    click.echo(
        f"created enrollment token {row.id} for account {account.name}; it is shown only once:"
    )
    click.echo(plaintext)


@enrollment_tokens.command("revoke")
@audited("enrollment_token.revoke")
@click.argument("token_id", type=int)
@with_appcontext
def enrollment_revoke(token_id: int) -> None:
    """Revoke enrollment token TOKEN_ID."""
    row = db.session.get(enrollment.EnrollmentToken, token_id)
    if row is None:
        raise click.ClickException(f"no enrollment token with id {token_id}")
    if not row.revoked:
        row.revoked, row.revoked_at = True, utcnow()
        audit.record(
            "enrollment_token.revoke",
            account_id=row.account_id,
            target=f"enrollment_token:{row.id}",
            details={"by": "cli"},
        )
    db.session.commit()
    click.echo(f"revoked enrollment token {row.id}")


@enrollment_tokens.command("list")
@not_audited("read-only: lists, changes nothing")
@click.argument("account_name")
@with_appcontext
def enrollment_list(account_name: str) -> None:
    """List ACCOUNT_NAME's enrollment tokens (never the tokens)."""
    account = account_named(account_name)
    rows = db.session.scalars(
        select(enrollment.EnrollmentToken)
        .where(enrollment.EnrollmentToken.account_id == account.id)
        .order_by(enrollment.EnrollmentToken.id)
    )
    for row in rows:
        click.echo(f"{row.id}\t{row.name}\t{row.state}\tuses {row.uses}/{row.max_uses or '-'}")


def register(app: Flask) -> None:
    accounts.add_command(release_policy_command)
    app.cli.add_command(platform_tokens)
    app.cli.add_command(enrollment_tokens)
