"""The pillar of one minion, as the API describes it: ``docker`` (release, registries) and ``berth:logbook``."""

from __future__ import annotations

import logging
from typing import Any

from berth.master.apiclient import ApiClient, ApiError
from berth.results import valid_key

log = logging.getLogger(__name__)


ENROLLMENT_GRAIN = "berth_enrollment_token"


def _enroll(client: ApiClient, minion_id: str, grains: dict[str, Any] | None) -> bool:
    """Present the minion's enrollment token (its grain ``berth_enrollment_token``), if it has
    one; True once the API enrolled it (docs/security.md)."""
    token = (grains or {}).get(ENROLLMENT_GRAIN)
    if not isinstance(token, str) or not token:
        return False
    try:
        client.enroll(minion_id, token)
    except ApiError as exc:
        # never the token in the log; the API's answer does not contain it either
        log.warning("berth_api: minion %s: enrollment refused: %s", minion_id, exc)
        return False
    log.info("berth_api: minion %s enrolled with its enrollment token", minion_id)
    return True


def release_pillar(
    conf: dict[str, Any], minion_id: str, grains: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``{"docker": {"release": ..., "registries": ...}, "berth": {"report_key": ..., "logbook":
    {"url", "token", "device_id"}}}``, or ``{"docker": {"error": ...}}``.

    ``berth:logbook`` (what the ``berth_shipper`` engine sends samples with) is there only
    when the API gave the device's logbook settings.

    An unknown device (404) has no release -- unless the minion has an enrollment token
    (``grains``), which is presented once and the pillar asked again. Any other failure puts
    the error in the pillar so the release state refuses to act on a missing or partial release.
    """
    client = ApiClient.from_config(conf)
    try:
        try:
            data = client.minion_pillar(minion_id)
        except ApiError as exc:
            if exc.status != 404 or not _enroll(client, minion_id, grains):
                raise
            data = client.minion_pillar(minion_id)
    except ApiError as exc:
        if exc.status == 404:
            log.info("berth_api: minion %s is not a registered device; no release", minion_id)
            return {"docker": {"release": None, "registries": {}}}
        log.error("berth_api: pillar for minion %s unavailable: %s", minion_id, exc)
        return {"docker": {"error": str(exc)}}
    if not isinstance(data, dict) or "release" not in data:
        msg = f"berth_api: pillar for minion {minion_id} has no 'release' key"
        log.error(msg)
        return {"docker": {"error": msg}}
    release = data.get("release")
    registries = {str(key): value for key, value in (data.get("registries") or {}).items()}
    log.debug(
        "berth_api: minion %s target release %s",
        minion_id,
        release and f"{release.get('id')} ({release.get('version_hash')})",
    )
    pillar = {"docker": {"release": release, "registries": registries}}
    if data.get("update_lock_override") is True:  # the operator's one-time override
        pillar["docker"]["update_lock_override"] = True
    berth = {}
    # the device's key for signing its results: in this minion's pillar only (berth/results.py)
    if valid_key(data.get("report_key")):
        berth["report_key"] = data["report_key"]
    logbook = logbook_settings(data.get("logbook"))
    if logbook is not None:
        berth["logbook"] = logbook
    else:
        log.warning(
            "berth_api: minion %s: the API gave no logbook settings; its samples stay spooled",
            minion_id,
        )
    if berth:
        pillar["berth"] = berth
    return pillar


LOGBOOK_KEYS = ("url", "token", "device_id")


def logbook_settings(value: object) -> dict[str, Any] | None:
    """The API's ``logbook`` object as pillar ``berth:logbook``; None unless it has every key as a non-empty string."""
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) and value[k] for k in LOGBOOK_KEYS
    ):
        return None
    return {k: value[k] for k in LOGBOOK_KEYS}
