"""``/docker/projects/``: a project groups releases."""

from __future__ import annotations

import logging

from flask import Blueprint, g
from sqlalchemy import select

from api import audit
from api.audit import audited
from api.auth import require_token
from api.bodies import parse
from api.common import is_partial, no_content, owned_or_404
from api.deployments.service import unlist_devices
from api.extensions import db
from api.openapi import Response, operation, page_of
from api.pagination import paginate
from api.payload import json_body
from api.projects.schemas import Project as ProjectBody
from api.projects.schemas import ProjectInput
from api.releases.models import Project

bp = Blueprint("projects", __name__)
log = logging.getLogger(__name__)


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
@operation(
    "projects",
    "List projects",
    operation_id="listProjects",
    responses={200: Response(page_of(ProjectBody), "A page of results.")},
)
@require_token("user")
def list_projects():
    stmt = select(Project).where(Project.account_id == g.account.id).order_by(Project.id)
    return paginate(stmt, ProjectBody.body)


@bp.post("/docker/projects/")
@operation(
    "projects",
    "Create a Project",
    operation_id="createProject",
    body=ProjectInput,
    responses={201: Response(ProjectBody, "Created.")},
)
@audited("project.create")
@require_token("user")
def create_project():
    project = Project(account_id=g.account.id, **_validate(json_body(), None))
    db.session.add(project)
    db.session.flush()
    audit.record("project.create", target=f"project:{project.id}", details={"name": project.name})
    db.session.commit()
    log.info("project %s (%s) created in account %s", project.id, project.name, g.account.id)
    return ProjectBody.body(project), 201


@bp.get("/docker/projects/<int:project_id>/")
@operation("projects", "Get a Project", operation_id="getProject", responses={200: ProjectBody})
@require_token("user")
def get_project(project_id: int):
    return ProjectBody.body(owned_or_404(Project, project_id))


@bp.route("/docker/projects/<int:project_id>/", methods=["PUT", "PATCH"])
@operation(
    "projects",
    "Replace a Project",
    method="PUT",
    operation_id="replaceProject",
    body=ProjectInput,
    responses={200: ProjectBody},
)
@operation(
    "projects",
    "Update some fields of a Project",
    method="PATCH",
    operation_id="updateProject",
    body=ProjectInput,
    partial=True,
    responses={200: ProjectBody},
)
@audited("project.update")
@require_token("user")
def update_project(project_id: int):
    project = owned_or_404(Project, project_id)
    values = _validate(json_body(), project)
    details: dict = {"fields": sorted(values)}
    if "name" in values and values["name"] != project.name:
        details["name"] = {"before": project.name, "after": values["name"]}
    for key, value in values.items():
        setattr(project, key, value)
    audit.record("project.update", target=f"project:{project.id}", details=details)
    db.session.commit()
    return ProjectBody.body(project)


@bp.delete("/docker/projects/<int:project_id>/")
@operation(
    "projects",
    "Delete a Project",
    operation_id="deleteProject",
    responses={204: Response(None, "Deleted, no body.")},
)
@audited("project.delete")
@require_token("user")
def delete_project(project_id: int):
    project = owned_or_404(Project, project_id)
    release_ids = [release.id for release in project.releases]
    unlist_devices(release_ids)
    # the releases go with it: the row names them (the first 100; the count is exact)
    audit.record(
        "project.delete",
        target=f"project:{project.id}",
        details={
            "name": project.name,
            "release_count": len(release_ids),
            "releases": release_ids[:100],
        },
    )
    db.session.delete(project)
    db.session.commit()
    log.info("project %s deleted with its releases", project_id)
    return no_content()
