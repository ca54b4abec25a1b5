"""All core models; importing this package registers them on ``db.metadata``."""

from api.models.accounts import TOKEN_SCOPES, Account, ApiToken, User
from api.models.devices import Device
from api.models.releases import (
    Deployment,
    Project,
    Release,
    ReleaseContainer,
    release_devices,
)

__all__ = [
    "TOKEN_SCOPES",
    "Account",
    "ApiToken",
    "User",
    "Device",
    "Deployment",
    "Project",
    "Release",
    "ReleaseContainer",
    "release_devices",
]
