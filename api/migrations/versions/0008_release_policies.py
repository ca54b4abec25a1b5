"""release policies: per account, what a release may ask of a device's host (docs/security.md)

Revision ID: 0008_release_policies
Revises: 0007_tenancy
Create Date: 2026-11-29 17:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0008_release_policies'
down_revision = '0007_tenancy'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('release_policies',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('allow_privileged', sa.Boolean(), nullable=False),
    sa.Column('allow_cap_add', sa.Boolean(), nullable=False),
    sa.Column('allow_devices', sa.Boolean(), nullable=False),
    sa.Column('device_nodes', sa.JSON(), nullable=True),
    sa.Column('host_paths', sa.JSON(), nullable=False),
    sa.Column('protected_containers', sa.JSON(), nullable=True),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_release_policies_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_release_policies'))
    )


def downgrade():
    op.drop_table('release_policies')
