"""devices: the console's fleet search is case-insensitive: indexes (account_id, lower(unit_id))
and (account_id, lower(display)) replace (account_id, display) (docs/console.md)

Revision ID: 0021_devices_search_lower
Revises: 0020_device_outcome
Create Date: 2026-12-07 15:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0021_devices_search_lower'
down_revision = '0020_device_outcome'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_devices_account_id_display', table_name='devices')
    op.create_index(
        'ix_devices_account_id_unit_id_lower', 'devices', ['account_id', sa.text('lower(unit_id)')]
    )
    op.create_index(
        'ix_devices_account_id_display_lower', 'devices', ['account_id', sa.text('lower(display)')]
    )


def downgrade():
    op.drop_index('ix_devices_account_id_display_lower', table_name='devices')
    op.drop_index('ix_devices_account_id_unit_id_lower', table_name='devices')
    op.create_index('ix_devices_account_id_display', 'devices', ['account_id', 'display'])
