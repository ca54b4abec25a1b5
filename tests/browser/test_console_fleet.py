"""The fleet and device pages in Chromium, on data written through the REST API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.fixtures.api import report_body, signed_report
from tests.fixtures.browser import screenshot


@pytest.fixture(scope="module")
def fleet(console_server):
    """Devices with tags, a release, a success and a failure reported by the master."""
    base = console_server.url
    user = console_server.factory.token("user", user=console_server.user)
    master = console_server.factory.token("master", user=console_server.user)
    s = requests.Session()
    s.headers.update(user.headers)
    devices = {}
    for unit_id, display, tags in (
        ("car-001", "Red car", ["north", "beta"]),
        ("car-002", "Blue car", ["north"]),
        ("car-003", "Green car", ["south"]),
        ("van-001", "", []),
    ):
        if unit_id.startswith("car-"):  # enrolled (their minion reports through the master)
            made = console_server.factory.device(console_server.account, unit_id, display)
            r = s.patch(f"{base}/devices/{made.id}/", json={"tags": tags})
            assert r.status_code == 200, r.text
        else:  # created through the API: its minion has not enrolled yet
            r = s.post(f"{base}/devices/", json={"unit_id": unit_id, "display": display})
            assert r.status_code == 201, r.text
        devices[unit_id] = r.json()
    project = s.post(f"{base}/docker/projects/", json={"name": "telematics"}).json()
    release = s.post(
        f"{base}/docker/projects/{project['id']}/releases/",
        json={
            "version": "41",
            "devices": [devices[u]["id"] for u in ("car-001", "car-002", "car-003")],
            "containers": [{"name": "curveball", "image": "curveball", "tag": "1"}],
            "pin_digests": False,
        },
    )
    assert release.status_code == 201, release.text
    release = release.json()
    for unit_id, outcome in (("car-001", "succeeded"), ("car-002", "failed")):
        body = signed_report(console_server.app, report_body(unit_id, release, outcome))
        r = requests.post(
            f"{base}/master/deployments/report/", json=body, headers=master.headers, timeout=30
        )
        assert r.status_code == 200, r.text
    return {"session": s, "devices": devices, "release": release}


def _rows(page) -> list[str]:
    return page.locator("table.fleet tbody tr[data-unit-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.unitId)"
    )


def test_fleet_lists_counts_and_filters_by_tag(page, console_server, fleet):
    page.goto(f"{console_server.url}/ui/devices/")
    assert _rows(page) == ["car-001", "car-002", "car-003", "van-001"]
    counts = {
        o: page.locator(f'.counts [data-outcome="{o}"]').inner_text()
        for o in ("succeeded", "failed", "pending", "never_reported")
    }
    # car-003 is targeted but never reported, van-001 has no release at all
    assert counts == {"succeeded": "1", "failed": "1", "pending": "0", "never_reported": "2"}
    row = page.locator('tr[data-unit-id="car-002"]')
    assert "exited 3" in row.inner_text()  # the failure reason of its last report
    assert "telematics 41" in page.locator('tr[data-unit-id="car-001"]').inner_text()
    # times: the viewer's zone by console.js, UTC on hover
    time_el = row.locator("time")
    assert time_el.get_attribute("title").endswith("UTC")
    assert time_el.get_attribute("data-local") == "1"
    screenshot(page, "fleet")

    page.get_by_label("Tag").fill("north")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/ui/devices/?*tag=north*")
    assert _rows(page) == ["car-001", "car-002"]
    assert page.locator('.counts [data-outcome="never_reported"]').inner_text() == "0"
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=failed**")
    assert _rows(page) == ["car-002"]
    screenshot(page, "fleet-filtered")
    # search by display name, enrollment filter, release filter
    page.goto(f"{console_server.url}/ui/devices/?q=Green")
    assert _rows(page) == ["car-003"]
    # the search ignores case: an operator typing CAR-00 or green finds car-00x, Green ...
    page.goto(f"{console_server.url}/ui/devices/")
    page.get_by_label("Unit id or name starts with").fill("CAR-00")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=CAR-00**")
    assert _rows(page) == ["car-001", "car-002", "car-003"]
    page.goto(f"{console_server.url}/ui/devices/?q=green")
    assert _rows(page) == ["car-003"]
    page.goto(f"{console_server.url}/ui/devices/?release={fleet['release']['id']}")
    assert _rows(page) == ["car-001", "car-002", "car-003"]
    page.goto(f"{console_server.url}/ui/devices/?enrolled=yes")
    assert _rows(page) == ["car-001", "car-002", "car-003"]
    page.goto(f"{console_server.url}/ui/devices/?enrolled=no")
    assert _rows(page) == ["van-001"]


def test_fleet_pages_by_keyset(page, console_server, fleet, monkeypatch):
    # more devices than a page: the next page carries on where the first stopped
    s = fleet["session"]
    for i in range(52):
        r = s.post(
            f"{console_server.url}/devices/", json={"unit_id": f"zz-{i:03d}", "tags": ["bulk"]}
        )
        assert r.status_code == 201
    page.goto(f"{console_server.url}/ui/devices/?tag=bulk")
    first = _rows(page)
    assert len(first) == 50 and first[0] == "zz-000"
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url("**after_unit=zz-049**")
    assert _rows(page) == ["zz-050", "zz-051"]
    assert page.get_by_role("link", name="Next page").count() == 0


def test_device_tags_edit(page, console_server, fleet):
    device = fleet["devices"]["car-003"]
    page.goto(f"{console_server.url}/ui/devices/{device['id']}/")
    assert page.get_by_role("heading", name="car-003").is_visible()
    page.locator("#tags").fill("south, beta")
    page.get_by_role("button", name="Save tags").click()
    page.wait_for_load_state()
    assert page.locator("#tags").input_value() == "beta south"
    # the REST API sees the change, and it is audited as the API's tag change is
    api = fleet["session"].get(f"{console_server.url}/devices/{device['id']}/").json()
    assert api["tags"] == ["beta", "south"]
    audit = (
        fleet["session"]
        .get(f"{console_server.url}/audit/", params={"action": "device.update"})
        .json()
    )
    entry = audit["results"][0]
    assert entry["device"] == device["id"]
    assert entry["details"] == {
        "fields": ["tags"],
        "tags": {"before": ["south"], "after": ["beta", "south"]},
    }
    assert entry["user_email"] == console_server.user.email
    # a bad tag: the API's message beside the field, nothing changes
    page.locator("#tags").fill("x" * 65)
    page.get_by_role("button", name="Save tags").click()
    page.wait_for_load_state()
    error = page.locator("#tags-error")
    assert error.is_visible()
    rest = fleet["session"].patch(
        f"{console_server.url}/devices/{device['id']}/", json={"tags": ["x" * 65]}
    )
    assert rest.status_code == 400
    assert error.inner_text() == rest.json()["tags"]["0"][0]
    screenshot(page, "device")
    assert fleet["session"].get(f"{console_server.url}/devices/{device['id']}/").json()["tags"] == [
        "beta",
        "south",
    ]


def test_telemetry_chart_from_data_written_through_the_api(page, console_server, fleet):
    device = fleet["devices"]["car-001"]
    now = datetime.now(UTC).replace(microsecond=0)
    records = [
        {
            "ts": (now - timedelta(minutes=30 - i)).isoformat().replace("+00:00", "Z"),
            "field": "speed",
            "field_type": "float",
            "value": 10.0 + i,
        }
        for i in range(20)
    ] + [
        {
            "ts": (now - timedelta(minutes=30 - i)).isoformat().replace("+00:00", "Z"),
            "field": "position",
            "field_type": "geo_point",
            "value": {"lat": 52.0 + i / 100, "lon": 13.0 + i / 50},
        }
        for i in range(10)
    ]
    r = fleet["session"].post(
        f"{console_server.url}/logbook/storage/write/",
        json={"device_id": device["id"], "records": records},
    )
    assert r.status_code == 201, r.text
    page.goto(f"{console_server.url}/ui/devices/{device['id']}/?field=speed&window=1h")
    chart = page.locator("#chart")
    chart.locator("canvas").first.wait_for()
    assert chart.get_attribute("data-drawn") == "20"
    assert page.locator("details.samples tbody tr").count() == 20
    screenshot(page, "device-telemetry")
    # aggregated through GET read's rules: 10-minute averages of samples spanning 19 minutes,
    # 2 or 3 buckets depending on where the buckets start
    page.goto(
        f"{console_server.url}/ui/devices/{device['id']}/"
        "?field=speed&window=1h&aggregation=avg&interval=10m"
    )
    assert 2 <= int(page.locator("#chart").get_attribute("data-drawn")) <= 3
    # GET read's own message for a bad interval, beside the field
    page.goto(
        f"{console_server.url}/ui/devices/{device['id']}/?field=speed&aggregation=avg&interval=7x"
    )
    assert "is not an interval" in page.locator("#t-interval ~ .field-error").inner_text()
    # a geo_point field is a track
    page.goto(f"{console_server.url}/ui/devices/{device['id']}/?field=position&window=1h")
    track = page.locator("svg.track")
    assert track.get_attribute("data-points") == "10"
    assert len(track.locator("polyline").get_attribute("points").split()) == 10
    screenshot(page, "device-track")


def test_pages_work_without_javascript(browser, console_server, fleet):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        console_server.login(page)
        page.goto(f"{console_server.url}/ui/devices/?tag=south")
        assert _rows(page) == ["car-003"]
        device = fleet["devices"]["car-001"]
        page.goto(f"{console_server.url}/ui/devices/{device['id']}/?field=speed&window=1h")
        assert page.locator("details.samples tbody tr").count() >= 1
    finally:
        context.close()
