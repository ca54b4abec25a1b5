"""Per-wave counters of rollout releases: what a wave decision reads instead of counting the wave.

Table ``rollout_wave_counts`` (:mod:`api.rollouts.models`): per (release, wave) the number of
targets (bucket ``targets``) and of targets with a stored deployment in each status. Database
triggers (migration ``0015_rollout_wave_counts``) keep it in the statement of every write to
``deployments`` or ``release_devices`` -- a report, queueing, superseding, a tag change, a
revert, a cascade -- so reading a wave's counts costs a few rows at any fleet size and is
exactly as current as the rows the transaction sees.

Sharded (migration ``0022_wave_count_shards``): on PostgreSQL a device's changes go to shard
``hashtext(device_id) & 31`` of its bucket, so reports of one wave update different rows and do
not wait for each other's commit; SQLite writes shard 0. Readers sum the shards.

Repairable: :func:`recount` counts the rows again, logs any difference and corrects it (``flask
--app api rollouts recount RELEASE``; the worker checks every rollout periodically).
"""

from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import and_, bindparam, func, literal, select, update

from api.bulk import dialect_insert
from api.deployments.models import Deployment
from api.extensions import db
from api.releases.models import release_devices
from api.rollouts.models import Rollout, rollout_wave_counts

log = logging.getLogger(__name__)

_rd, _dep, _c = release_devices, Deployment.__table__, rollout_wave_counts
TARGETS = "targets"
SHARDS = 32  # migration 0022: hashtext(device_id) & (SHARDS - 1)


def _shard(device_id_column):
    """The shard the triggers add a device's changes to (migration 0022)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.hashtext(device_id_column).op("&")(SHARDS - 1)
    return literal(0)


def statuses(release_id: int, wave: int | None = None) -> dict[int, Counter]:
    """{wave: Counter(status)} of a rollout release's targets from the counters (status None:
    no stored deployment), the shape of :func:`counted`."""
    if wave is None:
        rows = db.session.execute(_STATUSES, {"release_id": release_id})
    else:
        rows = db.session.execute(_WAVE_STATUSES, {"release_id": release_id, "wave": wave})
    buckets: dict[int, dict[str, int]] = {}
    for w, bucket, n in rows:
        buckets.setdefault(w, {})[bucket] = n
    return {w: _as_statuses(b) for w, b in buckets.items() if b.get(TARGETS)}


# built once: a report reads its wave's counters (construction would cost more than the query)
_STATUSES = (
    select(_c.c.wave, _c.c.bucket, func.sum(_c.c.n))
    .where(_c.c.release_id == bindparam("release_id"))
    .group_by(_c.c.wave, _c.c.bucket)
)
_WAVE_STATUSES = _STATUSES.where(_c.c.wave == bindparam("wave"))


def counted(release_id: int) -> dict[int, Counter]:
    """{wave: Counter(status)} counted from the rows (a scan of the release's targets)."""
    counts: dict[int, Counter] = {}
    for (w, status, _), n in _counted_shards(release_id).items():
        counts.setdefault(w, Counter())[status] += n
    return counts


def _counted_shards(release_id: int) -> Counter:
    """{(wave, status, shard): n} counted from the rows."""
    shard = _shard(_rd.c.device_id)
    stmt = (
        select(_rd.c.wave, _dep.c.status, shard, func.count())
        .select_from(
            _rd.outerjoin(
                _dep,
                and_(_dep.c.release_id == _rd.c.release_id, _dep.c.device_id == _rd.c.device_id),
            )
        )
        .where(_rd.c.release_id == release_id, _rd.c.wave.is_not(None))
        .group_by(_rd.c.wave, _dep.c.status, shard)
    )
    return Counter({(w, status, s): n for w, status, s, n in db.session.execute(stmt)})


def _as_statuses(buckets: dict[str, int]) -> Counter:
    stored: Counter[str | None] = Counter({b: n for b, n in buckets.items() if b != TARGETS and n})
    stored[None] = buckets.get(TARGETS, 0) - sum(stored.values())
    return stored


def _as_buckets(statuses: Counter) -> dict[str, int]:
    buckets = {str(s): n for s, n in statuses.items() if s is not None and n}
    buckets[TARGETS] = sum(statuses.values())
    return {b: n for b, n in buckets.items() if n}


def _as_shard_buckets(rows: Counter) -> Counter:
    """{(wave, bucket, shard): n} of :func:`_counted_shards` rows, the counters' shape."""
    by_shard: dict[tuple[int, int], Counter] = {}
    for (w, status, shard), n in rows.items():
        by_shard.setdefault((w, shard), Counter())[status] += n
    return Counter(
        {
            (w, b, shard): n
            for (w, shard), statuses_ in by_shard.items()
            for b, n in _as_buckets(statuses_).items()
        }
    )


def _totals(shards: Counter) -> Counter:
    totals: Counter = Counter()
    for (w, b, _), n in shards.items():
        totals[(w, b)] += n
    return totals


def recount(release_id: int) -> dict[tuple[int, str], tuple[int, int]]:
    """Count the release's rows again and correct its counters; returns the drift found,
    ``{(wave, bucket): (counter, counted)}`` (empty when they agreed). Logs any drift. The caller
    commits.

    Exact while reports arrive: the counter rows are locked first (PostgreSQL: no trigger changes
    them until this transaction ends; SQLite: the write lock), the rows are counted after that,
    and the correction is added as a difference, so a change that commits later lands on top.
    """
    db.session.flush()
    db.session.execute(update(_c).where(_c.c.release_id == release_id).values(n=_c.c.n))
    stored = Counter(
        {
            (w, b, s): n
            for w, b, s, n in db.session.execute(
                select(_c.c.wave, _c.c.bucket, _c.c.shard, _c.c.n).where(
                    _c.c.release_id == release_id
                )
            )
        }
    )
    actual = _as_shard_buckets(_counted_shards(release_id))
    for (w, b, shard), now in list(actual.items()):
        was = stored.get((w, b, shard), 0)
        if was == now:
            continue
        stmt = dialect_insert(_c).values(
            release_id=release_id, wave=w, bucket=b, shard=shard, n=now - was
        )
        db.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[_c.c.release_id, _c.c.wave, _c.c.bucket, _c.c.shard],
                set_={"n": _c.c.n + stmt.excluded.n},
            )
        )
    for (w, b, shard), was in stored.items():
        if (w, b, shard) not in actual and was:
            db.session.execute(
                update(_c)
                .where(
                    _c.c.release_id == release_id,
                    _c.c.wave == w,
                    _c.c.bucket == b,
                    _c.c.shard == shard,
                )
                .values(n=_c.c.n - was)
            )
    total_stored, total_actual = _totals(stored), _totals(actual)
    drift = {
        key: (total_stored.get(key, 0), total_actual.get(key, 0))
        for key in sorted(total_stored.keys() | total_actual.keys())
        if total_stored.get(key, 0) != total_actual.get(key, 0)
    }
    if drift:
        log.warning(
            "rollout of release %s: counters drifted from the rows, corrected: %s",
            release_id,
            ", ".join(f"wave {w} {b}: {was} -> {now}" for (w, b), (was, now) in drift.items()),
        )
    return drift


def check_all() -> int:
    """Worker: recount every rollout (one transaction each); returns how many had drifted."""
    drifted = 0
    for release_id in db.session.scalars(
        select(Rollout.release_id).order_by(Rollout.release_id)
    ).all():
        drifted += bool(recount(release_id))
        db.session.commit()
    return drifted
