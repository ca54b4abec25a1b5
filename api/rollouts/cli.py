"""Admin CLI for rollouts: ``flask --app api rollouts recount RELEASE``."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from api import audit
from api.audit import audited
from api.extensions import db
from api.releases.models import Project, Release
from api.rollouts import counters
from api.rollouts.models import Rollout

rollouts = click.Group("rollouts", help="Rollout maintenance.")


@rollouts.command("recount")
@audited("rollout.recount")
@click.argument("release_id", metavar="RELEASE", type=int)
@with_appcontext
def recount_command(release_id: int) -> None:
    """Count RELEASE's rollout targets from the rows again and correct its wave counters."""
    if db.session.get(Rollout, release_id) is None:
        raise click.ClickException(f"release {release_id} has no rollout")
    drift = counters.recount(release_id)
    account_id = db.session.scalar(
        select(Project.account_id).join(Release).where(Release.id == release_id)
    )
    audit.record(
        "rollout.recount",
        account_id=account_id,
        target=f"release:{release_id}",
        details={
            "by": "cli",
            "drift": [
                {"wave": w, "bucket": b, "counter": was, "counted": now}
                for (w, b), (was, now) in drift.items()
            ],
        },
    )
    db.session.commit()
    if not drift:
        click.echo(f"release {release_id}: counters agree with the rows")
        return
    click.echo(f"release {release_id}: corrected {len(drift)} counter(s):")
    for (wave, bucket), (was, now) in drift.items():
        click.echo(f"  wave {wave} {bucket}: {was} -> {now}")


def register(app: Flask) -> None:
    app.cli.add_command(rollouts)
