"""Console: a project's releases (list, create from a form) and a release's page (per-device
status, the rollout's waves, state, halt reason, history and its actions), docs/console.md.

Built on the REST API's own functions, never a copy of them: the form becomes the JSON body of
``POST .../releases/`` and goes through :func:`api.releases.service.create_release` (the same
rules, messages, digest pinning and audit row); the actions call
:func:`api.rollouts.service.act` like ``POST .../rollout/<action>/``; the counts are the rollout
body's (:func:`api.rollouts.service.serialize`, from the wave counters) and the per-device rows
are :func:`api.deployments.service.deployments_of` for one page of devices. Every state word
comes from :mod:`berth.contract`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, cast

from flask import g, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup
from sqlalchemy import func, select

from api.audit import audited
from api.common import owned_or_404
from api.console import bp
from api.console.auth import login_required
from api.deployments.models import Deployment
from api.deployments.service import deployments_of
from api.devices.models import Device
from api.errors import Conflict, NotFound, ValidationError
from api.extensions import db
from api.limits import MAX_DB_ID
from api.policies import release as release_policy
from api.registries.models import Registry
from api.releases import service as release_service
from api.releases.models import Project, Release, release_devices
from api.rollouts import counters
from api.rollouts import service as rollouts
from api.rollouts.models import Rollout, release_tags
from api.types import utcnow
from berth.contract import DeploymentState, DerivedDeploymentState, RolloutAction, RolloutState

PAGE_SIZE = 50
#: a status filter reads the targets in chunks (the first this big, each next twice the last, up
#: to SCAN_CHUNK_MAX), at most SCAN_LIMIT per request
SCAN_CHUNK = 250
SCAN_CHUNK_MAX = 500
SCAN_LIMIT = 2000
#: statuses only a stored deployment has (deployments_of derives none of them): a filter on one
#: reads the deployments' (release_id, device_id) key
STORED_ONLY = frozenset(DeploymentState) - {DeploymentState.QUEUED, DeploymentState.SUPERSEDED}
RELEASES_PAGE_SIZE = 50
#: seconds between two refreshes of the release page's live part (htmx; meta refresh without JS)
POLL_SECONDS = 3
NO_JS_REFRESH_SECONDS = 10
#: every word a deployment's status can be, for the filter (berth.contract only)
STATUSES = [*DeploymentState, *DerivedDeploymentState]
#: actions that change what devices run: the button leads to a confirmation first
CONFIRMED = (RolloutAction.ABORT, RolloutAction.REVERT)


@bp.app_context_processor
def _words_of_the_contract() -> dict[str, Any]:
    # templates compare with these members, never a spelled-out state word
    return {
        "A": RolloutAction,
        "R": RolloutState,
        "S": DeploymentState,
        # a wave's progress bar: the parts of the rollout body's counts after ``targets``
        "as_time": _time,
        "wave_parts": [f.name for f in fields(rollouts.WaveCounts) if f.name != "targets"],
    }


_SPLIT = re.compile(r"[\s,]+")
_INTEGER = re.compile(r"^-?[0-9]+$")


def _render(name: str, **context: Any) -> str:
    return render_template(f"console/releases/{name}", section="releases", **context)


def _time(value: Any) -> datetime | None:
    """A time of the rollout body (ISO 8601 text) or a column, for the console's time macro."""
    if isinstance(value, str):  # a union's column may come back as SQLite's text
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # stored in UTC (api.types.UTCDateTime)
    return value


def _project(project_id: int) -> Project:
    return owned_or_404(Project, project_id)


def _release(project_id: int, release_id: int) -> tuple[Project, Release]:
    return release_service.release_of(project_id, release_id)


# -- projects and release lists ------------------------------------------------------------


@bp.get("/releases/")
@bp.get("/projects/")
@login_required
def projects():
    rows = db.session.execute(
        select(Project, func.count(Release.id))
        .outerjoin(Release, Release.project_id == Project.id)
        .where(Project.account_id == g.account.id)
        .group_by(Project.id)
        .order_by(Project.name, Project.id)
    ).all()
    return _render("projects.html", rows=rows)


