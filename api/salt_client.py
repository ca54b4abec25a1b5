"""Client for salt-api (``rest_cherrypy``): the only way the API talks to Salt.

The API may run on another host than the salt-master, so it never imports a
Salt client that needs the master's sockets. It logs in with an external auth
backend (``sharedsecret`` by default), caches the token until shortly before
it expires, and renews it once when salt-api answers 401.

Configuration (Flask config or environment): ``BERTH_SALT_API_URL``,
``BERTH_SALT_API_USER``, ``BERTH_SALT_API_PASSWORD``, ``BERTH_SALT_API_EAUTH``
(default ``sharedsecret``), ``BERTH_SALT_API_TIMEOUT`` (seconds, default 10).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

log = logging.getLogger(__name__)

# Renew the token this many seconds before salt-api says it expires.
_TOKEN_MARGIN = 60


class SaltApiError(Exception):
    """salt-api could not be reached or refused the request. The message says which and why."""


class SaltApiNotConfigured(SaltApiError):
    pass


class SaltApiRefused(SaltApiError):
    """salt-api's external_auth does not permit this function (with these arguments) for the
    API's user: nothing was published (conf/master.d/salt-api.conf, docs/fleet-api.md)."""


class SaltApiTimeout(SaltApiError):
    """salt-api accepted the connection but did not answer in time: the request may have been carried out."""


def new_jid() -> str:
    """A Salt-format job id (``%Y%m%d%H%M%S%f``, UTC), chosen by the caller so a job can be
    recorded before it is published."""
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")


@dataclass(frozen=True)
class MinionReturn:
    fun: str
    fun_args: list
    ret: Any
    retcode: int | None
    success: bool | None

    def as_response(self) -> dict:
        return {
            "fun": self.fun,
            "fun_args": self.fun_args,
            "return": self.ret,
            "retcode": self.retcode,
            "success": self.success,
        }


@dataclass
class JobInfo:
    """What salt-api knows about a job: the minions it targeted and those that returned."""

    jid: str
    fun: str | None = None
    fun_args: list = field(default_factory=list)
    minions: list[str] = field(default_factory=list)
    returns: dict[str, MinionReturn] = field(default_factory=dict)
    found: bool = True


