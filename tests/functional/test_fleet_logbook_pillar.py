"""The logbook part of the master pillar (real database): the device's shipper token is minted once,
served again, re-minted after revoke/expiry, works for that device only and leaves the API nowhere else."""

import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from api.accounts.models import ApiToken, User
from api.extensions import db
from api.master.logbook_settings import TOKEN_NAME, LogbookShipperToken
from api.types import utcnow

pytestmark = pytest.mark.db

RECORD = {
    "ts": "2026-11-27T10:00:00Z",
    "field": "obd.bat.voltage",
    "field_type": "float",
    "value": 13.5,
}


def pillar(client, master_token, device):
    resp = client.get(f"/master/minions/{device.unit_id}/pillar/", headers=master_token.headers)
    assert resp.status_code == 200, resp.json
    return resp.json


def write(client, token, device_id):
    return client.post(
        "/logbook/storage/write/",
        json={"device_id": device_id, "records": [RECORD]},
        headers={"Authorization": f"APIToken {token}"},
    )


def shipper_tokens(app, device):
    with app.app_context():
        return db.session.scalars(
            select(ApiToken)
            .where(ApiToken.device_id == device.id, ApiToken.name == TOKEN_NAME)
            .order_by(ApiToken.id)
        ).all()


def csrf(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1).decode()


def login(client, user):
    page = client.get("/account/login/")
    r = client.post(
        "/account/login/",
        data={"email": user.email, "password": user.password, "csrf_token": csrf(page.data)},
    )
    assert r.status_code == 302


def test_pillar_has_logbook_settings_with_a_working_device_token(app, client, master_token, device):
    logbook = pillar(client, master_token, device)["logbook"]
    assert logbook["url"] == "http://localhost"  # derived from the request's host URL
    assert logbook["device_id"] == device.id
    assert logbook["token"].startswith("berth_")
    resp = write(client, logbook["token"], device.id)
    assert resp.status_code == 201, resp.json
    assert resp.json["written"] == 1
    [row] = shipper_tokens(app, device)
    assert (
        row.scope == "device"
        and row.device_id == device.id
        and not row.revoked
        and row.expires is None
    )


def test_public_url_from_config(app, client, master_token, device):
    app.config["BERTH_PUBLIC_URL"] = "https://berth.example.com/"
    assert pillar(client, master_token, device)["logbook"]["url"] == "https://berth.example.com"


def test_public_url_from_environment(app, client, master_token, device, monkeypatch):
    monkeypatch.setenv("BERTH_PUBLIC_URL", "https://env.example.com")
    assert pillar(client, master_token, device)["logbook"]["url"] == "https://env.example.com"


def test_token_minted_once_and_served_again(app, client, master_token, device):
    first = pillar(client, master_token, device)["logbook"]["token"]
    for _ in range(3):
        assert pillar(client, master_token, device)["logbook"]["token"] == first
    assert len(shipper_tokens(app, device)) == 1


def test_stored_encrypted_not_in_clear(app, client, master_token, device):
    token = pillar(client, master_token, device)["logbook"]["token"]
    with app.app_context():
        row = db.session.get(LogbookShipperToken, device.id)
        assert token not in row.token_encrypted
        assert token not in repr(row)


def test_each_device_gets_its_own_token_valid_for_it_only(
    app, client, master_token, api_factory, account
):
    one, two = api_factory.device(account), api_factory.device(account)
    token_one = pillar(client, master_token, one)["logbook"]["token"]
    token_two = pillar(client, master_token, two)["logbook"]["token"]
    assert token_one != token_two
    assert write(client, token_one, one.id).status_code == 201
    assert write(client, token_one, two.id).status_code == 403
    assert write(client, token_two, two.id).status_code == 201
    other_account_device = api_factory.device(api_factory.account())
    assert write(client, token_one, other_account_device.id).status_code == 404


