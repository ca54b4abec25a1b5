"""The same batch sent concurrently to the real API (gunicorn, 2 workers) is stored once,
and the rollups count it once."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

T0 = 1625097600000  # 2021-07-01T00:00:00Z
WINDOW = {"from_utc": "2021-07-01T00:00:00Z", "to_utc": "2021-07-02T00:00:00Z"}


def test_concurrent_retries_of_one_batch_store_it_once(
    logbook, logbook_server, device, device_token
):
    batch = [
        {"ts": T0 + i * 250, "field": "rpm", "field_type": "long", "value": 800 + i % 3000}
        for i in range(6000)
    ]

    def send(_):
        response = requests.post(
            logbook_server.url + "/logbook/storage/write/",
            timeout=120,
            json={"device_id": device.id, "records": batch},
            headers=device_token.headers,
        )
        assert response.status_code == 201, response.text
        return response.json()["written"]

    with ThreadPoolExecutor(4) as pool:
        written = list(pool.map(send, range(6)))
    assert sum(written) == 6000  # exactly one writer stored each sample

    raw = logbook.read(field="rpm", field_type="long", size=100_000, **WINDOW).json
    assert len(raw) == 6000
    total = logbook.read(
        field="rpm", field_type="long", aggregation="sum", interval="1d", **WINDOW
    ).json
    assert total[0]["value"] == sum(r["value"] for r in batch)
    per_minute = logbook.read(
        field="rpm", field_type="long", aggregation="avg", interval="1m", **WINDOW
    ).json
    assert len(per_minute) == 25
    assert per_minute[0]["value"] == pytest.approx(sum(800 + i for i in range(240)) / 240)
