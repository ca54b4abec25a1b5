"""Which release a device should run, and which devices a release targets.

A release targets the devices it lists and every device carrying one of its
``device_tags``. Both are rows of ``release_devices`` (``listed`` false for the
tag-only ones), kept in step when a device's tags change, so queueing, fallback and
the deployments list treat them alike.

A device's target is the newest release that targets it and is *eligible* there:

* a release without a rollout always is (today's behaviour: a failed device retries);
* under a rollout: a device that failed is not (it keeps the release it rolled back to);
  one that applied (or is applying) it keeps it; any other device gets it only while the
  rollout runs, is paused or completed, and its wave has started -- never once it is
  halted or aborted;
* a reverting / reverted release gives every device that applied it the last release it
  ran successfully before it (no release at all if there is none), and nothing to others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Integer,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from api.bulk import id_select
from api.deployments.models import Deployment
from api.deployments.service import queue_release, unlist_devices
from api.devices.models import Device
from api.extensions import db
from api.outbox import REFRESH_PILLAR, enqueue_salt
from api.releases.models import Project, Release, release_devices
from api.rollouts import waves as wave_membership
from api.rollouts.models import Rollout, device_tags, release_tags
from berth.contract import DeploymentState as S
from berth.contract import RolloutState as R

log = logging.getLogger(__name__)

_rd, _dep, _ro = release_devices, Deployment.__table__, Rollout.__table__

# a device in these has applied the release (what a revert reverts)
APPLIED = (S.SUCCEEDED, S.REVERTING, S.REVERTED, S.REVERT_FAILED)
HANDS_OUT = (R.RUNNING, R.PAUSED, R.COMPLETED)
REVERTS = (R.REVERTING, R.REVERTED)

_CANDIDATES = (
    select(
        _rd.c.release_id,
        _rd.c.wave,
        _ro.c.state,
        _ro.c.wave.label("current"),
        _dep.c.status,
        _dep.c.revert_to,
    )
    .select_from(
        _rd.outerjoin(_ro, _ro.c.release_id == _rd.c.release_id).outerjoin(
            _dep, and_(_dep.c.release_id == _rd.c.release_id, _dep.c.device_id == _rd.c.device_id)
        )
    )
    .where(_rd.c.device_id == bindparam("device_id"))
    .order_by(_rd.c.release_id.desc())
)


def last_success_before(device_id: str, release_id: int) -> int | None:
    """The newest release older than ``release_id`` the device ran successfully."""
    return db.session.scalar(
        select(func.max(_dep.c.release_id)).where(
            _dep.c.device_id == device_id,
            _dep.c.status == S.SUCCEEDED,
            _dep.c.release_id < release_id,
        )
    )


def target_release_id(device_id: str, skip: frozenset[int] = frozenset()) -> int | None:
    """The release ``device_id`` should run now (module docstring), or None. Releases in
    ``skip`` (refused by the release policy) are not eligible: nor is going back to one."""
    for row in db.session.connection().execute(_CANDIDATES, {"device_id": device_id}):
        if row.release_id in skip:
            continue
        if row.state is None:
            return row.release_id
        if row.state in REVERTS:
            if row.status in APPLIED or row.status == S.APPLYING:
                if row.status == S.SUCCEEDED or row.status == S.APPLYING:
                    # applied after the revert began (its report is turning it into reverting)
                    back = last_success_before(device_id, row.release_id)
                else:
                    back = row.revert_to
                return None if back in skip else back
            continue
        if row.status == S.FAILED:
            continue
        if row.status in APPLIED or row.status == S.APPLYING:
            return row.release_id
        if row.state in HANDS_OUT and (row.wave or 1) <= row.current:
            return row.release_id
    return None


# -- tags ----------------------------------------------------------------------


def device_tags_of(device_ids: Sequence[str]) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = {d: [] for d in device_ids}
    if device_ids:
        rows = db.session.execute(
            select(device_tags.c.device_id, device_tags.c.tag)
            .where(device_tags.c.device_id.in_(list(device_ids)))
            .order_by(device_tags.c.device_id, device_tags.c.tag)
        )
        for device_id, tag in rows:
            tags[device_id].append(tag)
    return tags


def _account_releases_with_tags(account_id: int, tags: Sequence[str]):
    return (
        select(release_tags.c.release_id)
        .join(Release, Release.id == release_tags.c.release_id)
        .join(Project, Project.id == Release.project_id)
        .where(Project.account_id == account_id, release_tags.c.tag.in_(list(tags)))
        .distinct()
    )


def set_device_tags(device: Device, tags: list[str]) -> None:
    """Replace the device's tags and follow them: it becomes a target of every release of the
    account carrying one of them (joining a rollout in its hash's wave) and stops being a
    tag-only target of the others; a changed target is told to Salt through the outbox."""
    old = device_tags_of([device.id])[device.id]
    if sorted(old) == sorted(tags):
        return
    before = target_release_id(device.id)
    db.session.execute(delete(device_tags).where(device_tags.c.device_id == device.id))
    if tags:
        db.session.execute(insert(device_tags), [{"device_id": device.id, "tag": t} for t in tags])
    matching = (
        set(db.session.scalars(_account_releases_with_tags(device.account_id, tags)))
        if tags
        else set()
    )
    existing = dict(
        db.session.execute(
            select(_rd.c.release_id, _rd.c.listed).where(_rd.c.device_id == device.id)
        ).all()
    )
    gone = sorted(r for r, listed in existing.items() if not listed and r not in matching)
    if gone:
        unlist_devices(gone, [device.id])
    new = sorted(matching - set(existing))
    if new:
        waves: dict[int, list[int]] = dict(
            db.session.execute(
                select(_ro.c.release_id, _ro.c.waves).where(_ro.c.release_id.in_(new))
            ).all()
        )
        db.session.execute(
            insert(_rd),
            [
                {
                    "release_id": r,
                    "device_id": device.id,
                    "listed": False,
                    "wave": wave_membership.wave_of_newcomer(r, device.id, waves[r])
                    if r in waves
                    else None,
                }
                for r in new
            ],
        )
    after = target_release_id(device.id)
    log.info(
        "device %s tags %s -> %s: target release %s -> %s (joined %s, left %s)",
        device.unit_id,
        old,
        tags,
        before,
        after,
        new,
        gone,
    )
    if after != before and after is not None:
        queue_release(db.session.get_one(Release, after), [(device.id, device.unit_id)])
    elif after != before:
        enqueue_salt([device.unit_id], [REFRESH_PILLAR], f"device {device.unit_id} has no release")


def add_targets(release: Release, listed: Sequence, tags: list[str], rollout: dict | None) -> list:
    """Write a new release's targets: the listed devices (``(id, unit_id)`` rows) and every device
    of the account carrying one of ``tags``, with their waves under a rollout. Returns the
    ``(id, unit_id)`` targets to queue now (all of them, or wave 1's)."""
    account_id = db.session.scalar(
        select(Project.account_id).where(Project.id == release.project_id)
    )
    listed_ids = {d[0] for d in listed}
    tagged = []
    if tags:
        db.session.execute(
            insert(release_tags), [{"release_id": release.id, "tag": t} for t in tags]
        )
        devices = Device.__table__
        tagged = [
            row
            for row in db.session.execute(
                select(devices.c.id, devices.c.unit_id)
                .where(
                    devices.c.account_id == account_id,
                    devices.c.id.in_(
                        select(device_tags.c.device_id).where(device_tags.c.tag.in_(tags))
                    ),
                )
                .order_by(devices.c.created, devices.c.id)
            )
            if row.id not in listed_ids
        ]
    targets = [*listed, *tagged]
    waves = (
        wave_membership.assign_waves(release.id, [d[0] for d in targets], rollout["waves"])
        if rollout
        else {}
    )
    if targets:
        _insert_targets(release.id, [[d[0], d[0] in listed_ids, waves.get(d[0])] for d in targets])
    db.session.expire(release, ["devices"])
    if rollout:
        # a module cycle: api.rollouts.service imports this module for the targets' states
        from api.rollouts import service

        row = Rollout(release_id=release.id, state=R.RUNNING, wave=1, **rollout)
        db.session.add(row)
        db.session.flush()
        service.evaluate(row)  # empty first waves (a tag nobody carries yet) are passed at once
        return [d for d in targets if waves[d[0]] <= row.wave]
    return targets


def _insert_targets(release_id: int, rows: list[list]) -> None:
    """``release_devices`` rows from ``[device id, listed, wave or None]`` triples: one
    ``INSERT ... SELECT`` from a JSON parameter (like ``api.bulk``), not 10,000 bound rows."""
    device: ColumnElement[Any]
    listed: ColumnElement[Any]
    wave: ColumnElement[Any]
    if db.session.get_bind().dialect.name == "postgresql":
        given = (
            func.jsonb_array_elements(bindparam(None, rows, type_=JSONB))
            .table_valued("value")
            .alias("given")
        )
        device = given.c.value.op("->>")(0)
        listed = cast(given.c.value.op("->>")(1), Boolean)
        wave = cast(given.c.value.op("->>")(2), Integer)
    else:
        given = func.json_each(json.dumps(rows)).table_valued("value").alias("given")
        device = func.json_extract(given.c.value, "$[0]")
        listed = func.json_extract(given.c.value, "$[1]")
        wave = func.json_extract(given.c.value, "$[2]")
    db.session.execute(
        insert(_rd).from_select(
            ["release_id", "device_id", "listed", "wave"],
            # in key order: index pages are filled one after the other, not at random
            select(literal(release_id), device, listed, wave).order_by(device),
        )
    )


def set_listed(release: Release, wanted: Sequence) -> tuple[list, list[str]]:
    """``PATCH devices`` on a release with tags or a rollout: which listed devices are added and
    removed. A removed device that still carries one of the release's tags stays a target
    (tag-only); an added one that already was a target by tag is only marked listed.
    Returns (``(id, unit_id)`` devices newly targeted and to queue now, device ids to unlist)."""
    rows = dict(
        db.session.execute(
            select(_rd.c.device_id, _rd.c.listed).where(_rd.c.release_id == release.id)
        ).all()
    )
    wanted_ids = {d[0] for d in wanted}
    removed = [d for d, listed in rows.items() if listed and d not in wanted_ids]
    relisted = [d[0] for d in wanted if d[0] in rows and not rows[d[0]]]
    new = [d for d in wanted if d[0] not in rows]
    tags = list(
        db.session.scalars(
            select(release_tags.c.tag).where(release_tags.c.release_id == release.id)
        )
    )
    still_tagged = (
        set(
            db.session.scalars(
                select(device_tags.c.device_id).where(
                    device_tags.c.device_id.in_(id_select(removed)), device_tags.c.tag.in_(tags)
                )
            )
        )
        if removed and tags
        else set()
    )
    for ids, flag in ((relisted, True), ([d for d in removed if d in still_tagged], False)):
        if ids:
            db.session.execute(
                update(_rd)
                .where(_rd.c.release_id == release.id, _rd.c.device_id.in_(id_select(ids)))
                .values(listed=flag)
            )
    rollout = db.session.get(Rollout, release.id)
    if new:
        db.session.execute(
            insert(_rd),
            [
                {
                    "release_id": release.id,
                    "device_id": d[0],
                    "listed": True,
                    "wave": wave_membership.wave_of_newcomer(release.id, d[0], rollout.waves)
                    if rollout
                    else None,
                }
                for d in new
            ],
        )
    db.session.expire(release, ["devices"])
    if rollout is not None:
        if rollout.state not in HANDS_OUT:
            new = []
        else:
            new = [
                d
                for d in new
                if wave_membership.wave_of_newcomer(release.id, d[0], rollout.waves) <= rollout.wave
            ]
    return new, [d for d in removed if d not in still_tagged]
