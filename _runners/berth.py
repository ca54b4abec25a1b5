"""Master-side fleet runners: results to the API, the result spool, device status and registration.

Configured by the master option ``berth_api: {url, token_file, timeout, spool_dir}``
(see conf/master.d/berth.conf and docs/fleet.md).
"""

import logging
import os
from typing import TYPE_CHECKING, Any

from berth.master import forward
from berth.master.apiclient import ApiClient, ApiError
from berth.master.report_spool import Spool

if TYPE_CHECKING:  # injected by Salt's loader when it loads this module
    __opts__: dict[str, Any]

log = logging.getLogger(__name__)

__virtualname__ = "berth"


def __virtual__() -> str:
    return __virtualname__


def _conf() -> dict[str, Any]:
    return dict(__opts__.get("berth_api") or {})


def _client() -> ApiClient:
    return ApiClient.from_config(_conf())


def _batch_size() -> int:
    return forward.batch_size(_conf())


def _spool() -> Spool:
    directory = _conf().get("spool_dir") or os.path.join(__opts__["cachedir"], "berth", "spool")
    return Spool(directory)


def report(minion_id: str, result: Any) -> dict[str, Any]:
    """Forward one ``berth/release/result`` event of ``minion_id`` to the API.

    Called by the reactor (salt://reactor/release_result.sls) for each result. Sent at once
    when the spool is empty; in a burst, results queue in the spool and whichever call holds
    it sends them in lists (``"batched"``). When the API cannot take it now, the report stays
    spooled on disk and ``berth.flush`` delivers it later (docs/fleet.md "Runners").

    CLI Example:

    .. code-block:: bash

        salt-run berth.report <minion id> '{"release_id": 7, "version_hash": "96a7191f", "outcome": "succeeded"}'
    """
    try:
        body = forward.build_report(minion_id, result)
    except ValueError as exc:
        log.error("berth.report: dropped malformed result: %s", exc)
        return {"status": "invalid", "error": str(exc)}
    return {"status": forward.deliver(_client(), _spool(), body, _batch_size())}


def forward_return(minion_id: str, jid: object) -> dict[str, Any]:
    """Forward the return of job ``jid`` from ``minion_id`` to the API, as this master's job
    cache holds it.

    Called by the reactor (salt://reactor/job_return.sls) on a lower master of a syndic
    topology, for returns of jobs a master above published: Salt's syndic carries none up to the
    top master's salt-api (docs/scale.md "The path up"). The return is read from the master job
    cache (``master_job_cache``), never taken from the event: a minion can fire
    ``salt/job/<jid>/ret/<another id>`` itself (docs/security.md "2."). Salt fires the event
    before it writes the cache, so the cache is read for up to ``forward.CACHE_WAIT`` seconds; an
    event with no return in the cache forwards nothing (``"not_in_cache"``, logged). The API
    takes it for an execute job it published to that device and served by this master's
    credential; any other job is ``"unknown"`` to it. Not spooled: a return the API cannot take
    now is lost (the job ends in TIMEOUT).

    CLI Example:

    .. code-block:: bash

        salt-run berth.forward_return <minion id> 20261207120000123456
    """
    jid = str(jid)
    try:
        forward.check_return_ids(minion_id, jid)
    except ValueError as exc:
        log.error("berth.forward_return: dropped: %s", exc)
        return {"status": "invalid", "error": str(exc)}
    returners = _job_cache()
    cache = __opts__["master_job_cache"]
    ret = forward.cached_return(
        returners[f"{cache}.get_jid"], returners[f"{cache}.get_load"], jid, minion_id
    )
    if ret is None:
        log.warning(
            "berth.forward_return: no return of %s from %s in the job cache (an event some "
            "minion fired, or the cache is off); nothing forwarded",
            jid,
            minion_id,
        )
        return {"status": "not_in_cache"}
    return {"status": forward.forward_return(_client(), forward.build_return(minion_id, jid, ret))}


def _job_cache() -> Any:
    import salt.loader  # here: only this runner reads the job cache

    return salt.loader.returners(__opts__, {})


def flush() -> dict[str, Any]:
    """Re-send spooled reports to the API, oldest first, in lists of up to ``berth_api:
    batch_size`` (scheduled on the master, see conf/master.d/berth.conf).

    CLI Example:

    .. code-block:: bash

        salt-run berth.flush
    """
    return forward.flush(_client(), _spool(), _batch_size())


def resync(tgt: str = "*", timeout: int = 60) -> dict[str, Any]:
    """Ask every device (``tgt``) for ``docker.release_report`` (the result its applied release
    implies, signed by the device) and forward it.

    CLI Example:

    .. code-block:: bash

        salt-run berth.resync
    """
    import salt.client  # here: only this runner needs a LocalClient

    local = salt.client.get_local_client(__opts__["conf_file"])
    returns = local.cmd(tgt, "docker.release_report", timeout=timeout, tgt_type="glob")
    reported: list[dict[str, Any]] = []
    nothing_to_report: list[str] = []
    errors: dict[str, str] = {}
    summary = {"reported": reported, "nothing_to_report": nothing_to_report, "errors": errors}
    bodies = []
    for minion_id, result in sorted(returns.items()):
        if result is None:
            nothing_to_report.append(minion_id)
            continue
        try:
            bodies.append(forward.build_report(minion_id, result))
        except ValueError as exc:
            errors[minion_id] = str(result)[:500]
            log.warning("berth.resync: device %s did not return a result: %s", minion_id, exc)
    # through the spool, in lists: a fleet's resync is a few requests
    statuses = forward.submit(_client(), _spool(), bodies, _batch_size())
    for body, outcome in zip(bodies, statuses, strict=True):
        reported.append(
            {"minion_id": body["unit_id"], "release_id": body["release_id"], "status": outcome}
        )
    return summary


def register_minions() -> dict[str, Any]:
    """Register every accepted minion key as an enrolled device of the master token's account
    (a single-tenant master), bound to this master's token. Minions enrolled in another account,
    or whose id another account has a device for, are never enrolled; they are returned as
    ``pending`` (docs/security.md "Tenancy").

    CLI Example:

    .. code-block:: bash

        salt-run berth.register_minions
    """
    import salt.key

    accepted = salt.key.get_key(__opts__).list_keys().get("minions", [])
    try:
        result = _client().sync_devices(sorted(accepted))
    except ApiError as exc:
        log.error("berth.register_minions: %s", exc)
        return {"error": str(exc)}
    log.info(
        "berth.register_minions: %d created, %d existing, %d pending",
        len(result.get("created", [])),
        len(result.get("existing", [])),
        len(result.get("pending", [])),
    )
    if result.get("pending"):
        # enrolled in another account: never moved by sync (docs/security.md "Tenancy")
        log.warning(
            "berth.register_minions: not enrolled by this master (they enroll with an enrollment "
            "token of their account): %s",
            ", ".join(result["pending"][:20]),
        )
    return result
