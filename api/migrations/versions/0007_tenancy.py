"""tenancy: unit_id unique per account, minion enrollments (the proven account of a minion),
enrollment tokens, platform master tokens; execute policy: accounts that allowed every command
now start from the safe default (docs/security.md)

Revision ID: 0007_tenancy
Revises: 0006_audit_log
Create Date: 2026-11-29 17:20:00

"""
import logging

from alembic import op
import sqlalchemy as sa


revision = '0007_tenancy'
down_revision = '0006_audit_log'
branch_labels = None
depends_on = None

log = logging.getLogger('alembic.runtime.migration')


def upgrade():
    op.create_table('minion_enrollments',
    sa.Column('unit_id', sa.String(length=255), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('enrollment_token_id', sa.Integer(), nullable=True),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_minion_enrollments_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('unit_id', name=op.f('pk_minion_enrollments'))
    )
    with op.batch_alter_table('minion_enrollments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_minion_enrollments_account_id'), ['account_id'], unique=False)

    op.create_table('enrollment_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('expires', sa.DateTime(timezone=True), nullable=True),
    sa.Column('max_uses', sa.Integer(), nullable=True),
    sa.Column('uses', sa.Integer(), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_enrollment_tokens_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrollment_tokens')),
    sa.UniqueConstraint('digest', name=op.f('uq_enrollment_tokens_digest'))
    )
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrollment_tokens_account_id'), ['account_id'], unique=False)

    op.create_table('platform_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_platform_tokens')),
    sa.UniqueConstraint('digest', name=op.f('uq_platform_tokens_digest'))
    )

    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_constraint('uq_devices_unit_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_devices_account_id'), ['account_id', 'unit_id'])
        batch_op.create_index(batch_op.f('ix_devices_unit_id'), ['unit_id'], unique=False)

    # unit_ids were globally unique until now: every existing device keeps serving its minion.
    bind = op.get_bind()
    bind.execute(sa.text(
        "INSERT INTO minion_enrollments (unit_id, account_id, method, enrolled_at) "
        "SELECT unit_id, account_id, 'migration', created FROM devices"
    ))

    # Execute policy: no settings row, or allowed_commands NULL, used to mean "every command";
    # it now means the safe default. Say which accounts that changes.
    names = [r[0] for r in bind.execute(sa.text(
        "SELECT a.name FROM accounts a LEFT JOIN execute_settings s ON s.account_id = a.id "
        "WHERE s.account_id IS NULL OR s.allowed_commands IS NULL ORDER BY a.name"
    ))]
    if names:
        message = (
            f"execute policy: {len(names)} account(s) that could execute every command now use the "
            "safe default (test.ping, docker.logs, docker.ps, docker.release_status, minionutil.*, "
            "state.sls docker.release): " + ", ".join(names[:50]) + (" ..." if len(names) > 50 else "")
            + "; widen with `flask --app api accounts commands NAME --allow ...` (docs/security.md)"
        )
        log.warning(message)
        print(message)


def downgrade():
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_devices_unit_id'))
        batch_op.drop_constraint(batch_op.f('uq_devices_account_id'), type_='unique')
        batch_op.create_unique_constraint('uq_devices_unit_id', ['unit_id'])
    op.drop_table('platform_tokens')
    with op.batch_alter_table('enrollment_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrollment_tokens_account_id'))
    op.drop_table('enrollment_tokens')
    with op.batch_alter_table('minion_enrollments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_minion_enrollments_account_id'))
    op.drop_table('minion_enrollments')
