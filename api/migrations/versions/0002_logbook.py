"""logbook: field catalog, samples (clustered on field_id, ts), minute/hour rollups

Revision ID: 0002_logbook
Revises: 0001_core
Create Date: 2026-11-27 22:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002_logbook'
down_revision = '0001_core'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('logbook_fields',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('field_type', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_logbook_fields_device_id_devices'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_logbook_fields')),
    sa.UniqueConstraint('device_id', 'name', name=op.f('uq_logbook_fields_device_id'))
    )
    op.create_table('logbook_samples',
    sa.Column('field_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('ts', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('value_float', sa.Double(), nullable=True),
    sa.Column('value_int', sa.BigInteger(), nullable=True),
    sa.Column('value_text', sa.Text(), nullable=True),
    sa.Column('lat', sa.Double(), nullable=True),
    sa.Column('lon', sa.Double(), nullable=True),
    sa.ForeignKeyConstraint(['field_id'], ['logbook_fields.id'], name=op.f('fk_logbook_samples_field_id_logbook_fields'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('field_id', 'ts', name=op.f('pk_logbook_samples')),
    sqlite_with_rowid=False
    )
    op.create_table('logbook_rollups',
    sa.Column('field_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('width', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('start', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('sum', sa.Double(), nullable=False),
    sa.Column('min', sa.Double(), nullable=False),
    sa.Column('max', sa.Double(), nullable=False),
    sa.Column('max_ts', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['field_id'], ['logbook_fields.id'], name=op.f('fk_logbook_rollups_field_id_logbook_fields'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('field_id', 'width', 'start', name=op.f('pk_logbook_rollups')),
    sqlite_with_rowid=False
    )


def downgrade():
    op.drop_table('logbook_rollups')
    op.drop_table('logbook_samples')
    op.drop_table('logbook_fields')
