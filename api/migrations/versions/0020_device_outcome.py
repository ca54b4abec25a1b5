"""devices.outcome: each device's newest stored deployment's state, folded (the console's fleet
page, api/deployments/fleet.py), kept by triggers on deployments; index (account_id, outcome, unit_id)

The fleet page counts devices by outcome and filters by it; computing it per request probed every
device's newest deployment (a correlated subquery per device of the account: 300 ms and more at
100,000 devices). Triggers keep ``devices.outcome`` in the statement of every write to
``deployments`` -- a report, queueing, superseding, a revert, a deletion or a cascade, whatever
wrote it -- so the counts read an index. PostgreSQL: statement-level triggers with transition
tables (one statement per write statement, however many devices it touched); SQLite: row-level
triggers. ``api.deployments.fleet.outcome_drift`` recomputes it from the rows (checked after every
test that uses the ``app`` fixture).

A migration that recreates ``deployments`` on SQLite (batch_alter_table) drops these triggers:
it must create them again, as 0016 does for 0015's.

Revision ID: 0020_device_outcome
Revises: 0019_devices_display_index
Create Date: 2026-12-07 15:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0020_device_outcome'
down_revision = '0019_devices_display_index'
branch_labels = None
depends_on = None

OPS = ('insert', 'update', 'delete')


def _fold(status):
    """SQL: berth.contract.DeviceOutcome of a newest deployment's ``status`` (NULL: none)."""
    return (
        f"CASE WHEN {status} IS NULL THEN 'never_reported' "
        f"WHEN {status} IN ('succeeded', 'reverted') THEN 'succeeded' "
        f"WHEN {status} IN ('failed', 'revert_failed') THEN 'failed' ELSE 'pending' END"
    )


# -- PostgreSQL -------------------------------------------------------------------------------

def _pg_refresh(touched):
    """Set the outcome of the devices ``touched`` (a query of device_id) from their rows."""
    return (
        f"WITH touched AS (SELECT DISTINCT device_id FROM ({touched}) t), "
        "newest AS (SELECT DISTINCT ON (dep.device_id) dep.device_id, dep.status "
        "FROM deployments dep WHERE dep.device_id IN (SELECT device_id FROM touched) "
        "ORDER BY dep.device_id, dep.release_id DESC) "
        f"UPDATE devices d SET outcome = {_fold('newest.status')} "
        "FROM touched LEFT JOIN newest ON newest.device_id = touched.device_id "
        f"WHERE d.id = touched.device_id AND d.outcome IS DISTINCT FROM {_fold('newest.status')};"
    )


PG_TOUCHED = {
    'insert': "SELECT device_id FROM new_rows",
    'delete': "SELECT device_id FROM old_rows",
    # only rows whose state, release or device changed (not a timestamp's or an attempt's update)
    'update': (
        "SELECT n.device_id FROM new_rows n JOIN old_rows o ON o.id = n.id "
        "WHERE n.status IS DISTINCT FROM o.status OR n.release_id IS DISTINCT FROM o.release_id "
        "OR n.device_id IS DISTINCT FROM o.device_id "
        "UNION ALL SELECT o.device_id FROM new_rows n JOIN old_rows o ON o.id = n.id "
        "WHERE n.device_id IS DISTINCT FROM o.device_id"
    ),
}
PG_REFERENCING = {
    'insert': 'NEW TABLE AS new_rows',
    'update': 'OLD TABLE AS old_rows NEW TABLE AS new_rows',
    'delete': 'OLD TABLE AS old_rows',
}


def _pg_upgrade():
    for event in OPS:
        op.execute(
            f"CREATE FUNCTION device_outcome_{event}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {_pg_refresh(PG_TOUCHED[event])} RETURN NULL; END $$"
        )
        op.execute(
            f"CREATE TRIGGER device_outcome_{event} AFTER {event.upper()} ON deployments "
            f"REFERENCING {PG_REFERENCING[event]} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION device_outcome_{event}()"
        )


def _pg_downgrade():
    for event in OPS:
        op.execute(f"DROP TRIGGER IF EXISTS device_outcome_{event} ON deployments")
        op.execute(f"DROP FUNCTION IF EXISTS device_outcome_{event}()")


# -- SQLite ---------------------------------------------------------------------------------

def _newest_status(device):
    return (
        f"(SELECT status FROM deployments WHERE device_id = {device} AND release_id = "
        f"(SELECT max(release_id) FROM deployments WHERE device_id = {device}))"
    )


def _sqlite_refresh(device):
    return f"UPDATE devices SET outcome = {_fold(_newest_status(device))} WHERE id = {device};"


def _sqlite_upgrade():
    changed = ' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in ('status', 'release_id', 'device_id'))
    bodies = {
        'insert': ('', '', _sqlite_refresh('NEW.device_id')),
        'update': (
            'OF status, release_id, device_id ',
            f' WHEN {changed}',
            _sqlite_refresh('NEW.device_id') + ' ' + _sqlite_refresh('OLD.device_id'),
        ),
        'delete': ('', '', _sqlite_refresh('OLD.device_id')),
    }
    for event, (columns, when, body) in bodies.items():
        op.execute(
            f"CREATE TRIGGER device_outcome_{event} AFTER {event.upper()} {columns}ON deployments"
            f"{when} BEGIN {body} END"
        )


def _sqlite_downgrade():
    for event in OPS:
        op.execute(f"DROP TRIGGER IF EXISTS device_outcome_{event}")


def upgrade():
    op.add_column(
        'devices',
        sa.Column('outcome', sa.String(length=16), nullable=False, server_default='never_reported'),
    )
    # the devices that have stored deployments now (the others are never_reported)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "UPDATE devices d SET outcome = " + _fold('newest.status') + " FROM ("
            "SELECT DISTINCT ON (device_id) device_id, status FROM deployments "
            "ORDER BY device_id, release_id DESC) newest WHERE d.id = newest.device_id"
        )
        _pg_upgrade()
    else:
        op.execute(
            f"UPDATE devices SET outcome = {_fold(_newest_status('devices.id'))} "
            "WHERE id IN (SELECT device_id FROM deployments)"
        )
        _sqlite_upgrade()
    op.create_index(
        'ix_devices_account_id_outcome_unit_id', 'devices', ['account_id', 'outcome', 'unit_id']
    )


def downgrade():
    op.drop_index('ix_devices_account_id_outcome_unit_id', table_name='devices')
    if op.get_bind().dialect.name == 'postgresql':
        _pg_downgrade()
    else:
        _sqlite_downgrade()
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('outcome')
