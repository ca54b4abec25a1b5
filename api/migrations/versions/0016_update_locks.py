"""update locks: deployments may be 'deferred' (a container held its update lock); a device's
one-time override of the update locks (POST /devices/{id}/override-lock/)

SQLite recreates ``deployments`` to change its check constraint, which drops the table's triggers:
the rollout counters' triggers (0015) are dropped first and created again after.

Revision ID: 0016_update_locks
Revises: 0015_rollout_wave_counts
Create Date: 2026-12-07 09:30:00

"""
import importlib.util
from pathlib import Path

from alembic import op
import sqlalchemy as sa


revision = '0016_update_locks'
down_revision = '0015_rollout_wave_counts'
branch_labels = None
depends_on = None

OLD_STATUSES = (
    "status IN ('queued', 'applying', 'succeeded', 'failed', 'superseded', "
    "'reverting', 'reverted', 'revert_failed')"
)
NEW_STATUSES = (
    "status IN ('queued', 'applying', 'succeeded', 'failed', 'deferred', 'superseded', "
    "'reverting', 'reverted', 'revert_failed')"
)


def _counters_0015():
    path = Path(__file__).with_name('0015_rollout_wave_counts.py')
    spec = importlib.util.spec_from_file_location('berth_migration_0015', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _statuses(old, new):
    sqlite = op.get_bind().dialect.name == 'sqlite'
    counters = _counters_0015() if sqlite else None
    if sqlite:
        counters._sqlite_downgrade()
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_deployments_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_deployments_status'), sa.text(new))
    if sqlite:
        counters._sqlite_upgrade()


def upgrade():
    _statuses(OLD_STATUSES, NEW_STATUSES)
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('update_lock_override_at', sa.DateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('update_lock_override_at')
    op.execute("UPDATE deployments SET status = 'queued' WHERE status = 'deferred'")
    _statuses(NEW_STATUSES, OLD_STATUSES)
