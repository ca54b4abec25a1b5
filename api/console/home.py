"""``/ui/``: the console's start page opens the fleet."""

from __future__ import annotations

from flask import redirect, url_for

from api.console import bp
from api.console.auth import login_required


@bp.get("/")
@login_required
def home():
    return redirect(url_for("console.fleet"))
