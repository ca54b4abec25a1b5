"""HTTP client for the master-scope API (token scope ``master``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from berth import secretfile

DEFAULT_TIMEOUT = 5.0


class ApiError(Exception):
    """The API could not be asked or refused the request; ``status`` is the HTTP status or None."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body  # the error's JSON body, when it had one

    @property
    def retryable(self) -> bool:
        """Network failures, timeouts, 5xx, 429 and auth failures may succeed later; other 4xx will not."""
        return self.status is None or self.status >= 500 or self.status in (401, 403, 408, 429)


def read_token(path: str) -> str:
    """Read the master token from a file that only its owner may read."""
    if not path:
        raise ApiError("berth_api: no token_file configured")
    try:
        return secretfile.read_private(path)
    except ValueError as exc:
        raise ApiError(f"berth_api: {exc}") from None


class ApiClient:
    def __init__(self, url: str, token_file: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not url:
            raise ApiError("berth_api: no url configured")
        self.url = url.rstrip("/")
        self.token_file = token_file
        self.timeout = float(timeout or DEFAULT_TIMEOUT)

    @classmethod
    def from_config(cls, conf: dict[str, Any]) -> ApiClient:
        return cls(
            conf.get("url", ""), conf.get("token_file", ""), conf.get("timeout", DEFAULT_TIMEOUT)
        )

    def _request(self, method: str, path: str, payload: object = None) -> Any:
        url = f"{self.url}{path}"
        headers = {
            "Authorization": f"APIToken {read_token(self.token_file)}",
            "Accept": "application/json",
        }
        try:
            resp = requests.request(
                method, url, json=payload, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise ApiError(
                f"berth_api: {method} {url} failed: {exc.__class__.__name__}: {exc}"
            ) from None
        if resp.status_code >= 400:
            detail = resp.text[:300].strip()
            try:
                body = resp.json()
            except ValueError:
                body = None
            raise ApiError(
                f"berth_api: {method} {url} returned {resp.status_code}: {detail}",
                resp.status_code,
                body,
            )
        try:
            return resp.json()
        except ValueError:
            raise ApiError(
                f"berth_api: {method} {url} returned invalid JSON", resp.status_code
            ) from None

    def minion_pillar(self, minion_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request(
            "GET", f"/master/minions/{quote(minion_id, safe='')}/pillar/"
        )
        return answer

    def report_deployment(self, report: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("POST", "/master/deployments/report/", report)
        return answer

    def report_deployments(self, reports: list[dict[str, Any]]) -> list[Any]:
        """Many reports in one request; the API answers one ``{"index", "status", ...}`` each."""
        answers: list[Any] = self._request("POST", "/master/deployments/report/", list(reports))
        return answers

    def forward_return(self, body: dict[str, Any]) -> dict[str, Any]:
        """A device's return of an execute job (``berth.master.forward.build_return``)."""
        answer: dict[str, Any] = self._request("POST", "/master/execute/returns/", body)
        return answer

    def enroll(self, minion_id: str, enrollment_token: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._request(
            "POST",
            "/master/devices/enroll/",
            {"unit_id": minion_id, "enrollment_token": enrollment_token},
        )
        return answer

    def sync_devices(self, unit_ids: list[str]) -> dict[str, Any]:
        answer: dict[str, Any] = self._request(
            "POST", "/master/devices/sync/", {"unit_ids": list(unit_ids)}
        )
        return answer