@bp.get("/projects/<int:project_id>/releases/")
@login_required
def project_releases(project_id: int):
    project = _project(project_id)
    before = request.args.get("before", type=int)
    stmt = select(Release).where(Release.project_id == project.id)
    if before and before <= MAX_DB_ID:  # above: every id is below it (and no int overflow)
        stmt = stmt.where(Release.id < before)
    page = db.session.scalars(stmt.order_by(Release.id.desc()).limit(RELEASES_PAGE_SIZE + 1)).all()
    more = len(page) > RELEASES_PAGE_SIZE
    page = page[:RELEASES_PAGE_SIZE]
    ids = [r.id for r in page]
    states = dict(
        db.session.execute(
            select(Rollout.release_id, Rollout.state).where(Rollout.release_id.in_(ids))
        ).all()
    )
    tags: dict[int, list[str]] = {}
    for release_id, tag in db.session.execute(
        select(release_tags.c.release_id, release_tags.c.tag)
        .where(release_tags.c.release_id.in_(ids))
        .order_by(release_tags.c.tag)
    ):
        tags.setdefault(release_id, []).append(tag)
    return _render(
        "list.html",
        project=project,
        releases=page,
        states=states,
        tags=tags,
        older=page[-1].id if more else None,
    )


# -- the create form -----------------------------------------------------------------------


def _words(text: str | None) -> list[str]:
    return [w for w in _SPLIT.split(text or "") if w]


def _number(text: str) -> Any:
    """An integer typed into a form, as the JSON body would carry it; anything else as typed,
    so the API's own rule says what is wrong with it."""
    text = text.strip()
    return int(text) if _INTEGER.match(text) and len(text) < 19 else text


def _device_ids(words: list[str]) -> list[str]:
    """Device ids for what the operator typed: a device id stays, a unit id of the account
    becomes its device's id; anything else is passed on for the API's message."""
    if not words:
        return []
    by_unit = dict(
        db.session.execute(
            select(Device.unit_id, Device.id).where(
                Device.account_id == g.account.id, Device.unit_id.in_(set(words))
            )
        ).all()
    )
    return [by_unit.get(w, w) for w in words]


def container_count(form) -> int:
    indexes = {int(m.group(1)) for key in form for m in [re.match(r"^containers-(\d+)-", key)] if m}
    return min(max(indexes, default=0) + 1, 100)


def release_body(form) -> tuple[dict, dict]:
    """The JSON body of ``POST .../releases/`` the form stands for, and the errors of what the form
    alone could not turn into JSON (a startup parameters text that is not JSON)."""
    body: dict[str, Any] = {
        "version": form.get("version", ""),
        "devices": _device_ids(_words(form.get("devices"))),
        "device_tags": _words(form.get("device_tags")),
        "remove_containers": _words(form.get("remove_containers")),
        "pin_digests": form.get("pin_digests") == "on",
        "containers": [],
    }
    problems: dict[Any, Any] = {}  # field name, or (container index, field)
    for i in range(container_count(form)):
        field = f"containers-{i}-"
        container: dict[str, Any] = {
            "name": form.get(field + "name", ""),
            "image": form.get(field + "image", ""),
            "tag": form.get(field + "tag", ""),
            "required_tags": _words(form.get(field + "required_tags")),
            "purge_data": form.get(field + "purge_data") == "on",
        }
        if not any(container.values()) and i > 0:
            continue  # an empty extra fieldset is not a container
        registry = form.get(field + "registry", "")
        container["registry"] = _number(registry) if registry else None
        digest = form.get(field + "digest", "").strip()
        if digest:
            container["digest"] = digest
        parameters = form.get(field + "startup_parameters", "").strip()
        if parameters:
            try:
                container["startup_parameters"] = json.loads(parameters)
            except ValueError as exc:
                problems[(i, "startup_parameters")] = [f"JSON parse error - {exc}"]
                container["startup_parameters"] = {}
        body["containers"].append(container)
    if form.get("rollout") == "on":
        rollout: dict[str, Any] = {"waves": [_number(w) for w in _words(form.get("waves"))]}
        for name in ("advance_at", "halt_at", "halt_min_finished", "wave_timeout"):
            if form.get(name, "").strip():
                rollout[name] = _number(form[name])
        body["rollout"] = rollout
    return body, problems


