"""Console account pages (issue 21, item 4): API tokens, enrollment tokens, registries,
webhooks and the audit log, under ``/ui/account/``.

Every action calls the function the REST API (or the account page, for API tokens) calls, so a
rule, a message and an audit row exist once: the messages a ``ValidationError`` carries are
shown beside the form's fields. Every form carries a CSRF token; a secret (a new token, a
registry password) is never rendered back except a new token, once, in the response that
created it (``Cache-Control: no-store``).
"""

from __future__ import annotations

from flask import g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, PasswordField, StringField
from wtforms.fields import URLField
from wtforms.validators import Optional

from api import pagination
from api.account_page import account_tokens, issue_token, revoke_token, token_form
from api.account_page.forms import CreateTokenForm
from api.audit import ACTIONS, audited
from api.audit.views import audit_query
from api.common import owned_or_404
from api.console import bp
from api.console.auth import login_required
from api.errors import ApiError, NotFound, ValidationError
from api.extensions import db
from api.registries import views as registries
from api.registries.models import Registry
from api.rollouts import views as rollout_views
from api.rollouts.models import RolloutWebhook
from api.security import enrollment, enrollment_views

NO_STORE = {"Cache-Control": "no-store"}


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class EnrollmentTokenForm(FlaskForm):
    name = StringField("Name")
    expires = DateTimeLocalField("Expires (UTC, optional)", validators=[Optional()])
    max_uses = StringField("Uses (optional)")


class RegistryForm(FlaskForm):
    name = StringField("Name")
    url = StringField("Address (host[:port][/path])")
    username = StringField("Username")
    password = PasswordField("Password")


class WebhookForm(FlaskForm):
    url = URLField("URL")


def _errors(form: FlaskForm, exc: ApiError) -> None:
    """Put the API's messages beside the form's fields (others above the form)."""
    body = exc.errors if isinstance(exc, ValidationError) else exc.body
    for name, messages in (body or {}).items():
        messages = messages if isinstance(messages, list) else [messages]
        field = getattr(form, name, None) if name in form._fields else None
        if field is not None:
            field.errors = [*field.errors, *map(str, messages)]
        else:
            form.form_errors = [*form.form_errors, *map(str, messages)]


def _values(form: FlaskForm, *names: str) -> dict:
    """The submitted raw text of ``names`` (the API's rules parse it, not the form)."""
    return {name: request.form.get(name, "") for name in names}


# -- API tokens ----------------------------------------------------------------------------


def _tokens(form=None, created=None, status=200):
    page = render_template(
        "console/account/tokens.html",
        section="account",
        form=token_form(form or CreateTokenForm(formdata=None)),
        tokens=account_tokens(),
        action_form=ActionForm(),
        created=created,
    )
    return page, status, NO_STORE if created else {}


@bp.get("/account/")
@login_required
def account():
    return _tokens()


@bp.post("/account/tokens/")
@audited("token.create")
@login_required
def create_token():
    form = token_form()
    created = issue_token(form)
    if created is None:
        return _tokens(form, status=400)
    return _tokens(created=created, status=201)


@bp.post("/account/tokens/<int:token_id>/revoke/")
@audited("token.revoke")
@login_required
def revoke_api_token(token_id: int):
    if not revoke_token(token_id):
        raise NotFound()
    return redirect(url_for(".account"))


# -- enrollment tokens ---------------------------------------------------------------------


def _enrollment(form=None, created=None, status=200):
    rows = db.session.scalars(
        db.select(enrollment.EnrollmentToken)
        .where(enrollment.EnrollmentToken.account_id == g.user.account_id)
        .order_by(enrollment.EnrollmentToken.id.desc())
    ).all()
    page = render_template(
        "console/account/enrollment.html",
        section="account",
        form=form or EnrollmentTokenForm(formdata=None),
        rows=rows,
        action_form=ActionForm(),
        created=created,
    )
    return page, status, NO_STORE if created else {}


@bp.get("/account/enrollment/")
@login_required
def enrollment_tokens():
    return _enrollment()


@bp.post("/account/enrollment/")
@audited("enrollment_token.create")
@login_required
def create_enrollment_token():
    form = EnrollmentTokenForm()
    data = _values(form, "name", "expires", "max_uses")
    body = {
        "name": data["name"],
        "expires": data["expires"] or None,
        "max_uses": data["max_uses"].strip() or None,
    }
    try:
        created = enrollment_views.create_token(body, g.user.id)
    except ApiError as exc:
        db.session.rollback()
        _errors(form, exc)
        return _enrollment(form, status=400)
    return _enrollment(created=created, status=201)


