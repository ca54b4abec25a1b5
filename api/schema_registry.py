"""Every request and response body of the API, registered from this one place:
:func:`openapi_components` makes them ``/openapi.json``'s ``components.schemas``. A resource's bodies
live in its package (``api/<feature>/schemas.py``); the shared error bodies in
:mod:`api.error_bodies`; a new one is listed below (docs/architecture.md "Where to change what"). Only ``create_app`` imports this
module and hands :func:`openapi_components` to :mod:`api.openapi` (``app.extensions``), so
neither takes part in an import cycle with the features whose bodies are listed here.
"""

from __future__ import annotations

from typing import Any

from api.bodies import component_schemas
from api.devices.schemas import Device, DeviceInput, LockOverride
from api.error_bodies import Detail, ValidationErrors
from api.master.schemas import (
    DeploymentReport,
    DeploymentReportResult,
    DeviceSync,
    DeviceSyncResult,
)
from api.projects.schemas import Project, ProjectInput
from api.registries.schemas import Registry, RegistryInput
from api.releases.schemas import Container, ContainerInput, Deployment, Release, ReleaseInput
from api.releases.startup_parameters import StartupParameters, stored_schema
from api.rollouts.schemas import Rollout, RolloutPolicy, RolloutWebhook, RolloutWebhookInput
from api.signing_keys.schemas import SigningKey, SigningKeyInput

REQUEST_BODIES = (
    StartupParameters,
    DeviceInput,
    RegistryInput,
    SigningKeyInput,
    ProjectInput,
    ContainerInput,
    ReleaseInput,
    DeploymentReport,
    DeviceSync,
    RolloutPolicy,
    RolloutWebhookInput,
)
RESPONSE_BODIES = (
    LockOverride,
    Detail,
    ValidationErrors,
    Device,
    Registry,
    SigningKey,
    Project,
    Container,
    Release,
    Deployment,
    DeploymentReportResult,
    DeviceSyncResult,
    Rollout,
    RolloutWebhook,
)


def openapi_components() -> dict[str, Any]:
    """``components.schemas`` of every body above (and the enums and models they refer to)."""
    return {
        **component_schemas(REQUEST_BODIES, RESPONSE_BODIES),
        "StoredStartupParameters": stored_schema(),
    }
