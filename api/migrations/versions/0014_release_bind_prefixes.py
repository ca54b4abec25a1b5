"""release policies: bind prefixes, where an account's releases may bind besides the data roots (docs/security.md)

Revision ID: 0014_release_bind_prefixes
Revises: 0013_enrollment_master
Create Date: 2026-12-01 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0014_release_bind_prefixes'
down_revision = '0013_enrollment_master'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('release_policies') as batch_op:
        batch_op.add_column(sa.Column('bind_prefixes', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('release_policies') as batch_op:
        batch_op.drop_column('bind_prefixes')
