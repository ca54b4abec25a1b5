"""minion enrollments: the master credential each minion enrolled through (docs/security.md)

Existing rows get NULL ("no recorded master"): the first credential that may serve such a
device records itself on its first pillar or report request (api.security.tenancy.served_device),
so an upgrade needs no step.

Revision ID: 0013_enrollment_master
Revises: 0012_session_last_seen
Create Date: 2026-12-07 08:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0013_enrollment_master'
down_revision = '0012_session_last_seen'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('minion_enrollments') as batch_op:
        batch_op.add_column(sa.Column('master', sa.String(length=40), nullable=True))


def downgrade():
    with op.batch_alter_table('minion_enrollments') as batch_op:
        batch_op.drop_column('master')
