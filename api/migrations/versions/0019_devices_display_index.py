"""devices: index (account_id, display), so the console's fleet search by a display name's
prefix reads an index like the unit id's (docs/console.md)

Revision ID: 0019_devices_display_index
Revises: 0018_signing_keys
Create Date: 2026-12-07 12:40:00

"""
from alembic import op


revision = '0019_devices_display_index'
down_revision = '0018_signing_keys'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_devices_account_id_display', 'devices', ['account_id', 'display'])


def downgrade():
    op.drop_index('ix_devices_account_id_display', table_name='devices')
