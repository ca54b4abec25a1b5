"""Every table of the API, registered from this one place: ``create_app`` imports this module,
so ``db.metadata`` (what Alembic autogenerate and the test databases are made from) holds them
all, whichever blueprints a process uses.

The core models live in :mod:`api.models` (import them from there); a feature's own tables
live next to the feature and are listed here (docs/architecture.md "Where to change what").
Nothing else imports this module, so it cannot take part in an import cycle.
"""

from __future__ import annotations

from api.audit.log import AuditEntry
from api.execute.models import ExecuteJob, ExecuteSettings
from api.logbook import tables as logbook
from api.master.logbook_settings import LogbookShipperToken
from api.models import (
    Account,
    ApiToken,
    Deployment,
    Device,
    Project,
    Release,
    ReleaseContainer,
    User,
    release_devices,
)
from api.outbox import OutboxMessage
from api.policies.release import ReleasePolicy
from api.registries.models import Registry
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
