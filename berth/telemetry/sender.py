"""Sending spooled records to ``POST /logbook/storage/write/``, oldest first."""

import logging
from typing import Any

import requests

from .spool import Spool

log = logging.getLogger(__name__)

WRITE_PATH = "/logbook/storage/write/"


class SendError(Exception):
    """The API did not take the batch; the records stay in the spool."""


class Rejected(Exception):
    """The API refused some records for good (400); ``errors`` maps batch index -> problems."""

    def __init__(self, errors: dict[int, Any]) -> None:
        super().__init__(errors)
        self.errors = errors


class Sender:
    def __init__(
        self,
        url: str,
        token: str,
        device_id: str,
        timeout: float = 30,
        session: requests.Session | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + WRITE_PATH
        self.device_id = device_id
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"APIToken {token}"

    def send(self, records: list[dict[str, Any]]) -> Any:
        """POST one batch; returns the API's answer. Raises SendError or Rejected."""
        try:
            response = self.session.post(
                self.endpoint,
                json={"device_id": self.device_id, "records": records},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise SendError(f"{self.endpoint} unreachable: {exc}") from None
        if response.status_code == 201:
            return response.json()
        if response.status_code == 400:
            body = _json(response)
            per_record = body.get("records") if isinstance(body, dict) else None
            if isinstance(per_record, dict) and all(str(key).isdigit() for key in per_record):
                raise Rejected({int(key): value for key, value in per_record.items()})
        raise SendError(f"{self.endpoint} answered {response.status_code}: {response.text[:300]}")


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def drain(spool: Spool, sender: Sender, batch_size: int = 1000) -> int:
    """Send everything in the spool, oldest first, until it is empty or the API fails.

    Returns the number of records the API acknowledged. Records the API rejects
    for good (400 naming them) are dropped with a warning so they cannot block
    the spool; any other failure stops the drain with the records kept.
    """
    acknowledged = 0
    while True:
        batch = spool.oldest(batch_size)
        if not batch:
            return acknowledged
        ids = [row_id for row_id, _ in batch]
        try:
            sender.send([record for _, record in batch])
        except Rejected as rejected:
            bad = [ids[index] for index in rejected.errors if index < len(ids)]
            log.warning(
                "logbook: device %s: API rejected %d spooled records, dropping them: %s",
                sender.device_id,
                len(bad),
                rejected.errors,
            )
            spool.remove(bad)
            continue
        except SendError as exc:
            log.info(
                "logbook: device %s: %d records stay spooled (%s)",
                sender.device_id,
                len(spool),
                exc,
            )
            return acknowledged
        spool.remove(ids)
        acknowledged += len(ids)
        log.debug("logbook: device %s: %d records acknowledged", sender.device_id, len(ids))
