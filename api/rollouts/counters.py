"""Per-wave counters of rollout releases: what a wave decision reads instead of counting the wave.

Table ``rollout_wave_counts`` (:mod:`api.rollouts.models`): per (release, wave) the number of
targets (bucket ``targets``) and of targets with a stored deployment in each status. Database
triggers (migration ``0015_rollout_wave_counts``) keep it in the statement of every write to
``deployments`` or ``release_devices`` -- a report, queueing, superseding, a tag change, a
revert, a cascade -- so reading a wave's counts costs a few rows at any fleet size and is
exactly as current as the rows the transaction sees.

Repairable: :func:`recount` counts the rows again, logs any difference and corrects it (``flask
--app api rollouts recount RELEASE``; the worker checks every rollout periodically).
"""

from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy import and_, func, select, update

from api.bulk import dialect_insert
from api.extensions import db
from api.models import Deployment, release_devices
from api.rollouts.models import Rollout, rollout_wave_counts

log = logging.getLogger(__name__)

_rd, _dep, _c = release_devices, Deployment.__table__, rollout_wave_counts
TARGETS = "targets"


def statuses(release_id: int, wave: int | None = None) -> dict[int, Counter]:
    """{wave: Counter(status)} of a rollout release's targets from the counters (status None:
    no stored deployment), the shape of :func:`counted`."""
    stmt = select(_c.c.wave, _c.c.bucket, _c.c.n).where(_c.c.release_id == release_id)
    if wave is not None:
        stmt = stmt.where(_c.c.wave == wave)
    buckets: dict[int, dict[str, int]] = {}
    for w, bucket, n in db.session.execute(stmt):
        buckets.setdefault(w, {})[bucket] = n
    return {w: _as_statuses(b) for w, b in buckets.items() if b.get(TARGETS)}


def counted(release_id: int) -> dict[int, Counter]:
    """{wave: Counter(status)} counted from the rows (a scan of the release's targets)."""
    stmt = (
        select(_rd.c.wave, _dep.c.status, func.count())
        .select_from(
            _rd.outerjoin(
                _dep,
                and_(_dep.c.release_id == _rd.c.release_id, _dep.c.device_id == _rd.c.device_id),
            )
        )
        .where(_rd.c.release_id == release_id, _rd.c.wave.is_not(None))
        .group_by(_rd.c.wave, _dep.c.status)
    )
    counts: dict[int, Counter] = {}
    for w, status, n in db.session.execute(stmt):
        counts.setdefault(w, Counter())[status] += n
    return counts


def _as_statuses(buckets: dict[str, int]) -> Counter:
    stored: Counter[str | None] = Counter({b: n for b, n in buckets.items() if b != TARGETS and n})
    stored[None] = buckets.get(TARGETS, 0) - sum(stored.values())
    return stored


def _as_buckets(statuses: Counter) -> dict[str, int]:
    buckets = {str(s): n for s, n in statuses.items() if s is not None and n}
    buckets[TARGETS] = sum(statuses.values())
    return {b: n for b, n in buckets.items() if n}


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
    stored = {
        (w, b): n
        for w, b, n in db.session.execute(
            select(_c.c.wave, _c.c.bucket, _c.c.n).where(_c.c.release_id == release_id)
        )
    }
    actual = {
        (w, b): n
        for w, counter in counted(release_id).items()
        for b, n in _as_buckets(counter).items()
    }
    drift = {
        key: (stored.get(key, 0), actual.get(key, 0))
        for key in sorted(stored.keys() | actual.keys())
        if stored.get(key, 0) != actual.get(key, 0)
    }
    for (wave, bucket), (was, now) in drift.items():
        stmt = dialect_insert(_c).values(
            release_id=release_id, wave=wave, bucket=bucket, n=now - was
        )
        db.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[_c.c.release_id, _c.c.wave, _c.c.bucket],
                set_={"n": _c.c.n + stmt.excluded.n},
            )
        )
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
