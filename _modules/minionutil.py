"""
Inspect the minion itself: its logs and its id.

Thin Salt wrapper around :mod:`berth.minionlogs`; the exact meaning of every
parameter is documented there and in ``docs/device.md``. In short: lines are
returned newest first; ``file='minion'`` is the minion's ``log_file``, other
names are relative to the Salt log directory; rotated copies
(``minion.1``, ``minion.2.gz``, ...) are read after the file itself;
``until`` is a regex where the backwards scan stops (``'$'``: no stop);
``match`` a regex lines must contain; ``count`` the maximum number of matches
(0 = no maximum); ``before``/``after`` context lines older/newer than each
match; ``limit`` the maximum number of lines returned (0 = no limit).

CLI examples:

.. code-block:: bash

    salt '*' minionutil.last_logs match=docker count=5 after=2
    salt '*' minionutil.last_errors limit=20
    salt '*' minionutil.last_startup
    salt '*' minionutil.unit_id
    salt '*' minionutil.local_api_url
    salt '*' minionutil.master_reachable
"""

import logging
import socket
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from salt.exceptions import SaltInvocationError

from berth import localapi, minionlogs, sleephook

if TYPE_CHECKING:  # injected by Salt's loader when it loads this module
    __opts__: dict[str, Any]

log = logging.getLogger(__name__)

__virtualname__ = "minionutil"


def __virtual__() -> str:
    return __virtualname__


def _query(func: Callable[..., list[str]], *args: Any, **kwargs: Any) -> list[str]:
    try:
        return func(__opts__.get("log_file"), *args, **kwargs)
    except minionlogs.LogQueryError as exc:
        raise SaltInvocationError(str(exc)) from None


def last_logs(
    file: str = "minion",
    until: str = "$",
    match: str = ".*",
    count: int = 0,
    before: int = 0,
    after: int = 0,
    limit: int = 100,
) -> list[str]:
    """
    Newest lines of a log file that match ``match``, newest first.

    file
        ``minion`` (the minion's log_file) or a name relative to the Salt log dir.
    until
        Regex; the backwards scan stops at the newest line matching it. ``$``: no stop.
    match
        Regex a returned line must contain.
    count
        Maximum number of matching lines, 0 = no maximum.
    before / after
        Context lines logged before (older) / after (newer) each match.
    limit
        Maximum number of lines returned, 0 = no limit.

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.last_logs match='docker' count=3 before=1
    """
    return _query(
        minionlogs.last_logs,
        file=file,
        until=until,
        match=match,
        count=count,
        before=before,
        after=after,
        limit=limit,
    )


def last_errors(
    file: str = "minion",
    until: str = "$",
    level: str = "error",
    count: int = 0,
    before: int = 0,
    after: int = 0,
    limit: int = 100,
) -> list[str]:
    """
    Newest lines logged at ``level`` or above (default: ERROR and CRITICAL),
    newest first. Other parameters as in ``last_logs``; use ``after`` to see
    the traceback lines that follow an error.

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.last_errors level=warning limit=20
    """
    return _query(
        minionlogs.last_errors,
        file=file,
        until=until,
        level=level,
        count=count,
        before=before,
        after=after,
        limit=limit,
    )


def last_startup(
    file: str = "minion", until: str = "$", match: str = minionlogs.STARTUP_MARKER, limit: int = 100
) -> list[str]:
    """
    The log of the newest minion start: the newest line matching ``match``
    (default ``Setting up the Salt Minion``) and up to ``limit - 1`` lines
    logged right after it, newest first. Empty list if no start is found
    before ``until``.

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.last_startup limit=30
    """
    return _query(minionlogs.last_startup, file=file, until=until, match=match, limit=limit)


def log_files() -> list[str]:
    """
    Names of the files in the Salt log directory (what ``file=`` accepts).

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.log_files
    """
    return _query(minionlogs.log_files)


def unit_id() -> str:
    """
    The device's unit id: the minion id (also in the ``minion_id`` file of the
    Salt config directory).

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.unit_id
    """
    return str(__opts__["id"])


def local_api_url() -> str | None:
    """
    The URL where processes on this device reach the local API (the
    ``berth_localapi`` engine of this minion's config), or None when the engine
    is not configured. ``state.sls docker.sleep`` points the sleep hook there.

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.local_api_url
    """
    return localapi.local_api_url(__opts__)


def local_api_token_file() -> str | None:
    """
    The root-only file holding the local API's token (the ``berth_localapi`` engine's
    ``token_file``, by default ``berth-local.token`` next to the minion config), or None when
    the engine is not configured. ``state.sls docker.sleep`` gives it to the sleep hook.

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.local_api_token_file
    """
    return localapi.local_token_file(__opts__)


def sleep_hook_program() -> str:
    """
    The path of the sleep hook program (:mod:`berth.sleephook`), which
    ``state.sls docker.sleep`` runs with the minion's Python.

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.sleep_hook_program
    """
    return sleephook.__file__


def master_reachable(timeout: float = 3) -> bool:
    """
    Whether the master's request port (``master_uri``) accepts a TCP connection within
    ``timeout`` seconds. The sleep hook asks before applying, and result events are only
    sent when it does, so a master that is away costs seconds, not Salt's request
    timeouts, and nothing is handed to a bus that would drop it (docs/fleet.md).

    CLI example:

    .. code-block:: bash

        salt '*' minionutil.master_reachable
    """
    uri = __opts__.get("master_uri")
    if not uri:  # masterless
        return False
    where = urllib.parse.urlsplit(uri)
    try:
        with socket.create_connection((where.hostname, where.port or 4506), timeout=float(timeout)):
            return True
    except OSError as exc:
        log.info("master %s unreachable: %s", uri, exc)
        return False
