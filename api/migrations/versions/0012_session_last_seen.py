"""account sessions: last_seen, for the idle lifetime (docs/security.md, "Login and sessions")

Revision ID: 0012_session_last_seen
Revises: 0011_execute_allowed_kwargs
Create Date: 2026-12-07 08:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0012_session_last_seen'
down_revision = '0011_execute_allowed_kwargs'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('account_sessions') as batch_op:
        batch_op.add_column(sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE account_sessions SET last_seen = created")
    with op.batch_alter_table('account_sessions') as batch_op:
        batch_op.alter_column('last_seen', existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade():
    with op.batch_alter_table('account_sessions') as batch_op:
        batch_op.drop_column('last_seen')
