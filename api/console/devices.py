"""Fleet (``/ui/devices/``) and device (``/ui/devices/<id>/``) pages."""

from __future__ import annotations

from flask import g, render_template
from sqlalchemy import select

from api.console import bp
from api.console.auth import login_required
from api.extensions import db
from api.models import Device


@bp.get("/devices/")
@login_required
def fleet():
    devices = db.session.scalars(
        select(Device)
        .where(Device.account_id == g.account.id)
        .order_by(Device.unit_id, Device.id)
        .limit(50)
    ).all()
    return render_template("console/fleet.html", section="fleet", devices=devices)
