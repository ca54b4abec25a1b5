"""The audit log: every audited action leaves a row (who, what, when, from where), rows never
hold secrets, survive the device/user they name, are append-only, and GET /audit/ shows an
account only its own rows."""

import json

import pytest
import sqlalchemy as sa

from api.audit import AuditEntry, record
from api.extensions import db

pytestmark = pytest.mark.db

SEED_CONTAINER = {
    "name": "curveball",
    "image": "curveball",
    "tag": "delta-base-r0.0.0.1",
    "startup_parameters": {"binds": ["/home/balenaEngine/data:/opt/data"]},
}


def audit(client, headers, **params):
    resp = client.get("/audit/", headers=headers, query_string=params)
    assert resp.status_code == 200, resp.json
    return resp.json


def test_release_and_registry_changes_are_audited_without_secrets(
    client, user_token, device, account
):
    resp = client.post(
        "/docker/registries/",
        json={
            "name": "r",
            "url": "registry.example:5000",
            "username": "u",
            "password": "hunter2-secret",
        },
        headers=user_token.headers,
    )
    assert resp.status_code == 201
    registry = resp.json["id"]
    client.patch(
        f"/docker/registries/{registry}/",
        json={"password": "other-secret"},
        headers=user_token.headers,
    )
    project = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]
    resp = client.post(
        f"/docker/projects/{project}/releases/",
        json={
            "version": "1",
            "devices": [device.id],
            "containers": [SEED_CONTAINER],
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
        },
        headers=user_token.headers,
    )
    assert resp.status_code == 201, resp.json
    release = resp.json["id"]
    assert (
        client.patch(
            f"/docker/projects/{project}/releases/{release}/",
            json={"devices": []},
            headers=user_token.headers,
        ).status_code
        == 200
    )
    assert (
        client.delete(
            f"/docker/projects/{project}/releases/{release}/", headers=user_token.headers
        ).status_code
        == 204
    )

    page = audit(client, user_token.headers)
    actions = [r["action"] for r in page["results"]]
    assert actions == [
        "release.delete",
        "release.update",
        "release.create",
        "project.create",
        "registry.update",
        "registry.create",
    ]
    for row in page["results"]:
        assert row["token"] == user_token.id
        assert row["client_address"] == "127.0.0.1"
        assert row["at"].endswith("Z")
    assert page["results"][2]["target"] == f"release:{release}"
    assert page["results"][4]["details"] == {"fields": ["password"]}
    text = json.dumps(page)
    assert "hunter2-secret" not in text and "other-secret" not in text
    assert audit(client, user_token.headers, action="release.create")["count"] == 1


def test_another_account_sees_none_of_it_and_filters_work(
    client, api_factory, user_token, device, app
):
    with app.app_context():
        record(
            "execute",
            account_id=user_token.account_id,
            device_id=device.id,
            details={"function": "test.ping"},
        )
        record("login", account_id=user_token.account_id, user_id=None)
        db.session.commit()
    other = api_factory.token("user")
    assert audit(client, other.headers)["count"] == 0
    assert audit(client, user_token.headers, device=device.id)["count"] == 1
    assert audit(client, user_token.headers, since="2000-01-01T00:00:00Z")["count"] == 2
    assert audit(client, user_token.headers, until="2000-01-01T00:00:00Z")["count"] == 0
    resp = client.get("/audit/", headers=user_token.headers, query_string={"since": "yesterday"})
    assert resp.status_code == 400 and "since" in resp.json
    resp = client.get("/audit/", headers=user_token.headers, query_string={"user": "x"})
    assert resp.status_code == 400 and "user" in resp.json
    assert client.get("/audit/").status_code == 401


def test_rows_survive_the_device_and_are_append_only(client, app, user_token, device):
    assert client.delete(f"/devices/{device.id}/", headers=user_token.headers).status_code == 204
    with app.app_context():
        record(
            "execute",
            account_id=user_token.account_id,
            device_id=device.id,
            details={"token": "s3cr3t", "arg": [{"password": "p"}]},
        )
        db.session.commit()
        row = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "execute")).one()
        assert row.details == {"token": "***", "arg": [{"password": "***"}]}
        with pytest.raises(sa.exc.DBAPIError):
            db.session.execute(sa.update(AuditEntry).values(action="nothing happened"))
            db.session.commit()
        db.session.rollback()
    assert audit(client, user_token.headers, device=device.id)["results"][0]["action"] == "execute"


def test_audit_is_in_the_openapi_document(client):
    doc = client.get("/openapi.json").json
    op = doc["paths"]["/audit/"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"action", "device", "user", "since", "until"}


UNREACHABLE_SALT = {
    "BERTH_SALT_API_URL": "http://127.0.0.1:9",
    "BERTH_SALT_API_USER": "berth",
    "BERTH_SALT_API_PASSWORD": "x",
    "BERTH_SALT_API_TIMEOUT": "1",
}


