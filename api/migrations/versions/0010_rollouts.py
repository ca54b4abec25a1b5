"""rollouts: device tags, release tags, release_devices.listed/wave, rollouts, rollout actions,
rollout webhooks; deployments.status gets the revert states

Revision ID: 0010_rollouts
Revises: 0009_login_sessions
Create Date: 2026-11-29 17:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_rollouts'
down_revision = '0009_login_sessions'
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('queued', 'applying', 'succeeded', 'failed', 'superseded')"
NEW_STATUSES = (
    "status IN ('queued', 'applying', 'succeeded', 'failed', 'superseded', "
    "'reverting', 'reverted', 'revert_failed')"
)


def upgrade():
    with op.batch_alter_table('release_devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('listed', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('wave', sa.Integer(), nullable=True))
        batch_op.create_index(
            'ix_release_devices_release_id_wave', ['release_id', 'wave'], unique=False,
            sqlite_where=sa.text('wave IS NOT NULL'), postgresql_where=sa.text('wave IS NOT NULL'),
        )
    with op.batch_alter_table('deployments', schema=None, recreate='always') as batch_op:
        batch_op.drop_constraint(op.f('ck_deployments_status'), type_='check')
        batch_op.alter_column('status', existing_type=sa.String(length=12), type_=sa.String(length=16))
        batch_op.create_check_constraint(op.f('ck_deployments_status'), sa.text(NEW_STATUSES))
        batch_op.add_column(sa.Column('revert_to', sa.Integer(), nullable=True))

    op.create_table('device_tags',
    sa.Column('device_id', sa.String(length=36), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_tags_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_id', 'tag', name=op.f('pk_device_tags'))
    )
    op.create_index('ix_device_tags_tag_device_id', 'device_tags', ['tag', 'device_id'], unique=False)
    op.create_table('release_tags',
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_tags_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', 'tag', name=op.f('pk_release_tags'))
    )
    op.create_index('ix_release_tags_tag', 'release_tags', ['tag'], unique=False)
    op.create_table('rollouts',
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('waves', sa.JSON(), nullable=False),
    sa.Column('advance_at', sa.Integer(), nullable=False),
    sa.Column('halt_at', sa.Integer(), nullable=False),
    sa.Column('halt_min_finished', sa.Integer(), nullable=False),
    sa.Column('wave_timeout', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('wave_started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('halt_reason', sa.Text(), nullable=True),
    sa.Column('halt_overridden_wave', sa.Integer(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_rollouts_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', name=op.f('pk_rollouts'))
    )
    op.create_index(op.f('ix_rollouts_state'), 'rollouts', ['state'], unique=False)
    op.create_table('rollout_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('state_before', sa.String(length=16), nullable=False),
    sa.Column('state_after', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('user_email', sa.String(length=254), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_rollout_actions_release_id_releases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_rollout_actions_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_actions'))
    )
    op.create_index(op.f('ix_rollout_actions_release_id'), 'rollout_actions', ['release_id'], unique=False)
    op.create_table('rollout_webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_rollout_webhooks_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_webhooks')),
    sa.UniqueConstraint('account_id', 'url', name=op.f('uq_rollout_webhooks_account_id'))
    )
    op.create_index(op.f('ix_rollout_webhooks_account_id'), 'rollout_webhooks', ['account_id'], unique=False)


def downgrade():
    op.drop_table('rollout_webhooks')
    op.drop_table('rollout_actions')
    op.drop_table('rollouts')
    op.drop_table('release_tags')
    op.drop_table('device_tags')
    op.execute(
        "DELETE FROM deployments WHERE status IN ('reverting', 'reverted', 'revert_failed')"
    )
    with op.batch_alter_table('deployments', schema=None, recreate='always') as batch_op:
        batch_op.drop_column('revert_to')
        batch_op.drop_constraint(op.f('ck_deployments_status'), type_='check')
        batch_op.alter_column('status', existing_type=sa.String(length=16), type_=sa.String(length=12))
        batch_op.create_check_constraint(op.f('ck_deployments_status'), sa.text(OLD_STATUSES))
    with op.batch_alter_table('release_devices', schema=None) as batch_op:
        batch_op.drop_index('ix_release_devices_release_id_wave')
        batch_op.drop_column('wave')
        batch_op.drop_column('listed')
