"""rollout wave counters in shards: reports of one wave no longer wait on one counter row

``rollout_wave_counts`` gets a ``shard`` column (part of the key). On PostgreSQL the triggers
of migration 0015 add a device's changes to shard ``hashtext(device_id) & 31``, so two reports of
the same wave (other devices) change different rows and neither waits for the other's commit (a
counter row is locked from its update to the commit, WAL flush included: one row per bucket
serialised every report of a wave, issue 20). A device's increments and decrements always land
in its own shard, so a decrement finds the row its increment made. Readers sum the shards. SQLite
has one writer at a time anyway: its triggers keep shard 0.

Revision ID: 0022_wave_count_shards
Revises: 0021_devices_search_lower
Create Date: 2026-12-07 15:30:00

"""
import importlib.util
from pathlib import Path

from alembic import op
import sqlalchemy as sa


revision = '0022_wave_count_shards'
down_revision = '0021_devices_search_lower'
branch_labels = None
depends_on = None

SHARD = "(hashtext({}) & 31)"  # api/rollouts/counters.py SHARDS
TABLES = ('deployments', 'release_devices')


def _counters_0015():
    path = Path(__file__).with_name('0015_rollout_wave_counts.py')
    spec = importlib.util.spec_from_file_location('berth_migration_0015', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- PostgreSQL -------------------------------------------------------------------------------

def _pg_deltas(table, rows, sign):
    """(release_id, wave, bucket, shard, d) of the transition table ``rows``."""
    shard = SHARD.format('x.device_id')
    if table == 'deployments':
        return (
            f"SELECT rd.release_id, rd.wave, x.status AS bucket, {shard} AS shard, {sign} AS d "
            f"FROM {rows} x JOIN release_devices rd ON rd.release_id = x.release_id "
            "AND rd.device_id = x.device_id WHERE rd.wave IS NOT NULL"
        )
    return (
        f"SELECT x.release_id, x.wave, 'targets' AS bucket, {shard} AS shard, {sign} AS d "
        f"FROM {rows} x WHERE x.wave IS NOT NULL "
        f"UNION ALL SELECT x.release_id, x.wave, dep.status, {shard}, {sign} FROM {rows} x "
        "JOIN deployments dep ON dep.release_id = x.release_id AND dep.device_id = x.device_id "
        "WHERE x.wave IS NOT NULL"
    )


def _pg_apply(deltas):
    # rows in key order: two statements changing the same counters lock them in the same order
    return (
        "INSERT INTO rollout_wave_counts AS c (release_id, wave, bucket, shard, n) "
        f"SELECT release_id, wave, bucket, shard, sum(d)::integer FROM ({deltas}) deltas "
        "GROUP BY release_id, wave, bucket, shard "
        "HAVING sum(d) > 0 OR (sum(d) < 0 AND EXISTS (SELECT 1 FROM rollout_wave_counts e "
        "WHERE e.release_id = deltas.release_id AND e.wave = deltas.wave "
        "AND e.bucket = deltas.bucket AND e.shard = deltas.shard)) "
        "ORDER BY release_id, wave, bucket, shard "
        "ON CONFLICT (release_id, wave, bucket, shard) DO UPDATE SET n = c.n + excluded.n;"
    )


def _pg_function(table):
    insert = _pg_apply(_pg_deltas(table, 'new_rows', 1))
    update = _pg_apply(
        f"{_pg_deltas(table, 'old_rows', -1)} UNION ALL {_pg_deltas(table, 'new_rows', 1)}"
    )
    return (
        f"CREATE OR REPLACE FUNCTION rollout_wave_counts_{table}() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ "
        f"BEGIN IF TG_OP = 'INSERT' THEN {insert} ELSE {update} END IF; RETURN NULL; END $$"
    )


PG_DELETE = {
    'deployments': (
        "UPDATE rollout_wave_counts c SET n = c.n - 1 FROM release_devices rd "
        "WHERE rd.release_id = OLD.release_id AND rd.device_id = OLD.device_id "
        "AND c.release_id = rd.release_id AND c.wave = rd.wave AND c.bucket = OLD.status "
        f"AND c.shard = {SHARD.format('OLD.device_id')};"
    ),
    'release_devices': (
        "UPDATE rollout_wave_counts SET n = n - 1 "
        "WHERE release_id = OLD.release_id AND wave = OLD.wave "
        f"AND shard = {SHARD.format('OLD.device_id')} AND (bucket = 'targets' OR "
        "bucket = (SELECT status FROM deployments WHERE release_id = OLD.release_id "
        "AND device_id = OLD.device_id));"
    ),
}


def _pg_functions(function, delete):
    for table in TABLES:
        op.execute(function(table))
        op.execute(
            f"CREATE OR REPLACE FUNCTION rollout_wave_counts_{table}_delete() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {delete[table]} RETURN OLD; END $$"
        )


def _fill(shard):
    """The counters counted from the rows (as api/rollouts/counters.py recount counts)."""
    op.execute("DELETE FROM rollout_wave_counts")
    op.execute(
        "INSERT INTO rollout_wave_counts (release_id, wave, bucket, shard, n) "
        f"SELECT release_id, wave, 'targets', {shard.format('device_id')}, count(*) "
        "FROM release_devices WHERE wave IS NOT NULL GROUP BY 1, 2, 3, 4 "
        f"UNION ALL SELECT rd.release_id, rd.wave, dep.status, {shard.format('rd.device_id')}, "
        "count(*) FROM release_devices rd JOIN deployments dep ON dep.release_id = rd.release_id "
        "AND dep.device_id = rd.device_id WHERE rd.wave IS NOT NULL GROUP BY 1, 2, 3, 4"
    )


def _key(columns):
    op.execute("ALTER TABLE rollout_wave_counts DROP CONSTRAINT pk_rollout_wave_counts")
    op.execute(
        "ALTER TABLE rollout_wave_counts ADD CONSTRAINT pk_rollout_wave_counts "
        f"PRIMARY KEY ({', '.join(columns)})"
    )


# -- SQLite ---------------------------------------------------------------------------------

def _sqlite_triggers(module):
    """0015's SQLite triggers, adding to shard 0 (the conflict target names the new key)."""
    execute = op.execute

    def shard_0(statement):
        execute(
            statement.replace(
                "INSERT INTO rollout_wave_counts (release_id, wave, bucket, n)",
                "INSERT INTO rollout_wave_counts (release_id, wave, bucket, shard, n)",
            )
            .replace(
                "ON CONFLICT (release_id, wave, bucket)",
                "ON CONFLICT (release_id, wave, bucket, shard)",
            )
            .replace(", 1 ", ", 0, 1 ")
        )

    module.op.execute = shard_0
    try:
        module._sqlite_upgrade()
    finally:
        module.op.execute = execute


def upgrade():
    sqlite = op.get_bind().dialect.name == 'sqlite'
    counters = _counters_0015()
    if sqlite:
        counters._sqlite_downgrade()
        with op.batch_alter_table('rollout_wave_counts', recreate='always') as batch_op:
            batch_op.add_column(
                sa.Column('shard', sa.Integer(), nullable=False, server_default='0')
            )
            batch_op.drop_constraint('pk_rollout_wave_counts', type_='primary')
            batch_op.create_primary_key(
                'pk_rollout_wave_counts', ['release_id', 'wave', 'bucket', 'shard']
            )
        _sqlite_triggers(counters)
        return
    op.add_column(
        'rollout_wave_counts',
        sa.Column('shard', sa.Integer(), nullable=False, server_default='0'),
    )
    _key(['release_id', 'wave', 'bucket', 'shard'])
    _pg_functions(_pg_function, PG_DELETE)
    _fill(SHARD)


def downgrade():
    sqlite = op.get_bind().dialect.name == 'sqlite'
    counters = _counters_0015()
    if sqlite:
        counters._sqlite_downgrade()
        with op.batch_alter_table('rollout_wave_counts', recreate='always') as batch_op:
            batch_op.drop_constraint('pk_rollout_wave_counts', type_='primary')
            batch_op.drop_column('shard')
            batch_op.create_primary_key('pk_rollout_wave_counts', ['release_id', 'wave', 'bucket'])
        counters._sqlite_upgrade()
        return
    _fill('0')
    _key(['release_id', 'wave', 'bucket'])
    op.drop_column('rollout_wave_counts', 'shard')

    def function(table):
        return counters._pg_function(table).replace(
            "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
        )

    _pg_functions(function, counters.PG_DELETE)