def test_execute_rows_never_hold_an_argument_of_a_function_outside_the_safe_set(
    app, client, user_token, device, account
):
    """A password passed positionally (``docker.login``) or as a keyword an admin allowed was
    stored as given; now only safe-set functions keep their arguments."""
    app.config.update(UNREACHABLE_SALT)

    def post(body):
        return client.post(
            f"/dongle/devices/{device.id}/execute/", json=body, headers=user_token.headers
        )

    # refused (403, the safe default): the attempt is audited, its arguments are not
    assert (
        post({"command": "docker.login", "arg": ["reg:5000", "u", "pw-refused-1"]}).status_code
        == 403
    )
    result = app.test_cli_runner().invoke(
        args=["accounts", "commands", account.name, "--allow-all"]
    )
    assert result.exit_code == 0, result.output
    # accepted (Salt unreachable: 503 after the row is written)
    assert (
        post({"command": "docker.login", "arg": ["reg:5000", "u", "pw-positional-2"]}).status_code
        == 503
    )
    assert post(
        {"command": "cmd.run", "arg": ["echo pw-kwstring-3", "password=pw-kwstring-4"]}
    ).status_code in (400, 503)
    assert (
        post({"command": "docker.logs", "arg": ["curveball"], "kwarg": {"tail": 5}}).status_code
        == 503
    )

    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditEntry)
            .where(AuditEntry.action.in_(["execute", "execute.refused"]))
            .order_by(AuditEntry.id)
        ).all()
        stored = json.dumps([r.details for r in rows])
    assert "pw-" not in stored, stored
    assert [r.details for r in rows[:2]] == [
        {"function": "docker.login", "arg_count": 3, "kwarg": {}, "status": 403},
        {"function": "docker.login", "arg_count": 3, "kwarg": {}},
    ]
    assert rows[-1].details == {
        "function": "docker.logs",
        "arg": ["curveball"],
        "kwarg": {"tail": 5},
    }
    assert "pw-" not in json.dumps(audit(client, user_token.headers))


def test_audit_filters_are_what_the_document_says(client, user_token):
    """Every RFC 3339 date-time is read; an empty or non-integer user, or an empty page_size,
    is a 400 naming it; a page past the last is the documented 404."""
    h = user_token.headers
    ok = client.get(
        "/audit/?since=2016-12-31t23:59:60z&until=2999-01-01T00:00:00%2B01:00", headers=h
    )
    assert ok.status_code == 200, ok.json
    for query, field in (("user=", "user"), ("user=%C2%B2", "user"), ("page_size=", "page_size")):
        resp = client.get(f"/audit/?{query}", headers=h)
        assert resp.status_code == 400 and field in resp.json, (query, resp.json)
    assert client.get("/audit/?page=99", headers=h).status_code == 404
    doc = client.get("/openapi.json").json["paths"]["/audit/"]["get"]
    assert "404" in doc["responses"]
    params = {p["name"]: p["schema"] for p in doc["parameters"]}
    assert params["page_size"]["maximum"] == 1000 and params["user"]["minimum"] == 0


def test_audit_time_filters_refuse_what_is_not_a_date_time(client, user_token):
    """since/until are ``format: date-time``: an empty value, a bare date or a basic-format
    date is a 400 naming the parameter, not a filter the server quietly reads or drops."""
    for name in ("since", "until"):
        for value in ("", "2020-01-01", "20200101", "2020-01-01T", "x2020-01-01T00:00:00"):
            resp = client.get("/audit/", headers=user_token.headers, query_string={name: value})
            assert resp.status_code == 400 and name in resp.json, (name, value, resp.json)
        ok = client.get(
            "/audit/", headers=user_token.headers, query_string={name: "2020-01-01T00:00:00"}
        )
        assert ok.status_code == 200, ok.json


def test_project_delete_tag_change_rename_and_webhooks_are_audited(
    app, client, user_token, device, account
):
    """Issue 17, finding 7: these left no row. Deleting a project names the releases that went
    with it; a tag change (it retargets releases) keeps the tags before and after; a rename keeps
    both names; a webhook's URL is stored without its credentials or query string."""
    h = user_token.headers
    project = client.post("/docker/projects/", json={"name": "old"}, headers=h).json["id"]
    releases = [
        client.post(
            f"/docker/projects/{project}/releases/",
            json={
                "version": v,
                "devices": [device.id],
                "containers": [SEED_CONTAINER],
                "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
            },
            headers=h,
        ).json["id"]
        for v in ("1", "2")
    ]
    assert (
        client.patch(f"/docker/projects/{project}/", json={"name": "new"}, headers=h).status_code
        == 200
    )
    for tags in (["fleet-a"], ["fleet-b", "fleet-a"]):
        resp = client.patch(f"/devices/{device.id}/", json={"tags": tags}, headers=h)
        assert resp.status_code == 200, resp.json
    assert client.delete(f"/docker/projects/{project}/", headers=h).status_code == 204
    app.test_cli_runner().invoke(args=["accounts", "webhook-secret", account.name])
    url = "http://hookuser:hook-s3cret@127.0.0.1:9/hook?sig=query-s3cret"
    hook = client.post("/docker/rollout-webhooks/", json={"url": url}, headers=h)
    assert hook.status_code == 201, hook.json
    assert (
        client.delete(f"/docker/rollout-webhooks/{hook.json['id']}/", headers=h).status_code == 204
    )

    rows = {}
    for row in reversed(audit(client, h, page_size=100)["results"]):
        rows.setdefault(row["action"], []).append(row)
    assert rows["project.update"][0]["details"] == {
        "fields": ["name"],
        "name": {"before": "old", "after": "new"},
    }
    assert [r["details"]["tags"] for r in rows["device.update"]] == [
        {"before": [], "after": ["fleet-a"]},
        {"before": ["fleet-a"], "after": ["fleet-a", "fleet-b"]},
    ]
    assert rows["device.update"][0]["device"] == device.id
    (deleted,) = rows["project.delete"]
    assert deleted["target"] == f"project:{project}"
    assert deleted["details"] == {"name": "new", "release_count": 2, "releases": releases}
    assert [r["details"]["url"] for r in rows["rollout_webhook.create"]] == [
        "http://127.0.0.1:9/hook"
    ]
    assert rows["rollout_webhook.delete"][0]["target"] == f"rollout_webhook:{hook.json['id']}"
    assert "s3cret" not in json.dumps(rows)
    assert audit(client, h, action="rollout_webhook.delete")["count"] == 1