def _merge(errors: dict, problems: dict) -> dict:
    """The API's errors plus the form's own (JSON that did not parse), in the API's shape."""
    if not problems:
        return errors
    errors = dict(errors)
    containers = errors.get("containers")
    count = 1 + max(i for i, _ in problems)
    if not isinstance(containers, list) or (containers and not isinstance(containers[0], dict)):
        containers = [{} for _ in range(count)] if not containers else containers
    if containers and isinstance(containers[0], dict):
        containers = [dict(c) for c in containers] + [{} for _ in range(count - len(containers))]
        for (i, name), messages in problems.items():
            containers[i][name] = messages
    errors["containers"] = containers
    return errors


def flatten(errors: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """Every message of an API error body with the path of the field it names."""
    if isinstance(errors, str):
        return [(path, errors)]
    if isinstance(errors, dict):
        return [m for k, v in errors.items() for m in flatten(v, (*path, k))]
    if isinstance(errors, list):
        if all(isinstance(e, str) for e in errors):
            return [(path, e) for e in errors]
        return [m for i, e in enumerate(errors) for m in flatten(e, (*path, i))]
    return []


def field_name(path: tuple) -> str:
    """A field's path as the API's documents write it: ``containers[0].image``."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    return name


def messages_at(errors: dict, *path, exact: bool = False) -> list[str]:
    """The API's messages for the field at ``path`` (its own, and those nested under it unless
    ``exact``)."""
    return [
        message
        for where, message in flatten(errors)
        if (where == path if exact else where[: len(path)] == path)
    ]


def _form_page(project: Project, form, errors: dict | None = None, status: int = 200):
    registries = db.session.scalars(
        select(Registry).where(Registry.account_id == g.account.id).order_by(Registry.name)
    ).all()
    errors = errors or {}
    return (
        _render(
            "new.html",
            project=project,
            form=form,
            containers=container_count(form) if form else 1,
            registries=registries,
            errors=errors,
            messages_at=lambda *path, **kw: messages_at(errors, *path, **kw),
            summary=[(field_name(p), m) for p, m in flatten(errors)],
        ),
        status,
    )


@bp.route("/projects/<int:project_id>/releases/new/", methods=["GET", "POST"])
@audited("release.create")
@login_required
def release_new(project_id: int):
    project = _project(project_id)
    if request.method == "GET":
        return _form_page(project, None)
    form = request.form
    if "add_container" in form:  # the no-JS way to a further container: the same form, one more
        data = form.copy()
        data[f"containers-{container_count(form)}-name"] = ""
        return _form_page(project, data)
    body, problems = release_body(form)
    try:
        if problems:  # the API's messages for the rest of the body too, nothing created
            release_service.validate_release(body, project, None)
            raise ValidationError({})
        release, _ = release_service.create_release(body, project)
    except ValidationError as exc:
        db.session.rollback()
        return _form_page(project, form, _merge(exc.errors, problems), 400)
    return redirect(url_for(".release_page", project_id=project.id, release_id=release.id), 303)


# -- the release page ----------------------------------------------------------------------


def _filters() -> dict[str, Any]:
    wave = request.args.get("wave", "")
    status = request.args.get("status", "")
    return {
        "wave": int(wave) if wave.isdigit() and 1 <= int(wave) <= 1000 else None,
        "status": status if status in STATUSES else None,
        "after": request.args.get("after", "")[:36] or None,
    }


def _targets(release: Release, wave, after, limit: int):
    """A select of the release's target device ids in key order after ``after`` (its
    ``release_devices`` primary key, optionally one wave's), at most ``limit``."""
    rd = release_devices
    ids = select(rd.c.device_id).where(rd.c.release_id == release.id)
    if wave is not None:
        ids = ids.where(rd.c.wave == wave)
    if after:
        ids = ids.where(rd.c.device_id > after)
    return ids.order_by(rd.c.device_id).limit(limit)


def _target_ids(release: Release, wave, after, limit: int) -> list[str]:
    return list(db.session.scalars(_targets(release, wave, after, limit)))


def _stored_ids(release: Release, status: str, wave, after, limit: int) -> list[str]:
    """Device ids of the release's stored deployments in ``status``, in key order after ``after``
    (the deployments' ``(release_id, device_id)`` key)."""
    dep, rd = Deployment.__table__, release_devices
    ids = select(dep.c.device_id).where(dep.c.release_id == release.id, dep.c.status == status)
    if wave is not None:
        ids = ids.join(
            rd, (rd.c.release_id == dep.c.release_id) & (rd.c.device_id == dep.c.device_id)
        ).where(rd.c.wave == wave)
    if after:
        ids = ids.where(dep.c.device_id > after)
    return list(db.session.scalars(ids.order_by(dep.c.device_id).limit(limit)))


