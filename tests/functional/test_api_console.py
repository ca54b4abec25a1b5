"""The console's session rules in Flask's test client (the browser tests drive Chromium):
login's ``next``, the console's CSP and cache headers, ``/``."""

import re

import pytest
from sqlalchemy import select

from api.deployments.fleet import outcome_drift
from api.devices.models import Device
from api.extensions import db
from tests.functional.test_api_account_page import csrf


def _login(client, user, next_path=None):
    query = f"?next={next_path}" if next_path is not None else ""
    page = client.get(f"/account/login/{query}")
    return client.post(
        f"/account/login/{query}",
        data={"email": user.email, "password": user.password, "csrf_token": csrf(page.data)},
    )


def test_anonymous_console_goes_to_login_with_next(client):
    r = client.get("/ui/devices/?tag=a")
    assert r.status_code == 302
    assert r.headers["Location"] == "/account/login/?next=/ui/devices/?tag%3Da"
    assert client.get("/").status_code == 404


def test_login_returns_to_the_console_page(client, user):
    r = _login(client, user, "/ui/devices/")
    assert r.status_code == 302 and r.headers["Location"] == "/ui/devices/"
    page = client.get("/ui/devices/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert client.get("/").headers["Location"] == "/ui/"
    assert client.get("/ui/").headers["Location"] == "/ui/devices/"
    asset = client.get("/ui/static/htmx/htmx.min.js")
    assert asset.status_code == 200 and "no-store" not in asset.headers.get("Cache-Control", "")


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/",
        "https://evil.example/ui/",
        "/account/",
        "/ui/\\\\evil",
        "/ui/%0D%0ASet-Cookie:%20x=1",  # a newline in Location was a 500 after the login
        "/ui/%09/evil.example",  # a tab, dropped from Location, made it /ui//evil.example
    ],
)
def test_login_never_follows_next_off_the_console(client, user, next_path):
    r = _login(client, user, next_path)
    assert r.status_code == 302 and r.headers["Location"] == "/account/"


def test_console_post_without_csrf_is_refused(client, user):
    _login(client, user)
    r = client.post("/ui/devices/", data={})
    assert r.status_code == 400 and b"CSRF token is missing" in r.data


def test_fleet_page_filters_in_sql(client, user, api_factory, account, user_token):
    """The fleet page's filters and counts on this database (PostgreSQL in the second pass)."""
    other = api_factory.device(api_factory.account(), unit_id="other-100%")
    a = api_factory.device(account, unit_id="unit_a%1", display="Alpha")
    b = api_factory.device(account, unit_id="unit_b", display="Beta", enrolled=False)
    r = client.patch(f"/devices/{a.id}/", json={"tags": ["x"]}, headers=user_token.headers)
    assert r.status_code == 200
    _login(client, user)

    def unit_ids(query):
        page = client.get(f"/ui/devices/?{query}")
        assert page.status_code == 200
        return re.findall(r'data-unit-id="([^"]+)"', page.get_data(as_text=True))

    assert unit_ids("") == ["unit_a%1", "unit_b"]
    assert other.unit_id not in client.get("/ui/devices/").get_data(as_text=True)
    # a prefix of the unit id or of the display name, ignoring case; % and _ are characters
    assert unit_ids("q=unit_a%25") == ["unit_a%1"]
    assert unit_ids("q=UNIT_A%25") == ["unit_a%1"]
    assert unit_ids("q=Unit_B") == ["unit_b"]
    assert unit_ids("q=unit%25") == []
    assert unit_ids("q=unit_") == ["unit_a%1", "unit_b"]
    assert unit_ids("q=Alph") == ["unit_a%1"]
    assert unit_ids("q=alph") == ["unit_a%1"]
    assert unit_ids("q=BETA") == ["unit_b"]
    assert unit_ids("q=alpha%25") == []
    assert unit_ids("q=nit") == []
    assert unit_ids("tag=x") == ["unit_a%1"]
    assert unit_ids("enrolled=no") == ["unit_b"]
    assert unit_ids("status=never_reported") == ["unit_a%1", "unit_b"]
    assert unit_ids("status=failed") == []
    assert unit_ids("status=succeeded") == []
    assert unit_ids(f"after_unit=unit_a%251&after_id={a.id}") == ["unit_b"]
    page = client.get("/ui/devices/").get_data(as_text=True)
    assert re.search(r'data-outcome="never_reported">2<', page)
    assert client.get(f"/ui/devices/{b.id}/").status_code == 200
    api_factory.device(account, unit_id="CAR-12", display="Ünit Zwölf")
    assert unit_ids("q=car-12") == unit_ids("q=Car-1") == ["CAR-12"]
    assert unit_ids("q=car-13") == []
    assert client.get(f"/ui/devices/{other.id}/").status_code == 404


