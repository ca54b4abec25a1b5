"""signing keys and the release policy's require_signatures (docs/release.md "Signatures")

Revision ID: 0018_signing_keys
Revises: 0017_container_digest
Create Date: 2026-12-07 12:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0018_signing_keys'
down_revision = '0017_container_digest'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'signing_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('public_key', sa.Text(), nullable=False),
        sa.Column('algorithm', sa.String(length=16), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_signing_keys_account_id_accounts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_signing_keys')),
        sa.UniqueConstraint('account_id', 'name', name=op.f('uq_signing_keys_account_id')),
    )
    op.create_index(op.f('ix_signing_keys_account_id'), 'signing_keys', ['account_id'], unique=False)
    with op.batch_alter_table('release_policies') as batch_op:
        batch_op.add_column(
            sa.Column('require_signatures', sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade():
    with op.batch_alter_table('release_policies') as batch_op:
        batch_op.drop_column('require_signatures')
    op.drop_table('signing_keys')
