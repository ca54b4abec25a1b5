"""release containers: digest, the image digest a release pins (docs/release.md "Digest pinning")

Revision ID: 0017_container_digest
Revises: 0016_update_locks
Create Date: 2026-12-08 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0017_container_digest'
down_revision = '0016_update_locks'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('release_containers') as batch_op:
        batch_op.add_column(sa.Column('digest', sa.String(length=71), nullable=True))


def downgrade():
    with op.batch_alter_table('release_containers') as batch_op:
        batch_op.drop_column('digest')
