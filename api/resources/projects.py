"""``/docker/projects/``: a project groups releases."""

from __future__ import annotations

import logging

from flask import Blueprint, g
from sqlalchemy import select

from api.auth import require_token
from api.extensions import db
from api.models import Project
from api.models.types import isoformat
from api.pagination import paginate
from api.payload import json_body
from api.resources.common import is_partial, no_content, owned_or_404
from api.schemas.base import parse
from api.schemas.projects import ProjectInput
from api.services.deployments import unlist_devices

bp = Blueprint("projects", __name__)
log = logging.getLogger(__name__)


def serialize_project(project: Project) -> dict:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "created": isoformat(project.created),
    }


def _validate(data: dict, project: Project | None) -> dict:
    parsed = parse(ProjectInput, data, partial=is_partial())
    name = parsed.get("name")
    if name is not None and (project is None or name != project.name):
        taken = select(Project.id).where(Project.account_id == g.account.id, Project.name == name)
        if db.session.scalar(taken) is not None:
            parsed.error("name", "project with this name already exists.")
    parsed.raise_if_errors()
    return parsed.values


@bp.get("/docker/projects/")
@require_token("user")
def list_projects():
    stmt = select(Project).where(Project.account_id == g.account.id).order_by(Project.id)
    return paginate(stmt, serialize_project)


@bp.post("/docker/projects/")
@require_token("user")
def create_project():
    project = Project(account_id=g.account.id, **_validate(json_body(), None))
    db.session.add(project)
    db.session.commit()
    log.info("project %s (%s) created in account %s", project.id, project.name, g.account.id)
    return serialize_project(project), 201


@bp.get("/docker/projects/<int:project_id>/")
@require_token("user")
def get_project(project_id: int):
    return serialize_project(owned_or_404(Project, project_id))


@bp.route("/docker/projects/<int:project_id>/", methods=["PUT", "PATCH"])
@require_token("user")
def update_project(project_id: int):
    project = owned_or_404(Project, project_id)
    for key, value in _validate(json_body(), project).items():
        setattr(project, key, value)
    db.session.commit()
    return serialize_project(project)


@bp.delete("/docker/projects/<int:project_id>/")
@require_token("user")
def delete_project(project_id: int):
    project = owned_or_404(Project, project_id)
    unlist_devices([release.id for release in project.releases])
    db.session.delete(project)
    db.session.commit()
    log.info("project %s deleted with its releases", project_id)
    return no_content()
