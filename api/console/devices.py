"""Fleet (``/ui/devices/``) and device (``/ui/devices/<id>/``) pages (docs/console.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import g, redirect, render_template, request, url_for
from sqlalchemy import func, select

from api.audit import audited
from api.common import owned_or_404
from api.console import bp
from api.console.auth import login_required
from api.deployments import targets as rollout_targets
from api.deployments.fleet import OUTCOMES, FleetQuery
from api.deployments.models import Deployment
from api.devices import service as device_service
from api.devices.models import Device
from api.errors import ApiError
from api.execute import service as execute_service
from api.execute.command import parse_structured
from api.extensions import db
from api.limits import MAX_DB_ID
from api.logbook import query as read_query
from api.logbook import store
from api.logbook.tables import NUMERIC_TYPES
from api.logbook.views import device_samples
from api.releases.models import Project, Release, ReleaseContainer
from api.security import tenancy
from berth.contract import DeploymentState

# the newest releases offered in the fleet filter's list
RELEASE_CHOICES = 200


def _release_choices(account_id: int):
    return db.session.execute(
        select(Release.id, Release.version, Project.name)
        .join(Project, Project.id == Release.project_id)
        .where(Project.account_id == account_id)
        .order_by(Release.id.desc())
        .limit(RELEASE_CHOICES)
    ).all()


def _fleet_query() -> tuple[FleetQuery, dict]:
    args = request.args
    release = args.get("release", "").strip()
    release_id = int(release) if release.isdigit() and 1 <= int(release) <= MAX_DB_ID else None
    enrolled = {"yes": True, "no": False}.get(args.get("enrolled", ""))
    query = FleetQuery(
        account_id=g.account.id,
        tag=args.get("tag", "").strip()[:64],
        outcome=args.get("status", "") if args.get("status", "") in OUTCOMES else "",
        release_id=release_id,
        enrolled=enrolled,
        search=args.get("q", "").strip()[:255],
    )
    shown = {
        "tag": query.tag,
        "status": query.outcome,
        "release": str(release_id or ""),
        "enrolled": args.get("enrolled", "") if enrolled is not None else "",
        "q": query.search,
    }
    return query, shown


@bp.get("/devices/")
@login_required
def fleet():
    query, shown = _fleet_query()
    after_unit, after_id = request.args.get("after_unit"), request.args.get("after_id")
    after = (after_unit, after_id) if after_unit is not None and after_id else None
    page = query.page(after)
    filters = {k: v for k, v in shown.items() if v}
    return render_template(
        "console/fleet.html",
        section="fleet",
        page=page,
        counts=query.counts(),
        shown=shown,
        filters=filters,
        outcomes=OUTCOMES,
        releases=_release_choices(g.account.id),
        first_page=after is None,
    )


# --- the device page -------------------------------------------------------------------------

# the telemetry form's windows (the read's from_utc = now - window, to_utc = now)
WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
AGGREGATIONS = ("", "avg", "min", "max", "sum")
# samples one chart reads (GET read's size); the fallback table shows the newest of them
CHART_SIZE = 2000
TABLE_ROWS = 200
HISTORY_ROWS = 50


def _history(device: Device):
    return db.session.execute(
        select(Deployment, Release.version, Project.name, Project.id)
        .join(Release, Release.id == Deployment.release_id)
        .join(Project, Project.id == Release.project_id)
        .where(Deployment.device_id == device.id)
        .order_by(Deployment.release_id.desc())
        .limit(HISTORY_ROWS)
    ).all()


def _containers(device: Device) -> list[str]:
    """Short names of the containers of the device's current release (``docker.logs`` knows
    them by these)."""
    current = db.session.scalar(
        select(func.max(Deployment.release_id)).where(
            Deployment.device_id == device.id, Deployment.status == DeploymentState.SUCCEEDED
        )
    )
    if current is None:
        return []
    return list(
        db.session.scalars(
            select(ReleaseContainer.name)
            .where(ReleaseContainer.release_id == current)
            .order_by(ReleaseContainer.position)
        )
    )


def _release_label(release_id: int | None) -> str | None:
    if release_id is None:
        return None
    row = db.session.execute(
        select(Release.version, Project.name)
        .join(Project, Project.id == Release.project_id)
        .where(Release.id == release_id)
    ).one_or_none()
    return f"{row.name} {row.version}" if row else None


def _telemetry(device: Device) -> dict:
    """The telemetry form (field, window, interval, aggregation) read through GET read's own
    parameter rules (``api.logbook.query.parse``) and ``device_samples``."""
    catalog = store.field_catalog(db.session.connection(), device.id)
    fields = sorted(catalog)
    args = request.args
    field = args.get("field") or (fields[0] if fields else "")
    window = args.get("window") or "24h"
    if window not in WINDOWS:
        window = "24h"
    form = {
        "field": field,
        "window": window,
        "interval": args.get("interval", "").strip()[:32],
        "aggregation": args.get("aggregation", "")
        if args.get("aggregation") in AGGREGATIONS
        else "",
    }
    out = {"fields": fields, "catalog": catalog, "form": form, "errors": {}, "rows": None}
    if field not in catalog:
        if field:
            out["errors"]["field"] = [f"This device has no field '{field}'."]
        return out
    field_type = catalog[field][1]
    now = datetime.now(UTC).replace(microsecond=0)
    parsed, errors = read_query.parse(
        {
            "device_id": device.id,
            "field": field,
            "field_type": field_type,
            "from_utc": _iso(now - timedelta(seconds=WINDOWS[window])),
            "to_utc": _iso(now + timedelta(seconds=1)),
            "aggregation": form["aggregation"],
            "interval": form["interval"],
            "size": str(CHART_SIZE),
        }
    )
    if errors:
        out["errors"] = errors
        return out
    try:
        rows = device_samples(device, parsed)
    except ApiError as exc:
        out["errors"] = exc.body
        return out
    out.update(field_type=field_type, rows=rows)
    if field_type == "geo_point":
        out["track"] = _track([r["location"] for r in rows if "location" in r])
    elif field_type in NUMERIC_TYPES:
        out["points"] = [[r["ts"], r["value"]] for r in rows]
    return out


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _track(locations: list[dict]) -> dict | None:
    """A ``geo_point`` series as an SVG polyline in a 400 x 300 box (north up), no JS needed."""
    if not locations:
        return None
    lats = [p["lat"] for p in locations]
    lons = [p["lon"] for p in locations]
    span = max(max(lats) - min(lats), max(lons) - min(lons), 1e-6)
    width, height, pad = 400, 300, 10
    scale = min((width - 2 * pad) / span, (height - 2 * pad) / span)
    points = " ".join(
        f"{pad + (p['lon'] - min(lons)) * scale:.1f},{height - pad - (p['lat'] - min(lats)) * scale:.1f}"
        for p in locations
    )
    return {"points": points, "count": len(locations), "width": width, "height": height}


def _device_page(device: Device, status: int = 200, **extra):
    context = {
        "section": "fleet",
        "device": device,
        "enrolled": tenancy.is_enrolled(device),
        "tags": rollout_targets.device_tags_of([device.id])[device.id],
        "target": _release_label(rollout_targets.target_release_id(device.id)),
        "history": _history(device),
        "containers": _containers(device),
        "telemetry": _telemetry(device),
        "windows": WINDOWS,
        "aggregations": AGGREGATIONS,
        "table_rows": TABLE_ROWS,
        "tags_value": None,
        "tags_errors": [],
        "execute_error": None,
        **extra,
    }
    if context["tags_value"] is None:
        context["tags_value"] = " ".join(context["tags"])
    return render_template("console/device.html", **context), status


@bp.get("/devices/<device_id>/")
@login_required
def device(device_id: str):
    return _device_page(owned_or_404(Device, device_id))


def _messages(body) -> list[str]:
    """A ValidationError body (``{"tags": ["..."]}``, nested per index) as lines to show."""
    if isinstance(body, str):
        return [body]
    if isinstance(body, list):
        return [m for item in body for m in _messages(item)]
    if isinstance(body, dict):
        lines = []
        for key, value in body.items():
            for m in _messages(value):
                plain = key in ("detail", "tags", "non_field_errors") or str(key).isdigit()
                lines.append(m if plain else f"{key}: {m}")
        return lines
    return [str(body)]


@bp.post("/devices/<device_id>/tags/")
@audited("device.update")
@login_required
def device_tags_edit(device_id: str):
    """The tags, as ``PATCH /devices/{id}/ {"tags": [...]}``: same validation, messages and
    audit row (``api.devices.service``)."""
    device = owned_or_404(Device, device_id)
    text = request.form.get("tags", "")
    tags = [t for t in text.replace(",", " ").split() if t]
    try:
        values = device_service.validate({"tags": tags}, device, partial=True)
    except ApiError as exc:
        db.session.rollback()
        errors = exc.body.get("tags", exc.body) if isinstance(exc.body, dict) else exc.body
        return _device_page(device, 400, tags_value=text, tags_errors=_messages(errors))
    device_service.update(device, values, tags_given=True)
    db.session.commit()
    return redirect(url_for("console.device", device_id=device.id), code=303)


# the device page's buttons: what they run, through the execute service
COMMANDS = {
    "logs": "docker.logs",
    "last_logs": "minionutil.last_logs",
}


@bp.post("/devices/<device_id>/execute/")
@audited("execute", "execute.refused")
@login_required
def device_execute(device_id: str):
    """``docker.logs <container>`` or ``minionutil.last_logs`` as ``POST .../execute/`` runs
    them (its body rules, the account's execute policy, the enrollment: the API's 400/403)."""
    device = owned_or_404(Device, device_id)
    fun = COMMANDS.get(request.form.get("command", ""))
    body: dict = {"command": fun or request.form.get("command", "")}
    if fun == COMMANDS["logs"]:
        body["arg"] = [request.form.get("container", "").strip()]
        body["kwarg"] = {"tail": 200}
    try:
        job = execute_service.start(device, parse_structured(body))
    except ApiError as exc:
        db.session.rollback()
        message = "; ".join(_messages(exc.body))
        if request.headers.get("HX-Request"):
            html = render_template("console/_job.html", job=None, error=message, device=device)
            return html, exc.status_code
        return _device_page(device, exc.status_code, execute_error=message)
    db.session.commit()
    if request.headers.get("HX-Request"):
        return render_template("console/_job.html", job=job, device=device), 202
    return redirect(url_for("console.device_job", device_id=device.id, jid=job.jid), code=303)


@bp.get("/devices/<device_id>/jobs/<jid>/")
@login_required
def device_job(device_id: str, jid: str):
    """An execute job's output (``GET .../execute/{jid}/``); while it is pending the page asks
    again (htmx polls the fragment; without JS the page refreshes)."""
    device = owned_or_404(Device, device_id)
    job = execute_service.job_of(device, jid)
    db.session.commit()
    if request.headers.get("HX-Request"):
        return render_template("console/_job.html", job=job, device=device)
    return render_template("console/job.html", section="fleet", job=job, device=device)