@bp.post("/account/enrollment/<int:token_id>/revoke/")
@audited("enrollment_token.revoke")
@login_required
def revoke_enrollment_token(token_id: int):
    enrollment_views.revoke_token(owned_or_404(enrollment.EnrollmentToken, token_id))
    return redirect(url_for(".enrollment_tokens"))


# -- registries ----------------------------------------------------------------------------


def _registries(form=None, status=200, message=None):
    rows = db.session.scalars(
        db.select(Registry).where(Registry.account_id == g.user.account_id).order_by(Registry.id)
    ).all()
    page = render_template(
        "console/account/registries.html",
        section="account",
        form=form or RegistryForm(formdata=None),
        rows=rows,
        action_form=ActionForm(),
        message=message,
    )
    return page, status


@bp.get("/account/registries/")
@login_required
def registries_page():
    return _registries()


@bp.post("/account/registries/")
@audited("registry.create")
@login_required
def create_registry():
    form = RegistryForm()
    try:
        registries.create(_values(form, "name", "url", "username", "password"))
    except ApiError as exc:
        db.session.rollback()
        _errors(form, exc)
        return _registries(form, status=400)
    return redirect(url_for(".registries_page"))


def _registry_edit(registry, form=None, status=200):
    if form is None:
        form = RegistryForm(formdata=None, obj=registry)
    form.password.data = ""  # write-only: never rendered back
    page = render_template(
        "console/account/registry_edit.html",
        section="account",
        registry=registry,
        form=form,
        action_form=ActionForm(),
    )
    return page, status


@bp.get("/account/registries/<int:registry_id>/")
@login_required
def registry(registry_id: int):
    return _registry_edit(owned_or_404(Registry, registry_id))


@bp.post("/account/registries/<int:registry_id>/")
@audited("registry.update")
@login_required
def update_registry(registry_id: int):
    row = owned_or_404(Registry, registry_id)
    form = RegistryForm()
    data = _values(form, "name", "url", "username", "password")
    if not data["password"]:
        del data["password"]  # the stored one is kept
    try:
        registries.update(row, data)
    except ApiError as exc:
        db.session.rollback()
        _errors(form, exc)
        return _registry_edit(db.session.get(Registry, registry_id), form, status=400)
    return redirect(url_for(".registries_page"))


@bp.post("/account/registries/<int:registry_id>/delete/")
@audited("registry.delete")
@login_required
def delete_registry(registry_id: int):
    row = owned_or_404(Registry, registry_id)
    try:
        registries.delete(row)
    except ApiError as exc:
        db.session.rollback()
        return _registries(status=exc.status_code, message=exc.body.get("detail"))
    return redirect(url_for(".registries_page"))


# -- webhooks ------------------------------------------------------------------------------


def _webhooks(form=None, status=200):
    rows = db.session.scalars(
        db.select(RolloutWebhook)
        .where(RolloutWebhook.account_id == g.user.account_id)
        .order_by(RolloutWebhook.id)
    ).all()
    page = render_template(
        "console/account/webhooks.html",
        section="account",
        form=form or WebhookForm(formdata=None),
        rows=rows,
        action_form=ActionForm(),
    )
    return page, status


@bp.get("/account/webhooks/")
@login_required
def webhooks():
    return _webhooks()


@bp.post("/account/webhooks/")
@audited("rollout_webhook.create")
@login_required
def create_webhook():
    form = WebhookForm()
    try:
        rollout_views.create_webhook_from(_values(form, "url"))
    except ApiError as exc:
        db.session.rollback()
        _errors(form, exc)
        return _webhooks(form, status=400)
    return redirect(url_for(".webhooks"))


@bp.post("/account/webhooks/<int:hook_id>/delete/")
@audited("rollout_webhook.delete")
@login_required
def delete_webhook(hook_id: int):
    hook = owned_or_404(RolloutWebhook, hook_id)
    rollout_views.delete_webhook_row(hook)
    return redirect(url_for(".webhooks"))


# -- audit log -----------------------------------------------------------------------------

AUDIT_FILTERS = ("action", "device", "user", "since", "until")


@bp.get("/audit/")
@login_required
def audit():
    # an empty field of the filter form is no filter (GET /audit/ reads the same names)
    args = {k: request.args[k] for k in AUDIT_FILTERS if request.args.get(k, "").strip()}
    errors, page = {}, None
    try:
        page = pagination.paginate(audit_query(g.user.account_id, args), lambda row: row)
    except ValidationError as exc:
        errors = exc.errors
    status = 400 if errors else 200
    return render_template(
        "console/account/audit.html",
        section="audit",
        page=page,
        args=args,
        errors=errors,
        actions=ACTIONS,
    ), status