def test_fleet_outcome_is_kept_on_the_device_by_every_write(
    app, client, user, api_factory, account, user_token, master_token
):
    """The stored outcome (devices.outcome, triggers of migration 0020) follows reports, a newer
    release, a revert and deletions; the counts and the status filter read it (this database)."""
    from tests.functional.test_fleet_api_rollouts import Fleet

    fleet = Fleet(app, client, api_factory, account, user_token, master_token)
    a, b, c, d = fleet.devices(4)
    _login(client, user)

    def counts():
        page = client.get("/ui/devices/").get_data(as_text=True)
        return {o: int(n) for o, n in re.findall(r'data-outcome="([a-z_]+)">(\d+)<', page)}

    def having(outcome):
        page = client.get(f"/ui/devices/?status={outcome}").get_data(as_text=True)
        return sorted(re.findall(r'data-unit-id="([^"]+)"', page))

    def outcomes():
        with app.app_context():
            return {i: db.session.get(Device, i).outcome for i in (a, b, c, d)}

    r1 = fleet.release([a, b, c])
    fleet.report(a, r1, "succeeded")
    fleet.report(b, r1, "failed", error="boom")
    fleet.report(c, r1, "applying")
    assert outcomes() == {a: "succeeded", b: "failed", c: "pending", d: "never_reported"}
    assert counts() == {"succeeded": 1, "failed": 1, "pending": 1, "never_reported": 1}
    assert having("failed") == [fleet.units[b]]
    assert having("never_reported") == [fleet.units[d]]
    # a newer release: the newest deployment decides, an older success no longer counts
    r2 = fleet.release([a, b])
    fleet.report(a, r2, "failed", error="exit 1")
    fleet.report(b, r2, "succeeded")
    assert outcomes()[a] == "failed" and outcomes()[b] == "succeeded"
    # the newer release deleted (its deployments cascade): the older one is queued again
    r = client.delete(fleet.url(r2), headers=fleet.headers)
    assert r.status_code == 204, r.data
    assert outcomes() == {a: "pending", b: "pending", c: "pending", d: "never_reported"}
    fleet.report(a, r1, "succeeded")
    fleet.report(b, r1, "failed", error="boom")
    # a device deleted: its deployments cascade with it
    r = client.delete(f"/devices/{c}/", headers=fleet.headers)
    assert r.status_code == 204, r.data
    c = fleet.devices(1)[0]
    # a rollout reverted: reverting (pending), then reverted (succeeded) once the device reports
    r3 = fleet.release([a], rollout={"waves": [100]})
    fleet.report(a, r3, "succeeded")
    fleet.act(r3, "revert")
    assert outcomes()[a] == "pending"
    fleet.report(a, r1, "succeeded")
    assert outcomes()[a] == "succeeded"
    assert counts() == {"succeeded": 1, "failed": 1, "pending": 0, "never_reported": 2}
    with app.app_context():
        assert outcome_drift() == {}


def test_the_release_pages_automatic_refresh_does_not_keep_the_session_alive(
    app, client, user, api_factory, account, user_token, master_token
):
    """The live part htmx polls and the no-JavaScript reload (``?auto=1``) are served within the
    session's lifetimes but do not restart its idle time; the operator's own request does."""
    from api.security.login import AccountSession
    from api.types import utcnow
    from tests.functional.test_fleet_api_rollouts import Fleet
    from tests.functional.test_security_login import _age_sessions

    def idle_minutes():
        with app.app_context():
            row = db.session.scalars(select(AccountSession)).one()
            return (utcnow() - row.last_seen).total_seconds() // 60

    fleet = Fleet(app, client, api_factory, account, user_token, master_token)
    release = fleet.release(fleet.devices(1))
    _login(client, user)
    page = f"/ui/projects/{fleet.project}/releases/{release['id']}/"
    html = client.get(page).get_data(as_text=True)
    assert f'url={page}?auto=1"' in html  # the no-JavaScript reload is marked
    _age_sessions(app, idle=29 * 60)
    for _ in range(3):  # polling: served, the idle time goes on
        assert client.get(f"{page}live/").status_code == 200
        assert client.get(f"{page}?auto=1").status_code == 200
        assert idle_minutes() == 29
    assert client.get(page).status_code == 200  # the operator's own request restarts it
    assert idle_minutes() == 0
    _age_sessions(app, idle=31 * 60)
    resp = client.get(f"{page}live/")  # an unattended page: the session has ended
    assert resp.status_code == 302 and "/account/login/" in resp.headers["Location"]


def test_the_worker_keeps_sqlites_planner_statistics(app, api_factory, account):
    """SQLite: the worker's analyze_sqlite writes the statistics the fleet page's plans need (a
    search or tag read through its index, not the account's devices in page order);
    PostgreSQL: autovacuum's job, nothing to do."""
    from sqlalchemy import text

    from api.worker import analyze_sqlite

    for n in range(3):
        api_factory.device(account, unit_id=f"car-{n}")
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
        assert analyze_sqlite() is sqlite
        if sqlite:
            indexes = db.session.scalars(
                text("SELECT idx FROM sqlite_stat1 WHERE tbl = 'devices'")
            ).all()
            assert "ix_devices_account_id_unit_id_lower" in indexes
