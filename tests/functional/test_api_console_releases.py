"""Console releases pages (issue 21, item 2; docs/console.md "Releases"), through Flask's test
client on SQLite and PostgreSQL: the form's messages are the API's own for the same body, the
create and the rollout actions are audited exactly as the REST API's, the release page shows
per-device status, failure reasons, waves, halt reason and history, pages through devices, and
another account's user gets 404 everywhere."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from api.audit import AuditEntry
from api.extensions import db
from tests.fixtures.api import report_body, signed_report

CONTAINER = {"name": "app", "image": "app", "tag": "1"}


def _csrf(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', html)
    if match is None:
        match = re.search(rb'name="csrf-token" content="([^"]+)"', html)
    assert match, html[:300]
    return match.group(1).decode()


class Console:
    """A browser session of ``user`` (logged in through the account page's form)."""

    def __init__(self, app, user):
        self.app, self.user = app, user
        self.client = app.test_client()
        page = self.client.get("/account/login/")
        resp = self.client.post(
            "/account/login/",
            data={"email": user.email, "password": user.password, "csrf_token": _csrf(page.data)},
        )
        assert resp.status_code == 302, resp.data[:300]
        self.token = _csrf(self.client.get("/account/").data)

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post(self, path, data=None):
        return self.client.post(path, data={**(data or {}), "csrf_token": self.token})


@pytest.fixture
def world(app, client, api_factory, account, user, user_token, master_token):
    class World:
        pass

    w = World()
    w.app, w.client, w.factory, w.account, w.user = app, client, api_factory, account, user
    w.headers, w.master = user_token.headers, master_token.headers
    w.devices = [api_factory.device(account, unit_id=f"car-{i}") for i in range(3)]
    w.project = client.post(
        "/docker/projects/", json={"name": "cars"}, headers=user_token.headers
    ).json["id"]
    w.console = Console(app, user)
    return w


def _form(**extra) -> dict:
    data = {
        "version": "2.0",
        "containers-0-name": "app",
        "containers-0-image": "app",
        "containers-0-tag": "1",
    }
    data.update(extra)
    return data


def _audit(app, action):
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
        ).all()
        db.session.expunge_all()
        return rows


def _api_release(w, body=None, devices=(), rollout=None):
    body = body or {
        "version": "1",
        "devices": [d.id for d in devices],
        "containers": [CONTAINER],
        "pin_digests": False,
    }
    if rollout:
        body["rollout"] = rollout
    resp = w.client.post(f"/docker/projects/{w.project}/releases/", json=body, headers=w.headers)
    assert resp.status_code == 201, resp.json
    return resp.json


def _report(w, release, device, outcome, error=None):
    body = report_body(device.unit_id, release, outcome, error=error)
    resp = w.client.post(
        "/master/deployments/report/",
        json=signed_report(w.app, body, device.id),
        headers=w.master,
    )
    assert resp.status_code == 200, resp.json


def _messages(errors) -> list[str]:
    """The messages of an API error body as the page shows them (HTML-escaped)."""
    from markupsafe import escape

    from api.console.releases import flatten

    return [str(escape(m)) for _, m in flatten(errors)]


