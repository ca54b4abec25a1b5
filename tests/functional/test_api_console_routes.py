"""Every console route, read from the URL map (issue 21; docs/console.md "Login, sessions, CSRF"):
another account's user gets 404 on every page and action that names an object, and every POST
without the CSRF token is refused, with nothing written. A new page or action is covered without
editing this test; a URL argument it cannot fill fails it, naming the argument."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api.audit import AuditEntry
from api.extensions import db
from api.types import utcnow
from tests.functional.test_api_console_releases import Console

# a form with a value for any field a console action reads, so a view that validated the form
# before looking its object up would answer 400 instead of 404 and fail the test
FORM = {
    "tags": "stolen",
    "version": "9.9",
    "containers-0-name": "app",
    "containers-0-image": "app",
    "containers-0-tag": "1",
    "fun": "minionutil.last_logs",
    "container": "app",
    "name": "stolen",
    "url": "https://registry.example.com",
    "username": "u",
    "password": "p",
}


def _console_rules(app):
    return [
        rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.") and rule.endpoint != "console.static"
    ]


def _objects(app, factory, account, user_token, label: str) -> dict:
    """One object of every kind a console URL names, in ``account``: URL argument -> value."""
    from api.execute.models import ExecuteJob
    from api.registries.models import Registry
    from api.rollouts.models import RolloutWebhook
    from api.security import enrollment

    client = app.test_client()
    headers = user_token.headers
    device = factory.device(account, unit_id=f"{label}-unit")
    project = client.post("/docker/projects/", json={"name": label}, headers=headers).json
    release = client.post(
        f"/docker/projects/{project['id']}/releases/",
        json={
            "version": "1.0",
            "devices": [device.id],
            "containers": [{"name": "app", "image": "app", "tag": "1"}],
            "rollout": {"waves": [100]},
            "pin_digests": False,
        },
        headers=headers,
    )
    assert release.status_code == 201, release.json
    api_token = factory.token(account=account, name=label)
    with app.app_context():
        registry = Registry(account_id=account.id, name=label, url="r.example", username="u")
        registry.set_password(f"{label}-secret")
        hook = RolloutWebhook(account_id=account.id, url=f"https://hooks.example/{label}")
        job = ExecuteJob(
            jid=f"2026120700000000{account.id:04d}",
            account_id=account.id,
            device_id=device.id,
            unit_id=device.unit_id,
            fun="minionutil.last_logs",
            deadline=utcnow() + timedelta(minutes=5),
        )
        db.session.add_all([registry, hook, job])
        enroll, _ = enrollment.create(account.id, name=label)
        db.session.commit()
        return {
            "device_id": device.id,
            "jid": job.jid,
            "project_id": project["id"],
            "release_id": release.json["id"],
            "action": "abort",
            "token_id": api_token.id,
            "registry_id": registry.id,
            "hook_id": hook.id,
            "enrollment_token_id": enroll.id,
        }


def _url(rule, objects: dict) -> str:
    missing = sorted(set(rule.arguments) - set(objects))
    assert not missing, f"{rule.rule}: no object for URL argument(s) {missing}: add one"
    # token_id is an API token in /tokens/ and an enrollment token in /enrollment/
    values = {name: objects[name] for name in rule.arguments}
    if "enrollment" in rule.rule and "token_id" in values:
        values["token_id"] = objects["enrollment_token_id"]
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule.rule)


def _audit_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AuditEntry))


@pytest.fixture
def two_accounts(app, api_factory, account, user, user_token):
    other_account = api_factory.account()
    other_token = api_factory.token(account=other_account)
    victim = _objects(app, api_factory, other_account, other_token, "victim")
    own = _objects(app, api_factory, account, user_token, "own")
    return victim, own


def test_another_accounts_objects_are_404_on_every_console_route(app, user, two_accounts):
    victim, _ = two_accounts
    console = Console(app, user)
    before = _audit_count(app)
    checked = []
    for rule in _console_rules(app):
        if not rule.arguments - {"action"}:
            continue  # the account's own lists and create forms
        url = _url(rule, victim)
        for method in sorted(rule.methods & {"GET", "POST"}):
            resp = console.get(url) if method == "GET" else console.post(url, FORM)
            assert resp.status_code == 404, (method, url, resp.status_code)
            assert "victim" not in resp.get_data(as_text=True), (method, url)
            checked.append((method, rule.rule))
    assert len(checked) >= 15, checked
    assert _audit_count(app) == before  # nothing was done in either account
    # the lists show none of the other account's objects
    for path in (
        "/ui/devices/",
        "/ui/projects/",
        "/ui/account/",
        "/ui/account/enrollment/",
        "/ui/account/registries/",
        "/ui/account/webhooks/",
        "/ui/audit/",
    ):
        page = console.get(path)
        assert page.status_code == 200, path
        assert "victim" not in page.get_data(as_text=True), path


def test_every_console_post_without_the_csrf_token_is_refused(app, user, two_accounts):
    _, own = two_accounts
    console = Console(app, user)
    before = _audit_count(app)
    posts = [rule for rule in _console_rules(app) if "POST" in rule.methods]
    assert len(posts) >= 12, [r.rule for r in posts]
    for rule in posts:
        url = _url(rule, own)
        for token in (None, "forged", console.token + "x"):
            data = dict(FORM) if token is None else {**FORM, "csrf_token": token}
            resp = console.client.post(url, data=data)
            assert resp.status_code == 400, (url, token, resp.status_code)
            assert "CSRF token is missing or wrong" in resp.get_data(as_text=True), url
    assert _audit_count(app) == before


XSS = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
RAW = ("<img src=x", "<script>alert")


def test_text_from_users_and_devices_is_escaped_on_every_console_page(
    app, client, api_factory, account, user, user_token, master_token
):
    """A display name, project name, release version, deployment error, token and registry
    names, and the audit details carrying them: escaped on every GET page of the URL map (the
    live fragment included) and where a refused form or a filter echoes what was typed."""
    from tests.fixtures.api import report_body, signed_report

    headers = user_token.headers
    own = _objects(app, api_factory, account, user_token, "own")
    device = client.patch(f"/devices/{own['device_id']}/", json={"display": XSS}, headers=headers)
    assert device.status_code == 200, device.json
    project = client.post("/docker/projects/", json={"name": XSS}, headers=headers).json
    release = client.post(
        f"/docker/projects/{project['id']}/releases/",
        json={
            "version": XSS,
            "devices": [own["device_id"]],
            "containers": [{"name": "app", "image": "app", "tag": "1"}],
            "pin_digests": False,
        },
        headers=headers,
    ).json
    report = report_body("own-unit", release, "failed", error=XSS)
    resp = client.post(
        "/master/deployments/report/",
        json=signed_report(app, report, own["device_id"]),
        headers=master_token.headers,
    )
    assert resp.status_code == 200, resp.json
    assert (
        client.post("/enrollment-tokens/", json={"name": XSS}, headers=headers).status_code == 201
    )
    api_factory.token(account=account, name=XSS)
    objects = {**own, "project_id": project["id"], "release_id": release["id"]}
    console = Console(app, user)
    pages = [
        _url(rule, objects)
        for rule in _console_rules(app)
        if "GET" in rule.methods and rule.arguments <= set(objects)
    ]
    pages += [
        f"/ui/devices/?q={XSS}",
        f"/ui/devices/?tag={XSS}&status={XSS}&release={XSS}",
        f"/ui/audit/?action={XSS}&device={XSS}&since={XSS}",
        f"/ui/projects/{project['id']}/releases/{release['id']}/live/?status={XSS}&wave={XSS}",
    ]
    escaped = 0
    for path in pages:
        resp = console.get(path, follow_redirects=True)
        assert resp.status_code in (200, 400, 404, 409), (path, resp.status_code)
        html = resp.get_data(as_text=True)
        for raw in RAW:
            assert raw not in html, (path, raw)
        escaped += "&lt;script&gt;alert(2)" in html
    assert escaped >= 6, escaped
    # a refused form echoes what was typed, escaped
    for path, form in (
        (
            f"/ui/projects/{project['id']}/releases/new/",
            {"version": XSS, "containers-0-image": XSS},
        ),
        (f"/ui/devices/{own['device_id']}/tags/", {"tags": XSS}),
        ("/ui/account/registries/", {"name": XSS, "url": XSS, "username": XSS, "password": "p"}),
        ("/ui/account/webhooks/", {"url": XSS}),
    ):
        html = console.post(path, form).get_data(as_text=True)
        for raw in RAW:
            assert raw not in html, (path, raw)


BAD_QUERIES = (
    "page=-1&before=-5&after=-1&after_id=-1&wave=-1&window=-1h&interval=0s&since=yesterday"
    "&until=2026-13-45&page_size=-1&enrolled=maybe&aggregation=nope&field=nope&status=nope",
    "page=abc&before=99999999999999999999999&after=99999999999999999999&wave=99999999999999"
    "&after_id=99999999999999999999&release=99999999999999999999&device=99999999999999999999"
    "&window=99999d&interval=99999999999999s&user=99999999999999999999",
    "after_unit=%00&tag=%00&q=%00&action=%00&field=%00&status=%00",
    "q=" + "\u00e9\u6f22\U0001f697" * 400 + "&tag=" + "x" * 5000 + "&after_unit=" + "x" * 5000,
)
HUGE = "\u00e9\U0001f697" * 5_000 + "\x00"


def test_bad_input_on_every_console_route_is_never_a_server_error(
    app, api_factory, account, user, user_token
):
    """Negative, huge, non-numeric and NUL-carrying query parameters on every GET page, bad ids
    in URLs, and huge unicode / NUL form fields on every POST: an answer below 500 (the API's
    message or a 404), never a traceback."""
    objects = _objects(app, api_factory, account, user_token, "own")
    console = Console(app, user)
    for rule in _console_rules(app):
        url = _url(rule, objects)
        if "GET" in rule.methods:
            for query in BAD_QUERIES:
                resp = console.get(f"{url}?{query}")
                assert resp.status_code < 500, (url, query, resp.status_code)
                assert "Traceback" not in resp.get_data(as_text=True)
        if "POST" in rule.methods:
            form = {name: HUGE for name in FORM} | {
                "waves": "-1 0 " + "9" * 30,
                "rollout": "on",
                "command": HUGE,
            }
            resp = console.post(url, form)
            assert resp.status_code < 500, (url, resp.status_code)
        for name in rule.arguments:
            for bad in ("0", "99999999999999999999", "%00%C3%A9" + "x" * 3000):
                resp = console.get(_url(rule, {**objects, name: bad}))
                assert resp.status_code < 500, (rule.rule, name, bad, resp.status_code)
