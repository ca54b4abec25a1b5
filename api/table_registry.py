"""Every table of the API, registered from this one place: ``create_app`` imports this module,
so ``db.metadata`` (what Alembic autogenerate and the test databases are made from) holds them
all, whichever blueprints a process uses.

Every table lives in its feature package (``api/<feature>/models.py``: accounts, devices,
releases, ...) and is listed here (docs/architecture.md "Where to change what").
Nothing else imports this module, so it cannot take part in an import cycle.
"""

from __future__ import annotations

from api.accounts.models import Account, ApiToken, User
from api.audit.log import AuditEntry
from api.deployments.models import Deployment
from api.devices.models import Device
from api.execute.models import ExecuteJob, ExecuteSettings
from api.logbook import tables as logbook
from api.master.logbook_settings import LogbookShipperToken
from api.outbox import OutboxMessage
from api.policies.release import ReleasePolicy
from api.registries.models import Registry
from api.releases.models import Project, Release, ReleaseContainer, release_devices
from api.rollouts.models import (
    Rollout,
    RolloutActionRecord,
    RolloutWebhook,
    device_tags,
    release_tags,
)
from api.security.enrollment import EnrollmentToken
from api.security.login import AccountSession, LoginAttempt
from api.security.platform import PlatformToken
from api.security.tenancy import MinionEnrollment
from api.signing_keys.models import SigningKey

CORE = (
    Account,
    User,
    ApiToken,
    Device,
    Registry,
    SigningKey,
    Project,
    Release,
    ReleaseContainer,
    Deployment,
)
FEATURES = (
    AuditEntry,
    ExecuteJob,
    ExecuteSettings,
    LogbookShipperToken,
    OutboxMessage,
    ReleasePolicy,
    EnrollmentToken,
    AccountSession,
    LoginAttempt,
    PlatformToken,
    MinionEnrollment,
    Rollout,
    RolloutActionRecord,
    RolloutWebhook,
)
PLAIN_TABLES = (
    release_devices,
    logbook.fields,
    logbook.samples,
    logbook.rollups,
    device_tags,
    release_tags,
)
