"""rollout wave counters: rollout_wave_counts, kept by triggers on deployments and release_devices

Per (release, wave) of a rollout release: ``targets`` and the number of the wave's targets with a
stored deployment in each status. Triggers keep them in the transaction (the statement) of every
change to either table, whatever wrote it (a report, queueing, a tag change, a cascade), so a
report decides its wave from a few rows instead of counting the wave (issue 20). PostgreSQL:
statement-level triggers with transition tables for inserts and updates (one aggregate per
statement, so a release creation writing 100,000 targets updates each counter once), row-level
BEFORE DELETE triggers (see PG_DELETE); SQLite: row-level triggers.

A decrement never creates a row (a release being deleted takes its counters with it; a missing
row is drift that ``flask rollouts recount`` repairs).

Revision ID: 0015_rollout_wave_counts
Revises: 0014_release_bind_prefixes
Create Date: 2026-11-30 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0015_rollout_wave_counts'
down_revision = '0014_release_bind_prefixes'
branch_labels = None
depends_on = None

TABLES = ('deployments', 'release_devices')
OPS = ('INSERT', 'UPDATE', 'DELETE')


# -- PostgreSQL -------------------------------------------------------------------------------

def _pg_deltas(table, rows, sign):
    """(release_id, wave, bucket, d) of the transition table ``rows``."""
    if table == 'deployments':
        return (
            f"SELECT rd.release_id, rd.wave, x.status AS bucket, {sign} AS d FROM {rows} x "
            "JOIN release_devices rd ON rd.release_id = x.release_id AND rd.device_id = x.device_id "
            "WHERE rd.wave IS NOT NULL"
        )
    return (
        f"SELECT x.release_id, x.wave, 'targets' AS bucket, {sign} AS d FROM {rows} x "
        "WHERE x.wave IS NOT NULL "
        f"UNION ALL SELECT x.release_id, x.wave, dep.status, {sign} FROM {rows} x "
        "JOIN deployments dep ON dep.release_id = x.release_id AND dep.device_id = x.device_id "
        "WHERE x.wave IS NOT NULL"
    )


def _pg_apply(deltas):
    # rows in key order: two statements changing the same counters lock them in the same order
    return (
        "INSERT INTO rollout_wave_counts AS c (release_id, wave, bucket, n) "
        f"SELECT release_id, wave, bucket, sum(d)::integer FROM ({deltas}) deltas "
        "GROUP BY release_id, wave, bucket "
        "HAVING sum(d) > 0 OR (sum(d) < 0 AND EXISTS (SELECT 1 FROM rollout_wave_counts e "
        "WHERE e.release_id = deltas.release_id AND e.wave = deltas.wave AND e.bucket = deltas.bucket)) "
        "ORDER BY release_id, wave, bucket "
        "ON CONFLICT (release_id, wave, bucket) DO UPDATE SET n = c.n + excluded.n;"
    )


def _pg_function(table):
    insert = _pg_apply(_pg_deltas(table, 'new_rows', 1))
    update = _pg_apply(
        f"{_pg_deltas(table, 'old_rows', -1)} UNION ALL {_pg_deltas(table, 'new_rows', 1)}"
    )
    return (
        f"CREATE FUNCTION rollout_wave_counts_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF TG_OP = 'INSERT' THEN {insert} ELSE {update} END IF; RETURN NULL; END $$"
    )


# A delete is counted row by row BEFORE the row goes: a device's deletion cascades to both tables
# in one statement, and AFTER triggers of a cascade fire only once both are gone (neither could
# then see the other's row: the wave of a deployment, the status of a target).
PG_DELETE = {
    'deployments': (
        "UPDATE rollout_wave_counts c SET n = c.n - 1 FROM release_devices rd "
        "WHERE rd.release_id = OLD.release_id AND rd.device_id = OLD.device_id "
        "AND c.release_id = rd.release_id AND c.wave = rd.wave AND c.bucket = OLD.status;"
    ),
    'release_devices': (
        "UPDATE rollout_wave_counts SET n = n - 1 "
        "WHERE release_id = OLD.release_id AND wave = OLD.wave AND (bucket = 'targets' OR "
        "bucket = (SELECT status FROM deployments WHERE release_id = OLD.release_id "
        "AND device_id = OLD.device_id));"
    ),
}


def _pg_upgrade():
    for table in TABLES:
        op.execute(_pg_function(table))
        for event in ('INSERT', 'UPDATE'):
            referencing = {
                'INSERT': 'NEW TABLE AS new_rows',
                'UPDATE': 'OLD TABLE AS old_rows NEW TABLE AS new_rows',
            }[event]
            op.execute(
                f"CREATE TRIGGER rollout_wave_counts_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {referencing} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION rollout_wave_counts_{table}()"
            )
        op.execute(
            f"CREATE FUNCTION rollout_wave_counts_{table}_delete() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {PG_DELETE[table]} RETURN OLD; END $$"
        )
        when = ' WHEN (OLD.wave IS NOT NULL)' if table == 'release_devices' else ''
        op.execute(
            f"CREATE TRIGGER rollout_wave_counts_delete BEFORE DELETE ON {table} "
            f"FOR EACH ROW{when} EXECUTE FUNCTION rollout_wave_counts_{table}_delete()"
        )


def _pg_downgrade():
    for table in TABLES:
        for event in OPS:
            op.execute(f"DROP TRIGGER IF EXISTS rollout_wave_counts_{event.lower()} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS rollout_wave_counts_{table}()")
        op.execute(f"DROP FUNCTION IF EXISTS rollout_wave_counts_{table}_delete()")


# -- SQLite ---------------------------------------------------------------------------------

def _sqlite_add(release, wave, bucket, source=''):
    return (
        f"INSERT INTO rollout_wave_counts (release_id, wave, bucket, n) "
        f"SELECT {release}, {wave}, {bucket}, 1 {source} "
        f"{'AND' if 'WHERE' in source else 'WHERE'} {wave} IS NOT NULL "
        "ON CONFLICT (release_id, wave, bucket) DO UPDATE SET n = n + 1;"
    )


def _sqlite_remove(release, wave, bucket):
    return (
        f"UPDATE rollout_wave_counts SET n = n - 1 "
        f"WHERE release_id = {release} AND wave = {wave} AND bucket = {bucket};"
    )


def _rd_wave(row):
    return (
        f"(SELECT wave FROM release_devices WHERE release_id = {row}.release_id "
        f"AND device_id = {row}.device_id)"
    )


def _dep_status(row):
    return (
        f"(SELECT status FROM deployments WHERE release_id = {row}.release_id "
        f"AND device_id = {row}.device_id)"
    )


def _sqlite_statements(table, row, sign):
    if table == 'deployments':
        if sign > 0:
            return [_sqlite_add(f'{row}.release_id', _rd_wave(row), f'{row}.status')]
        return [_sqlite_remove(f'{row}.release_id', _rd_wave(row), f'{row}.status')]
    if sign > 0:
        return [
            _sqlite_add(f'{row}.release_id', f'{row}.wave', "'targets'"),
            _sqlite_add(
                f'{row}.release_id', f'{row}.wave', 'dep.status',
                f"FROM deployments dep WHERE dep.release_id = {row}.release_id "
                f"AND dep.device_id = {row}.device_id",
            ),
        ]
    return [
        _sqlite_remove(f'{row}.release_id', f'{row}.wave', "'targets'"),
        _sqlite_remove(f'{row}.release_id', f'{row}.wave', _dep_status(row)),
    ]


def _sqlite_upgrade():
    columns = {'deployments': 'status', 'release_devices': 'wave'}
    for table in TABLES:
        key = columns[table]
        changed = ' OR '.join(
            f'OLD.{c} IS NOT NEW.{c}' for c in (key, 'release_id', 'device_id')
        )
        bodies = {
            'INSERT': ('', _sqlite_statements(table, 'NEW', 1)),
            'UPDATE': (
                f'OF {key}, release_id, device_id ',
                _sqlite_statements(table, 'OLD', -1) + _sqlite_statements(table, 'NEW', 1),
            ),
            'DELETE': ('', _sqlite_statements(table, 'OLD', -1)),
        }
        for event, (columns_of, statements) in bodies.items():
            when = {
                'INSERT': ' WHEN NEW.wave IS NOT NULL' if table == 'release_devices' else '',
                'UPDATE': f' WHEN {changed}',
                'DELETE': ' WHEN OLD.wave IS NOT NULL' if table == 'release_devices' else '',
            }[event]
            op.execute(
                f"CREATE TRIGGER rollout_wave_counts_{table}_{event.lower()} "
                f"AFTER {event} {columns_of}ON {table}{when} BEGIN {' '.join(statements)} END"
            )


def _sqlite_downgrade():
    for table in TABLES:
        for event in OPS:
            op.execute(f"DROP TRIGGER IF EXISTS rollout_wave_counts_{table}_{event.lower()}")


def upgrade():
    op.create_table('rollout_wave_counts',
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.String(length=16), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_rollout_wave_counts_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', 'wave', 'bucket', name=op.f('pk_rollout_wave_counts'))
    )
    # the counters of the rows that exist now (the same count as api/rollouts/counters.py recount)
    op.execute(
        "INSERT INTO rollout_wave_counts (release_id, wave, bucket, n) "
        "SELECT release_id, wave, 'targets', count(*) FROM release_devices "
        "WHERE wave IS NOT NULL GROUP BY release_id, wave "
        "UNION ALL SELECT rd.release_id, rd.wave, dep.status, count(*) FROM release_devices rd "
        "JOIN deployments dep ON dep.release_id = rd.release_id AND dep.device_id = rd.device_id "
        "WHERE rd.wave IS NOT NULL GROUP BY rd.release_id, rd.wave, dep.status"
    )
    if op.get_bind().dialect.name == 'postgresql':
        _pg_upgrade()
    else:
        _sqlite_upgrade()


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        _pg_downgrade()
    else:
        _sqlite_downgrade()
    op.drop_table('rollout_wave_counts')