def _errors_beside(html: str, field_id: str) -> list[str]:
    block = re.search(rf'id="{re.escape(field_id)}-errors"[^>]*>(.*?)</ul>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", block.group(1), re.S) if block else []


def test_form_shows_the_apis_own_messages_beside_the_fields(world):
    w = world
    bad = {
        "containers-0-image": "Bad Image!",
        "waves": "10, x, 50",
        "rollout": "on",
        "devices": "no-such-device",
    }
    resp = w.console.post(f"/ui/projects/{w.project}/releases/new/", _form(**bad))
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    # the same body through the REST API: the same messages, word for word
    api = w.client.post(
        f"/docker/projects/{w.project}/releases/",
        json={
            "version": "2.0",
            "devices": ["no-such-device"],
            "containers": [{**CONTAINER, "image": "Bad Image!"}],
            "rollout": {"waves": [10, "x", 50]},
        },
        headers=w.headers,
    )
    assert api.status_code == 400
    image = _messages(api.json["containers"][0]["image"])
    assert image and _errors_beside(html, "containers-0-image") == image
    assert _errors_beside(html, "waves") == _messages(api.json["rollout"]["waves"])
    assert _errors_beside(html, "devices") == _messages(api.json["devices"])
    assert 'value="Bad Image!"' in html  # what was typed stays
    assert _audit(w.app, "release.create") == []  # nothing created, nothing audited

    # startup parameters that are not JSON: said beside them, with the API's rules on the rest
    resp = w.console.post(
        f"/ui/projects/{w.project}/releases/new/",
        _form(**{"containers-0-startup_parameters": "{nope", "version": ""}),
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert _errors_beside(html, "containers-0-startup_parameters")[0].startswith("JSON parse error")
    assert _errors_beside(html, "version") == ["This field may not be blank."]


def test_create_from_the_form_is_the_apis_create_and_audited_alike(world):
    w = world
    form = _form(
        devices=f"{w.devices[0].id}\ncar-1",  # a device id and a unit id
        device_tags="fleet-a",
        rollout="on",
        waves="50, 100",
        halt_at="0",
        **{"containers-0-startup_parameters": '{"environment": {"MODE": "car"}}'},
    )
    resp = w.console.post(f"/ui/projects/{w.project}/releases/new/", form)  # pin_digests off
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    release_id = int(re.search(r"/releases/(\d+)/$", resp.headers["Location"]).group(1))
    got = w.client.get(
        f"/docker/projects/{w.project}/releases/{release_id}/", headers=w.headers
    ).json
    assert set(got["devices"]) == {w.devices[0].id, w.devices[1].id}
    assert got["device_tags"] == ["fleet-a"]
    assert got["rollout"]["waves"] == [50, 100]
    assert got["containers"][0]["startup_parameters"] == {"environment": {"MODE": "car"}}
    assert got["containers"][0]["digest"] is None

    api = _api_release(
        w,
        {
            "version": "3.0",
            "devices": [w.devices[0].id, w.devices[1].id],
            "containers": [CONTAINER],
            "pin_digests": False,
        },
    )
    console_row, api_row = _audit(w.app, "release.create")
    assert console_row.target == f"release:{release_id}"
    assert api_row.target == f"release:{api['id']}"
    assert console_row.details.keys() == api_row.details.keys()
    assert console_row.details["devices"] == api_row.details["devices"] == 2
    assert console_row.user_id == api_row.user_id == w.user.id
    assert console_row.user_email == w.user.email

    # the no-JS "add another container" re-renders the form with one more fieldset
    resp = w.console.post(f"/ui/projects/{w.project}/releases/new/", _form(add_container="1"))
    assert resp.status_code == 200
    assert 'id="containers-1-image"' in resp.get_data(as_text=True)


def test_release_page_devices_status_reasons_and_paging(world):
    w = world
    release = _api_release(w, devices=w.devices)
    _report(w, release, w.devices[0], "failed", error="exited 3: no config")
    _report(w, release, w.devices[1], "succeeded")
    url = f"/ui/projects/{w.project}/releases/{release['id']}/"
    html = w.console.get(url).get_data(as_text=True)
    assert "exited 3: no config" in html
    assert 'data-status="failed"' in html and 'data-status="succeeded"' in html
    assert 'data-status="queued"' in html
    assert "3 target(s)" in html

    html = w.console.get(url + "?status=failed").get_data(as_text=True)
    assert html.count("data-status=") == 1 and "car-0" in html
    live = w.console.get(url + "live/?status=succeeded").get_data(as_text=True)
    assert "<html" not in live and live.count("data-status=") == 1 and "car-1" in live
    # the page polls its live part with the version it shows: unchanged, 204 (htmx swaps nothing)
    poll = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert w.console.get(poll).status_code == 204
    _report(w, release, w.devices[2], "succeeded")
    changed = w.console.get(poll)
    assert changed.status_code == 200 and 'hx-get="' in changed.get_data(as_text=True)

    from api.console import releases as pages

    with w.app.test_request_context():
        from api.releases.models import Release

        rel = db.session.get(Release, release["id"])
        first, after = pages.device_page(rel, size=2)
        second, end = pages.device_page(rel, after=after, size=2)
    assert len(first) == 2 and len(second) == 1 and end is None
    assert sorted(r.device_id for r in first + second) == sorted(d.id for d in w.devices)


def test_a_derived_status_filter_reads_bounded_chunks_and_goes_on(world, monkeypatch):
    """Filtered by a status deployments_of derives, a request reads at most SCAN_LIMIT targets
    and the page goes on after the last one read: every match is found, none twice."""
    from api.console import releases as pages
    from api.releases.models import Release

    w = world
    w.devices += [w.factory.device(w.account, unit_id=f"car-{i}") for i in range(3, 7)]
    release = _api_release(w, devices=w.devices)
    for device in w.devices[::2]:
        _report(w, release, device, "succeeded")
    monkeypatch.setattr(pages, "SCAN_CHUNK", 1)
    monkeypatch.setattr(pages, "SCAN_CHUNK_MAX", 2)
    monkeypatch.setattr(pages, "SCAN_LIMIT", 3)
    found, after, requests = [], None, 0
    with w.app.test_request_context():
        rel = db.session.get(Release, release["id"])
        while True:
            rows, after = pages.device_page(rel, status="queued", after=after, size=2)
            found += [r.device_id for r in rows]
            requests += 1
            if after is None:
                break
    assert sorted(found) == sorted(d.id for d in w.devices[1::2])
    assert requests >= 3  # 7 targets, at most 3 read per request


def test_rollout_halts_then_resume_abort_revert_act_and_are_audited(world):
    w = world
    release = _api_release(w, devices=w.devices, rollout={"waves": [34, 100]})
    url = f"/ui/projects/{w.project}/releases/{release['id']}/"
    wave1 = w.client.get(
        f"/docker/projects/{w.project}/releases/{release['id']}/deployments/?wave=1",
        headers=w.headers,
    ).json["results"]
    first = next(d for d in w.devices if d.id == wave1[0]["device"])
    _report(w, release, first, "failed", error="exited 3")
    html = w.console.get(url).get_data(as_text=True)
    rollout = w.client.get(
        f"/docker/projects/{w.project}/releases/{release['id']}/rollout/", headers=w.headers
    ).json
    assert rollout["state"] == "halted"
    from markupsafe import escape

    assert str(escape(rollout["halt_reason"])) in html
    assert 'id="wave-1"' in html and 'class="wave-bar"' in html

    # abort and revert ask first, saying how many devices
    page = w.console.get(url + "rollout/abort/").get_data(as_text=True)
    assert "get their previous release back" in page and 'id="confirm-abort"' in page

    before = len(_audit(w.app, "rollout.action"))
    assert w.console.post(url + "rollout/resume/").status_code == 303
    assert w.console.post(url + "rollout/abort/").status_code == 303
    assert w.console.post(url + "rollout/revert/").status_code == 303
    rows = _audit(w.app, "rollout.action")[before:]
    assert [r.details["action"] for r in rows] == ["resume", "abort", "revert"]
    assert all(
        r.user_email == w.user.email and r.target == f"release:{release['id']}" for r in rows
    )
    html = w.console.get(url).get_data(as_text=True)
    assert "history" in html.lower() and w.user.email in html
    # an action the state does not allow: the service's 409 and its message
    resp = w.console.post(url + "rollout/pause/")
    assert resp.status_code == 409
    assert "Cannot pause a rollout that is" in resp.get_data(as_text=True)


def test_another_accounts_user_gets_404_on_every_page_and_action(world):
    w = world
    release = _api_release(w, devices=w.devices[:1], rollout={"waves": [100]})
    other = Console(w.app, w.factory.user(w.factory.account(), password="other-pass-123"))
    base = f"/ui/projects/{w.project}/releases/"
    url = f"{base}{release['id']}/"
    for path in (base, base + "new/", url, url + "live/", url + "rollout/abort/"):
        assert other.get(path).status_code == 404, path
    for path in [base + "new/"] + [url + f"rollout/{a}/" for a in ("pause", "abort", "revert")]:
        assert other.post(path, _form()).status_code == 404, path
    assert "cars" not in other.get("/ui/projects/").get_data(as_text=True)
    state = w.client.get(
        url.replace("/ui/projects", "/docker/projects") + "rollout/", headers=w.headers
    ).json["state"]
    assert state == "running"
    # without the CSRF token: refused, nothing changes
    resp = w.console.client.post(url + "rollout/pause/", data={})
    assert resp.status_code == 400
    assert _audit(w.app, "rollout.action") == []
