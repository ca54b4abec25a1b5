"""execute settings: keyword arguments an administrator allowed per function (docs/security.md)

Revision ID: 0011_execute_allowed_kwargs
Revises: 0010_rollouts
Create Date: 2026-11-29 18:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0011_execute_allowed_kwargs'
down_revision = '0010_rollouts'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('execute_settings') as batch_op:
        batch_op.add_column(sa.Column('allowed_kwargs', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('execute_settings') as batch_op:
        batch_op.drop_column('allowed_kwargs')