def device_page(release: Release, wave=None, status=None, after=None, size=PAGE_SIZE):
    """One page of the release's targets (in device id order, after ``after``) with their
    deployment: rows of ``device_id, status, error, attempts, started_at, finished_at, wave,
    unit_id, display``, and the id to continue after (None on the last page).

    Bounded, indexed reads whatever the release's size: the page's ids come from
    ``release_devices``' key and :func:`deployments_of` (the API's one query for a deployment's
    status, stored or derived) is asked about those ids only. Filtered by a status only a stored
    deployment has (``failed`` ...), the ids come from the deployments' key; by another, the
    targets are read in growing chunks and kept when their status matches, at most ``SCAN_LIMIT``
    ids per request: a page may then hold fewer rows and go on where the scan stopped."""
    refused = release_policy.refusal(release)
    if status is None or status in STORED_ONLY:
        if status is None:
            page_ids = _target_ids(release, wave, after, size + 1)
        else:
            page_ids = _stored_ids(release, status, wave, after, size + 1)
        more = len(page_ids) > size
        page_ids = page_ids[:size]
        next_after = page_ids[-1] if more and page_ids else None
    else:
        page_ids, next_after, scanned, chunk_size = [], None, 0, SCAN_CHUNK
        while scanned < SCAN_LIMIT:
            chunk = _target_ids(release, wave, after, chunk_size)
            scanned += len(chunk)
            # the same ids as a subquery, not a list: PostgreSQL then joins on the keys
            ids = _targets(release, wave, after, chunk_size).scalar_subquery()
            rows = deployments_of(release.id, refused=refused, devices=ids)
            matching = select(rows.c.device_id).where(rows.c.status == status)
            page_ids += db.session.scalars(matching.order_by(rows.c.device_id)).all()
            if len(page_ids) > size:
                page_ids = page_ids[:size]
                next_after = page_ids[-1]
                break
            if len(chunk) < chunk_size:
                break
            after = next_after = chunk[-1]
            chunk_size = min(chunk_size * 2, SCAN_CHUNK_MAX)
    if not page_ids:
        return [], next_after
    rows = deployments_of(release.id, refused=refused, devices=page_ids)
    found = db.session.execute(
        select(rows, Device.unit_id, Device.display)
        .join(Device, Device.id == rows.c.device_id)
        .order_by(rows.c.device_id)
    ).all()
    return found, next_after


def release_counts(release: Release) -> dict[str, int]:
    """Targets and their stored deployments by status, for a release without a rollout (a
    rollout release shows its waves' counters instead)."""
    targets = (
        db.session.scalar(select(func.count()).where(release_devices.c.release_id == release.id))
        or 0
    )
    stored = Counter(
        dict(
            db.session.execute(
                select(Deployment.status, func.count())
                .where(Deployment.release_id == release.id)
                .group_by(Deployment.status)
            ).all()
        )
    )
    return {"targets": targets, "unreported": targets - sum(stored.values()), **stored}


def _state(project: Project, release: Release) -> dict[str, Any]:
    filters = _filters()
    rollout = db.session.get(Rollout, release.id)
    body = rollouts.serialize(rollout) if rollout is not None else None
    devices, next_after = device_page(release, **filters)
    actions = []
    if rollout is not None:
        # what the state allows and would change (an idempotent repeat is no button)
        actions = [a for a in RolloutAction if rollouts.ALLOWED[a].get(rollout.state) is not None]
    query = {k: v for k, v in request.args.items() if k in ("wave", "status", "after")}
    return {
        "project": project,
        "release": release,
        "rollout": body,
        "counts": None if rollout is not None else release_counts(release),
        "devices": devices,
        "filters": filters,
        "next_after": next_after,
        "statuses": STATUSES,
        "actions": actions,
        "confirmed": CONFIRMED,
        "tags": db.session.scalars(
            select(release_tags.c.tag)
            .where(release_tags.c.release_id == release.id)
            .order_by(release_tags.c.tag)
        ).all(),
        "refused": release_policy.refusal(release),
        "poll_seconds": POLL_SECONDS,
        "no_js_refresh": NO_JS_REFRESH_SECONDS,
        "now": utcnow(),
        "query": query,
        # the no-JavaScript reload: marked, so it does not restart the session's idle time
        "no_js_refresh_url": url_for(
            "console.release_page",
            project_id=project.id,
            release_id=release.id,
            **cast(dict[str, Any], {**query, "auto": "1"}),
        ),
    }


