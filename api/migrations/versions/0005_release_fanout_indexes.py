"""release fan-out indexes: (device_id, release_id) covers "does a newer release list this device";
drop ix_deployments_release_id, which duplicates the leading column of uq_deployments_release_id

Revision ID: 0005_release_fanout_indexes
Revises: 0004_logbook_shipper_tokens
Create Date: 2026-11-27 23:15:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0005_release_fanout_indexes'
down_revision = '0004_logbook_shipper_tokens'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index('ix_deployments_release_id')
    with op.batch_alter_table('release_devices', schema=None) as batch_op:
        batch_op.drop_index('ix_release_devices_device_id')
        batch_op.create_index('ix_release_devices_device_id_release_id', ['device_id', 'release_id'], unique=False)


def downgrade():
    with op.batch_alter_table('release_devices', schema=None) as batch_op:
        batch_op.drop_index('ix_release_devices_device_id_release_id')
        batch_op.create_index('ix_release_devices_device_id', ['device_id'], unique=False)
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.create_index('ix_deployments_release_id', ['release_id'], unique=False)
