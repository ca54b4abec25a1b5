"""logbook shipper tokens: each device's device-scope token for the pillar, encrypted

Revision ID: 0004_logbook_shipper_tokens
Revises: 0003_fleet
Create Date: 2026-11-27 23:00:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0004_logbook_shipper_tokens'
down_revision = '0003_fleet'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('logbook_shipper_tokens',
    sa.Column('device_id', sa.String(length=36), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=False),
    sa.Column('token_encrypted', sa.Text(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_logbook_shipper_tokens_device_id_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name=op.f('fk_logbook_shipper_tokens_token_id_api_tokens'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', name=op.f('pk_logbook_shipper_tokens')),
    sa.UniqueConstraint('token_id', name=op.f('uq_logbook_shipper_tokens_token_id'))
    )


def downgrade():
    op.drop_table('logbook_shipper_tokens')
