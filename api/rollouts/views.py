"""``/docker/projects/{p}/releases/{r}/rollout/`` (+ ``pause/ resume/ abort/ revert/``) and
``/docker/rollout-webhooks/``."""

from __future__ import annotations

from flask import Blueprint, g
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api import audit
from api.audit import audited
from api.auth import require_token
from api.bodies import validate
from api.common import no_content, owned_or_404
from api.errors import Conflict, NotFound, ValidationError
from api.execute.models import settings_for
from api.extensions import db
from api.openapi import Response, operation, page_of
from api.pagination import paginate
from api.payload import json_body
from api.releases.models import Project, Release
from api.rollouts import service
from api.rollouts.models import Rollout, RolloutWebhook
from api.rollouts.schemas import Rollout as RolloutBody
from api.rollouts.schemas import RolloutWebhook as RolloutWebhookBody
from api.rollouts.schemas import RolloutWebhookInput
from api.security import ssrf
from berth.contract import RolloutAction

bp = Blueprint("rollouts", __name__)

ROLLOUT = "/docker/projects/<int:project_id>/releases/<int:release_id>/rollout/"


def _release(project_id: int, release_id: int) -> Release:
    project = owned_or_404(Project, project_id)
    release = db.session.scalars(
        select(Release).where(Release.id == release_id, Release.project_id == project.id)
    ).one_or_none()
    if release is None:
        raise NotFound()
    return release


def _rollout(release: Release) -> Rollout:
    rollout = db.session.get(Rollout, release.id)
    if rollout is None:
        raise NotFound("This release has no rollout.")
    return rollout


@bp.get(ROLLOUT)
@operation(
    "rollouts",
    "State, current wave, per-wave counts, halt reason and action history",
    responses={200: RolloutBody},
    errors={404: "Unknown release, or the release has no rollout."},
)
@require_token("user")
def get_rollout(project_id: int, release_id: int):
    """The release's rollout: state, current wave, per-wave counts, halt reason, action history."""
    return service.serialize(_rollout(_release(project_id, release_id)))


def _action(action: RolloutAction):
    def view(project_id: int, release_id: int):
        release = _release(project_id, release_id)
        if db.session.get(Rollout, release.id) is None:
            # the release exists (a link from it can be followed); the action cannot apply
            raise Conflict(f"Cannot {action}: this release has no rollout.")
        rollout = service.act(release, action, g.token.user_id, g.token.id)
        db.session.commit()
        return service.serialize(rollout)

    view.__name__ = f"rollout_{action}"
    view.__doc__ = f"{action.capitalize()} the rollout (idempotent; 409 where it makes no sense)."
    return view


_ACTIONS = {
    RolloutAction.PAUSE: "No further wave starts; started waves keep the release.",
    RolloutAction.RESUME: "Continue a paused or halted rollout (overrides the halt of the current "
    "wave); starts the next wave at once if its advance rule is already met.",
    RolloutAction.ABORT: "No further device gets the release; devices that applied it keep it.",
    RolloutAction.REVERT: "Every device that applied the release goes back to the last release "
    "it ran successfully before it, at its next idle moment.",
}
for _a, _text in _ACTIONS.items():
    bp.add_url_rule(
        f"{ROLLOUT}{_a}/",
        view_func=operation(
            "rollouts",
            f"{_a.capitalize()} the rollout",
            description=f"{_text} Idempotent; recorded in the history with who and when.",
            responses={200: RolloutBody},
            errors={
                404: "Unknown release.",
                409: "The action makes no sense in this state, or the release has no rollout.",
            },
        )(audited("rollout.action")(require_token("user")(_action(_a)))),
        methods=["POST"],
    )


# -- webhooks ------------------------------------------------------------------


@bp.get("/docker/rollout-webhooks/")
@operation(
    "rollouts", "The account's rollout webhook URLs", responses={200: page_of(RolloutWebhookBody)}
)
@require_token("user")
def list_webhooks():
    """The account's rollout webhook URLs."""
    stmt = (
        select(RolloutWebhook)
        .where(RolloutWebhook.account_id == g.account.id)
        .order_by(RolloutWebhook.id)
    )
    return paginate(stmt, RolloutWebhookBody.body)


def create_webhook_from(data: dict) -> RolloutWebhook:
    """Register a webhook URL of ``g.account`` from a request body (raises ValidationError);
    the REST API and the console both call this."""
    url = validate(RolloutWebhookInput, data)["url"]
    try:
        ssrf.resolve(url)  # checked again at every delivery
    except ssrf.UnsafeTarget as exc:
        raise ValidationError({"url": [f"Refused: {exc}."]}) from None
    settings = settings_for(g.account.id)
    if settings is None or not settings.webhook_secret_encrypted:
        raise ValidationError(
            {
                "url": [
                    "The account has no webhook secret to sign events with "
                    "(flask --app api accounts webhook-secret NAME)."
                ]
            }
        )
    hook = RolloutWebhook(account_id=g.account.id, url=url)
    db.session.add(hook)
    try:
        db.session.flush()
        # the URL as logs show it: never its credentials or query string
        audit.record(
            "rollout_webhook.create",
            target=f"rollout_webhook:{hook.id}",
            details={"url": ssrf.redact_url(url)},
        )
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError({"url": ["This URL is already registered."]}) from None
    return hook


def delete_webhook_row(hook: RolloutWebhook) -> None:
    audit.record(
        "rollout_webhook.delete",
        target=f"rollout_webhook:{hook.id}",
        details={"url": ssrf.redact_url(hook.url)},
    )
    db.session.delete(hook)
    db.session.commit()


@bp.post("/docker/rollout-webhooks/")
@operation(
    "rollouts",
    "Register a URL for rollout events",
    description="Events (wave_started, halted, completed, aborted, reverted) are POSTed signed "
    "like execute callbacks (`X-Request-Signature`), retried. The account needs a webhook "
    "secret first.",
    body=RolloutWebhookInput,
    responses={201: Response(RolloutWebhookBody, "Registered.")},
)
@audited("rollout_webhook.create")
@require_token("user")
def create_webhook():
    """Register a URL for rollout events (signed with the account's webhook secret)."""
    return RolloutWebhookBody.body(create_webhook_from(json_body())), 201


@bp.delete("/docker/rollout-webhooks/<int:hook_id>/")
@operation(
    "rollouts", "Unregister a rollout webhook URL", responses={204: Response(None, "Deleted.")}
)
@audited("rollout_webhook.delete")
@require_token("user")
def delete_webhook(hook_id: int):
    delete_webhook_row(owned_or_404(RolloutWebhook, hook_id))
    return no_content()