class SaltApiClient:
    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        eauth: str = "sharedsecret",
        timeout: float = 10.0,
    ):
        if not url:
            raise SaltApiNotConfigured("salt-api is not configured: set BERTH_SALT_API_URL")
        if not username or not password:
            raise SaltApiNotConfigured(
                "salt-api credentials are not configured: set BERTH_SALT_API_USER and BERTH_SALT_API_PASSWORD"
            )
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self.eauth = eauth
        self.timeout = timeout
        self._session = requests.Session()
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> SaltApiClient:
        """Build a client from a Flask config, falling back to the environment."""
        config = config or {}

        def get(name: str, default: str | None = None):
            value = config.get(name)
            return value if value not in (None, "") else os.environ.get(name, default)

        return cls(
            url=get("BERTH_SALT_API_URL") or "",
            username=get("BERTH_SALT_API_USER") or "",
            password=get("BERTH_SALT_API_PASSWORD") or "",
            eauth=get("BERTH_SALT_API_EAUTH", "sharedsecret"),
            timeout=float(get("BERTH_SALT_API_TIMEOUT", "10")),
        )

    def __repr__(self) -> str:  # never include the password or token
        return f"<SaltApiClient {self.url} user={self.username!r} eauth={self.eauth!r}>"

    # -- transport -----------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return self._session.request(
                method,
                self.url + path,
                timeout=self.timeout,
                headers={"Accept": "application/json", **kwargs.pop("headers", {})},
                **kwargs,
            )
        except requests.ConnectTimeout:
            raise SaltApiError(
                f"salt-api at {self.url} is unreachable ({method} {path}): connect timeout"
            ) from None
        except requests.Timeout:
            raise SaltApiTimeout(
                f"salt-api at {self.url} did not answer {method} {path} within {self.timeout}s"
            ) from None
        except requests.RequestException as exc:
            raise SaltApiError(
                f"salt-api at {self.url} is unreachable ({method} {path}): {exc}"
            ) from None

    @staticmethod
    def _json(resp: requests.Response, what: str) -> dict:
        try:
            body = resp.json()
        except ValueError:
            raise SaltApiError(
                f"salt-api answered {what} with HTTP {resp.status_code} and no JSON body"
            ) from None
        if not isinstance(body, dict):
            raise SaltApiError(f"salt-api answered {what} with unexpected JSON: {str(body)[:200]}")
        return body

    def login(self) -> str:
        resp = self._request(
            "POST",
            "/login",
            json={"username": self.username, "password": self._password, "eauth": self.eauth},
        )
        if resp.status_code == 401:
            raise SaltApiError(
                f"salt-api at {self.url} refused the login of user {self.username!r} with eauth {self.eauth!r} "
                "(check BERTH_SALT_API_USER/BERTH_SALT_API_PASSWORD and the master's external_auth)"
            )
        if resp.status_code != 200:
            raise SaltApiError(f"salt-api login answered HTTP {resp.status_code}")
        try:
            entry = self._json(resp, "login")["return"][0]
            token = entry["token"]
        except (KeyError, IndexError, TypeError):
            raise SaltApiError("salt-api login answer has no token") from None
        expire = float(entry.get("expire") or (time.time() + 3600))
        self._token, self._token_expires = token, expire
        log.info(
            "logged in to salt-api %s as %s (token valid until %s)",
            self.url,
            self.username,
            int(expire),
        )
        return token

    def _token_value(self) -> str:
        with self._lock:
            if self._token is None or time.time() > self._token_expires - _TOKEN_MARGIN:
                return self.login()
            return self._token

    def _authed(self, method: str, path: str, what: str, **kwargs) -> dict:
        for attempt in (1, 2):
            token = self._token_value()
            resp = self._request(method, path, headers={"X-Auth-Token": token}, **kwargs)
            if resp.status_code == 401 and attempt == 1:
                # Token expired early (master restart, eauth cache cleared): log in again once.
                with self._lock:
                    if self._token == token:
                        self._token = None
                continue
            if resp.status_code == 401:
                # the login just succeeded: what salt-api refuses is this function (its
                # external_auth answers an authorization failure with 401 too)
                raise SaltApiRefused(
                    f"salt-api refused {what} for user {self.username!r} after a fresh login "
                    "(its external_auth does not permit it)"
                )
            if resp.status_code == 403:
                raise SaltApiRefused(
                    f"salt-api user {self.username!r} is not permitted to run {what}"
                )
            if resp.status_code != 200:
                raise SaltApiError(f"salt-api answered {what} with HTTP {resp.status_code}")
            return self._json(resp, what)
        raise AssertionError("unreachable")

    # -- operations ------------------------------------------------------------------

    def local_async(
        self,
        minions: list[str],
        fun: str,
        arg: list | None = None,
        kwarg: dict | None = None,
        jid: str | None = None,
    ) -> tuple[str | None, list[str]]:
        """Publish ``fun`` to the listed minions without waiting for them.

        Returns ``(jid, minions the master targeted)``; ``(None, [])`` when the
        master knows none of the minions (no accepted key). ``jid``: use this job id
        (see ``new_jid``) instead of one the master chooses.
        """
        low: dict[str, Any] = {
            "client": "local_async",
            "tgt": list(minions),
            "tgt_type": "list",
            "fun": fun,
            "arg": list(arg or []),
        }
        if kwarg:
            low["kwarg"] = dict(kwarg)
        if jid:
            low["jid"] = jid
        what = f"local_async {fun} on {len(minions)} minion(s)"
        body = self._authed("POST", "/", what, json=[low])
        try:
            entry = body["return"][0]
        except (KeyError, IndexError, TypeError):
            raise SaltApiError(f"salt-api answered {what} without a return") from None
        if not isinstance(entry, dict):
            # salt-api reports a refused publish (eauth permissions) as a string.
            raise SaltApiRefused(f"salt-api refused {what}: {str(entry)[:300]}")
        if not entry:
            return None, []
        return str(entry["jid"]), list(entry.get("minions") or [])

    def job(self, jid: str) -> JobInfo:
        """Look a job up in the master's job cache (``GET /jobs/<jid>``)."""
        body = self._authed("GET", f"/jobs/{jid}", f"job lookup {jid}")
        try:
            info = body["info"][0]
        except (KeyError, IndexError, TypeError):
            raise SaltApiError(f"salt-api answered job lookup {jid} without info") from None
        if info.get("Error") or "Function" not in info:
            return JobInfo(jid=jid, found=False)
        fun = info.get("Function")
        fun_args = list(info.get("Arguments") or [])
        returns = {}
        for minion, result in (info.get("Result") or {}).items():
            if not isinstance(result, dict):
                result = {"return": result}
            returns[minion] = MinionReturn(
                fun=fun,
                fun_args=fun_args,
                ret=result.get("return"),
                retcode=result.get("retcode"),
                success=result.get("success"),
            )
        return JobInfo(
            jid=jid,
            fun=fun,
            fun_args=fun_args,
            minions=list(info.get("Minions") or []),
            returns=returns,
        )


def current_client() -> SaltApiClient:
    """The Flask app's client (its token is reused across requests); rebuilt when the config changes."""
    from flask import current_app

    config = current_app.config
    key = tuple(
        config.get(name) or os.environ.get(name)
        for name in (
            "BERTH_SALT_API_URL",
            "BERTH_SALT_API_USER",
            "BERTH_SALT_API_PASSWORD",
            "BERTH_SALT_API_EAUTH",
        )
    )
    cached = current_app.extensions.get("berth_salt_client")
    if cached is None or cached[0] != key:
        cached = (key, SaltApiClient.from_config(config))
        current_app.extensions["berth_salt_client"] = cached
    return cached[1]
