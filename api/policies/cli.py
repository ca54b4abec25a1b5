"""``flask --app api accounts release-policy NAME ...``: an administrator's act, recorded in the audit log."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from api import audit
from api.audit import audited
from api.cli import account_named
from api.extensions import db
from api.policies.release import ReleasePolicy, policy_for
from berth.release import policy as rules


@click.command("release-policy")
@audited("policy.change")
@click.argument("name")
@click.option("--privileged/--no-privileged", default=None, help="Allow privileged containers.")
@click.option("--cap-add/--no-cap-add", default=None, help="Allow cap_add.")
@click.option("--devices/--no-devices", default=None, help="Allow devices.")
@click.option(
    "--device-node",
    "device_nodes",
    multiple=True,
    help="A device-node glob releases may use (repeatable; replaces the default list).",
)
@click.option(
    "--host-path",
    "host_paths",
    multiple=True,
    help="A sensitive host path releases may still bind, never purge (repeatable; replaces the list).",
)
@click.option(
    "--bind-prefix",
    "bind_prefixes",
    multiple=True,
    help="A host path prefix releases may bind under, besides the data roots; never opens a "
    "sensitive path (repeatable; replaces the list).",
)
@click.option("--no-bind-prefixes", is_flag=True, help="Releases bind only under the data roots.")
@click.option(
    "--protected-container",
    "protected",
    multiple=True,
    help="A container name (glob) releases may not remove (repeatable; replaces the default list).",
)
@click.option(
    "--require-signatures/--no-require-signatures",
    "require_signatures",
    default=None,
    help="Every container of a new release pinned to a digest and signed (cosign) by one of the "
    "account's signing keys (/docker/signing-keys/); the device verifies again.",
)
@click.option("--reset", is_flag=True, help="Back to the defaults.")
@with_appcontext
def release_policy_command(  # noqa: C901 - a CLI command: one branch per option
    name,
    privileged,
    cap_add,
    devices,
    device_nodes,
    host_paths,
    bind_prefixes,
    no_bind_prefixes,
    protected,
    require_signatures,
    reset,
):
    """Show or set account NAME's release policy (docs/security.md)."""
    account = account_named(name)
    for path in host_paths:
        if not path.startswith("/"):
            raise click.ClickException(f"--host-path {path!r}: give an absolute path")
        if rules.normalize(path) == "/":
            raise click.ClickException("--host-path /: the whole host cannot be allowed")
    if len(bind_prefixes) > rules.MAX_BIND_PREFIXES:
        raise click.ClickException(f"at most {rules.MAX_BIND_PREFIXES} --bind-prefix")
    for prefix in bind_prefixes:
        problem = rules.prefix_problem(prefix)
        if problem:
            raise click.ClickException(f"--bind-prefix {prefix!r}: {problem}")
    policy = policy_for(account.id)
    before = policy.describe()
    if reset:
        existing = db.session.get(ReleasePolicy, account.id)
        if existing is not None:
            db.session.delete(existing)
        policy = policy_for(account.id)
    else:
        for attr, value in (
            ("allow_privileged", privileged),
            ("allow_cap_add", cap_add),
            ("allow_devices", devices),
            ("require_signatures", require_signatures),
        ):
            if value is not None:
                setattr(policy, attr, value)
        if device_nodes:
            policy.device_nodes = sorted(set(device_nodes))
        if host_paths:
            policy.host_paths = sorted({rules.normalize(p) for p in host_paths})
        if bind_prefixes:
            policy.bind_prefixes = sorted({rules.normalize(p) for p in bind_prefixes})
        elif no_bind_prefixes:
            policy.bind_prefixes = []
        if protected:
            policy.protected_containers = sorted(set(protected))
        if policy.describe() != before:
            db.session.add(policy)
    after = policy.describe()
    if after != before:
        audit.record(
            "policy.change",
            account_id=account.id,
            target="release",
            details={"before": before, "after": after, "by": "cli"},
        )
    db.session.commit()
    click.echo(f"account {account.name}: release policy {json.dumps(after)}")
