"""The pure release planner: ``plan(current, target) -> [step]``.

Steps are :mod:`berth.release.steps` objects in the order docs/release.md
("What an apply does") fixes:
login, pull, check_digest (all before anything is stopped), stop, purge, create, start, verify,
then on success remove, drop_purged, prune, record. An empty plan means the
target release is applied and all its containers are running.
"""

from __future__ import annotations

from typing import Any

from berth.contract import Label
from berth.release import steps as st
from berth.release.model import EngineState, Target

PREVIOUS_SUFFIX = ".berth-previous"
PURGED_SUFFIX = ".berth-purged"


def login_key(host: str, username: str, password_digest: str) -> str:
    return f"{host}|{username}|{password_digest}"


def is_applied(current: EngineState, target: Target) -> bool:
    applied = current.applied or {}
    if (
        str(applied.get("release_id")) != str(target.release_id)
        or applied.get("version_hash") != target.version_hash
    ):
        return False
    by_name = {c["name"]: c for c in current.containers}
    for tc in target.containers:
        c = by_name.get(tc.fq_name)
        if (
            c is None
            or c["state"] != "running"
            or c["labels"].get(Label.VERSION_HASH) != target.version_hash
        ):
            return False
    return True


def old_containers(current: EngineState, target: Target) -> list[dict[str, Any]]:
    """Containers the target replaces: its initial containers, other releases', and stale copies of its own."""
    target_names = {c.fq_name for c in target.containers}
    initial = set(target.remove_containers)
    out = []
    for c in current.containers:
        release = c["labels"].get(Label.RELEASE)
        if (
            c["name"] in target_names
            or c["name"] in initial
            or (release is not None and release != str(target.release_id))
        ):
            out.append(c)
    return out


def plan(  # noqa: C901 - one section per step kind, in apply order
    current: EngineState, target: Target, login_keys: dict[str, str] | None = None
) -> list[st.Step]:
    """Ordered steps taking the engine from ``current`` to ``target``.

    ``login_keys`` maps a registry id to its :func:`login_key`; a registry whose key is
    in ``current.logged_in`` needs no login step.
    """
    if is_applied(current, target):
        return []
    steps: list[st.Step] = []
    login_keys = login_keys or {}

    pulls = []
    for ref in target.refs:
        if ref not in current.images:
            registry = target.registry_of(ref)
            pulls.append(st.Pull(ref, None if registry is None else str(registry)))
    # only registries something is pulled from: with every image cached an offline device still applies
    pulling_from = {p.registry for p in pulls}
    for registry_id, entry in target.registries.items():
        key = login_keys.get(str(registry_id))
        if str(registry_id) in pulling_from and (key is None or key not in current.logged_in):
            steps.append(st.Login(str(registry_id), entry["url"]))
    steps.extend(pulls)
    for ref in dict.fromkeys(tc.image for tc in target.containers if tc.digest):
        steps.append(st.CheckDigest(ref))

    old = old_containers(current, target)
    target_names = {c.fq_name for c in target.containers}
    for c in old:
        steps.append(
            st.Stop(
                c["name"],
                was_running=c["state"] in ("running", "restarting"),
                rename_to=c["name"] + PREVIOUS_SUFFIX if c["name"] in target_names else None,
            )
        )

    purges: list[st.Purge] = []
    for tc in target.containers:
        for path in tc.purge_paths:
            if all(p.path != path for p in purges):
                purges.append(st.Purge(path, f"{path}{PURGED_SUFFIX}-{target.release_id}"))
    steps.extend(purges)

    for tc in target.containers:
        steps.append(st.Create(tc.fq_name, tc.name, tc.image))
    names = tuple(tc.fq_name for tc in target.containers)
    if names:
        steps.append(st.Start(names))
        steps.append(st.Verify(names))

    removed = tuple(
        (c["name"] + PREVIOUS_SUFFIX) if c["name"] in target_names else c["name"] for c in old
    )
    if removed:
        steps.append(st.Remove(removed))
    if purges:
        steps.append(st.DropPurged(tuple(p.aside for p in purges)))

    applied = current.applied or {}
    if str(applied.get("release_id")) == str(target.release_id):
        kept = tuple(applied.get("previous_images") or ())  # the same release again
    else:
        kept = tuple(applied.get("images") or ())  # the release being replaced
    prune = prunable_images(current, target, old, kept)
    if prune:
        steps.append(st.Prune(tuple(prune)))
    summary = target.summary()
    steps.append(
        st.Record(
            release_id=summary["release_id"],
            version=summary["version"],
            version_hash=summary["version_hash"],
            project=summary["project"],
            containers=tuple(
                {"name": c.name, "fully_qualified_name": c.fq_name, "image": c.image}
                for c in target.containers
            ),
            images=tuple(target.refs),
            previous_images=tuple(r for r in kept if r not in target.refs),
        )
    )
    return steps


def prunable_images(
    current: EngineState, target: Target, old: list[dict[str, Any]], kept: tuple[str, ...] = ()
) -> list[str]:
    """Images of replaced containers and of earlier releases that nothing keeps.

    Kept: every image and required-tag image of the target, the image of any container
    that stays, and ``kept`` -- the images of the release the target replaces, so that a
    revert or rollback to it needs no registry (one release more on disk). Images of the
    release before that are removed. Unrelated images on the engine are never touched.
    """
    old_names = {c["name"] for c in old}
    keep = (
        set(target.refs)
        | set(kept)
        | {c["image"] for c in current.containers if c["name"] not in old_names}
    )
    applied = current.applied or {}
    candidates = (
        [c["image"] for c in old]
        + list(applied.get("images") or [])
        + list(applied.get("previous_images") or [])
    )
    out = []
    for ref in candidates:
        if ref in current.images and ref not in keep and ref not in out:
            out.append(ref)
    return out
