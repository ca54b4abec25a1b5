"""fleet: outbox, execute jobs, per-account execute settings

Revision ID: 0003_fleet
Revises: 0002_logbook
Create Date: 2026-11-27 21:50:00

"""
from alembic import op
import sqlalchemy as sa



# revision identifiers, used by Alembic.
revision = '0003_fleet'
down_revision = '0002_logbook'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('gave_up_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_pending', ['delivered_at', 'gave_up_at', 'next_attempt_at'], unique=False)

    op.create_table('execute_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('jid', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=36), nullable=False),
    sa.Column('unit_id', sa.String(length=255), nullable=False),
    sa.Column('fun', sa.String(length=255), nullable=False),
    sa.Column('arg', sa.JSON(), nullable=False),
    sa.Column('kwarg', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.Column('callback_url', sa.String(length=2048), nullable=True),
    sa.Column('callback_timeout', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('PENDING', 'COMMAND_EXECUTED', 'TIMEOUT')", name=op.f('ck_execute_jobs_state')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_execute_jobs_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_execute_jobs_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_execute_jobs')),
    sa.UniqueConstraint('jid', name=op.f('uq_execute_jobs_jid'))
    )
    with op.batch_alter_table('execute_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_execute_jobs_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_execute_jobs_device_id'), ['device_id'], unique=False)
        batch_op.create_index('ix_execute_jobs_state_deadline', ['state', 'deadline'], unique=False)

    op.create_table('execute_settings',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('allowed_commands', sa.JSON(), nullable=True),
    sa.Column('webhook_secret_encrypted', sa.Text(), nullable=True),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_execute_settings_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_execute_settings'))
    )


def downgrade():
    op.drop_table('execute_settings')
    with op.batch_alter_table('execute_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_execute_jobs_state_deadline')
        batch_op.drop_index(batch_op.f('ix_execute_jobs_device_id'))
        batch_op.drop_index(batch_op.f('ix_execute_jobs_account_id'))
    op.drop_table('execute_jobs')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_pending')
    op.drop_table('outbox')