def _live(project: Project, release_: Release, state: dict) -> tuple[Markup, str]:
    """The page's live part in the frame htmx polls, and its version: a hash of what it shows
    (the CSRF token aside, which changes with every request). The frame asks for the next one
    with its version; an unchanged part is answered 204 and htmx leaves the page alone, so a
    button is never replaced under the operator's pointer when nothing changed."""
    inner = _render("live.html", **state)
    version = hashlib.sha256(inner.replace(generate_csrf(), "").encode()).hexdigest()[:16]
    url = url_for(
        ".release_live",
        project_id=project.id,
        release_id=release_.id,
        **{**state["query"], "v": version},
    )
    frame = _render("live_frame.html", inner=Markup(inner), live_url=url, **state)
    return Markup(frame), version


@bp.get("/projects/<int:project_id>/releases/<int:release_id>/")
@login_required
def release_page(project_id: int, release_id: int):
    project, release_ = _release(project_id, release_id)
    state = _state(project, release_)
    return _render("release.html", live=_live(project, release_, state)[0], **state)


@bp.get("/projects/<int:project_id>/releases/<int:release_id>/live/")
@login_required(touch=False)  # polled: does not keep the session from going idle
def release_live(project_id: int, release_id: int):
    """The part of the release page that changes (polled by htmx every few seconds); 204 when
    it is the version the page shows (``?v=``)."""
    project, release_ = _release(project_id, release_id)
    frame, version = _live(project, release_, _state(project, release_))
    if request.args.get("v") == version:
        return "", 204
    return frame


# -- rollout actions -----------------------------------------------------------------------


def _action_word(action: str) -> RolloutAction:
    try:
        return RolloutAction(action)
    except ValueError:
        raise NotFound() from None


def consequences(rollout: Rollout, action: RolloutAction) -> dict[str, int]:
    """How many devices an action touches, from the wave counters (docs/rollouts.md): those of
    the started waves that have not applied the release (they get their previous release back),
    those that applied it (a revert sends them back), those of waves not started."""
    waves = counters.statuses(rollout.release_id)
    started: Counter[str | None] = Counter()  # status None: no stored deployment
    later = 0
    for index, statuses in waves.items():
        if index <= rollout.wave:
            started.update(statuses)
        else:
            later += sum(statuses.values())
    return {
        "unapplied": sum(started[s] for s in rollouts.UNREPORTED),
        # running it now: what a revert sends back (those that went back already are not counted)
        "applied": started[DeploymentState.SUCCEEDED],
        "not_started": later,
    }


@bp.get("/projects/<int:project_id>/releases/<int:release_id>/rollout/<action>/")
@login_required
def rollout_confirm(project_id: int, release_id: int, action: str):
    """What the action will do, and the button that does it (the way to act without JS, and the
    confirmation abort and revert ask for)."""
    word = _action_word(action)
    project, release_ = _release(project_id, release_id)
    rollout = db.session.get(Rollout, release_.id)
    if rollout is None:
        raise NotFound()
    return _render(
        "confirm.html",
        project=project,
        release=release_,
        rollout=rollout,
        action=word,
        counts=consequences(rollout, word),
    )


@bp.post("/projects/<int:project_id>/releases/<int:release_id>/rollout/<action>/")
@audited("rollout.action")
@login_required
def rollout_act(project_id: int, release_id: int, action: str):
    """The rollout action, through the same service call as ``POST .../rollout/<action>/``."""
    word = _action_word(action)
    project, release_ = _release(project_id, release_id)
    if db.session.get(Rollout, release_.id) is None:
        raise NotFound()
    try:
        rollouts.act(release_, word, g.user.id, None)
        db.session.commit()
    except Conflict as exc:
        db.session.rollback()
        state = _state(project, release_)
        live = _live(project, release_, state)[0]
        return _render("release.html", error=exc.body["detail"], live=live, **state), 409
    return redirect(url_for(".release_page", project_id=project.id, release_id=release_.id), 303)