def test_revoked_token_is_replaced(app, client, master_token, device, user):
    old = pillar(client, master_token, device)["logbook"]["token"]
    [row] = shipper_tokens(app, device)
    login(client, user)  # revoked the way an operator does it: on the account page
    page = client.get("/account/")
    assert TOKEN_NAME.encode() in page.data
    r = client.post(f"/account/tokens/{row.id}/revoke/", data={"csrf_token": csrf(page.data)})
    assert r.status_code == 302
    assert write(client, old, device.id).status_code == 401
    new = pillar(client, master_token, device)["logbook"]["token"]
    assert new != old
    assert write(client, new, device.id).status_code == 201
    assert pillar(client, master_token, device)["logbook"]["token"] == new
    tokens = shipper_tokens(app, device)
    assert [t.revoked for t in tokens] == [True, False]


def test_expired_token_is_replaced(app, client, master_token, device):
    old = pillar(client, master_token, device)["logbook"]["token"]
    with app.app_context():
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.device_id == device.id)
            .values(expires=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert write(client, old, device.id).status_code == 401
    new = pillar(client, master_token, device)["logbook"]["token"]
    assert new != old
    assert write(client, new, device.id).status_code == 201
    old_row, new_row = shipper_tokens(app, device)
    assert old_row.revoked and not new_row.revoked and new_row.expires is None


def test_deleted_token_is_replaced(app, client, master_token, device):
    old = pillar(client, master_token, device)["logbook"]["token"]
    with app.app_context():
        db.session.query(ApiToken).filter(ApiToken.device_id == device.id).delete()
        db.session.commit()
        assert db.session.get(LogbookShipperToken, device.id) is None  # cascaded
    new = pillar(client, master_token, device)["logbook"]["token"]
    assert new != old and write(client, new, device.id).status_code == 201


def test_token_not_returned_or_logged_anywhere_else(
    app, client, master_token, user_token, user, device, caplog
):
    caplog.set_level(logging.DEBUG)
    token = pillar(client, master_token, device)["logbook"]["token"]
    assert "minted logbook shipper token" in caplog.text and device.unit_id in caplog.text
    for path in (
        "/devices/",
        f"/devices/{device.id}/",
        "/docker/registries/",
        "/docker/projects/",
        "/openapi.json",
    ):
        resp = client.get(path, headers=user_token.headers)
        assert token not in resp.get_data(as_text=True), path
    login(client, user)
    assert token.encode() not in client.get("/account/").data
    assert token not in caplog.text
    for record in caplog.records:
        assert token not in repr(record.args)


def test_only_master_scope_gets_it(client, user_token, device_token, device):
    for headers in (user_token.headers, device_token.headers):
        resp = client.get(f"/master/minions/{device.unit_id}/pillar/", headers=headers)
        assert resp.status_code == 403
        assert "logbook" not in resp.get_data(as_text=True)


def test_unknown_device_has_no_token(app, client, master_token):
    resp = client.get("/master/minions/nope/pillar/", headers=master_token.headers)
    assert resp.status_code == 404
    with app.app_context():
        assert db.session.scalars(select(LogbookShipperToken)).all() == []


def test_account_without_users_gets_no_logbook_but_its_release_pillar(
    app, client, master_token, device, caplog
):
    with app.app_context():
        db.session.query(User).delete()  # the master token stays valid (user_id SET NULL)
        db.session.commit()
    body = pillar(client, master_token, device)
    assert body["logbook"] is None and body["release"] is None
    assert f"device {device.unit_id}: no user" in caplog.text


def test_master_token_owner_gone_token_owned_by_another_user_of_the_account(
    app, client, master_token, user, api_factory, account, device
):
    other = api_factory.user(account)
    with app.app_context():
        db.session.delete(db.session.get(User, user.id))
        db.session.commit()
    token = pillar(client, master_token, device)["logbook"]["token"]
    assert write(client, token, device.id).status_code == 201
    [row] = shipper_tokens(app, device)
    assert row.user_id == other.id
