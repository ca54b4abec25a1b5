"""A new release's images pinned to digests (docs/release.md "Digest pinning").

Every container without a ``digest`` in the body is resolved on its registry (the account's
stored credentials; Docker Hub for a container without a registry): the digest the registry
serves for ``image:tag`` at creation is what every wave of the release runs, whatever is pushed
under the tag later. Each distinct (registry, image, tag) is asked once per request, at most
``MAX_PARALLEL`` at a time, each registry call bounded by ``REGISTRY_TIMEOUT_SECONDS`` and the
whole resolution by ``PINNING_DEADLINE_SECONDS`` (api/limits.py). Registry calls are the
operator's own registries: they do not go through the webhook address rules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from sqlalchemy import select

from api.errors import ValidationError
from api.extensions import db
from api.limits import PINNING_DEADLINE_SECONDS, REGISTRY_TIMEOUT_SECONDS
from api.registries.models import Registry
from berth import registryclient
from berth.registryclient import RegistryError

log = logging.getLogger(__name__)

MAX_PARALLEL = 8

Key = tuple[int | None, str, str]  # (registry id, image, tag)


def pin(containers: list[dict]) -> None:
    """Set ``digest`` on each container (clean body values) that has none; a 400 naming
    ``containers[i].tag`` for every container whose tag could not be resolved, and why."""
    wanted: dict[Key, None] = {}
    for c in containers:
        if c.get("digest") is None:
            wanted.setdefault((c.get("registry"), c["image"], c["tag"]), None)
    if not wanted:
        return
    registries = registries_of({registry_id for registry_id, _, _ in wanted})
    found = _resolve_all(list(wanted), registries)
    errors: list[dict] = []
    for c in containers:
        if c.get("digest") is not None:
            errors.append({})
            continue
        key = (c.get("registry"), c["image"], c["tag"])
        result = found[key]
        if isinstance(result, str):
            c["digest"] = result
            errors.append({})
        else:
            where = registries[key[0]][0] if key[0] is not None else "Docker Hub"
            errors.append(
                {
                    "tag": [
                        f"Cannot pin {c['image']}:{c['tag']} on registry {where} to a digest: "
                        f"{result.reason} ({result.detail}). Push the image, give its "
                        '"digest", or create the release with "pin_digests": false.'
                    ]
                }
            )
    if any(errors):
        raise ValidationError({"containers": errors})


def registries_of(ids: set[int | None]) -> dict[int, tuple[str, tuple[str, str] | None]]:
    """{registry id: (url, credentials or None)} of the registries ``ids`` names (None: none)."""
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {
        r.id: (r.url, (r.username, r.get_password()) if r.username else None)
        for r in db.session.scalars(select(Registry).where(Registry.id.in_(ids)))
    }


def _resolve_all(keys: list[Key], registries: dict) -> dict[Key, str | RegistryError]:
    def one(key: Key) -> str:
        registry_id, image, tag = key
        url, creds = registries[registry_id] if registry_id is not None else (None, None)
        return registryclient.resolve(url, image, tag, creds, timeout=REGISTRY_TIMEOUT_SECONDS)

    out: dict[Key, str | RegistryError] = {}
    for key, result in run_parallel(keys, one, PINNING_DEADLINE_SECONDS).items():
        if isinstance(result, TimeoutError):
            out[key] = RegistryError(
                RegistryError.UNREACHABLE, f"no answer within {PINNING_DEADLINE_SECONDS} s"
            )
        elif isinstance(result, Exception) and not isinstance(result, RegistryError):
            # a bug or an odd answer must stay a 400 naming the container, never a 500
            log.warning("pinning %s:%s failed: %r", key[1], key[2], result)
            out[key] = RegistryError(RegistryError.BAD_ANSWER, type(result).__name__)
        else:
            out[key] = result
    return out


def run_parallel(keys: list, one: Callable[[Any], Any], deadline: float) -> dict[Any, Any]:
    """{key: ``one(key)``, or the exception it raised, or TimeoutError when it had no answer
    within ``deadline`` seconds}; at most ``MAX_PARALLEL`` at a time."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(keys))))
    try:
        futures = {key: pool.submit(one, key) for key in keys}
        wait(futures.values(), timeout=deadline)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    out: dict[Any, Any] = {}
    for key, future in futures.items():
        if future.cancelled() or not future.done():
            out[key] = TimeoutError()
        else:
            exc = future.exception()
            out[key] = future.result() if exc is None else exc
    return out
