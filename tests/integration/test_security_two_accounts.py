"""Two accounts on one Salt tier, all real: API (its own database) -> salt-api -> salt-master
(platform token, ext_pillar) -> two minions. Each minion enrolls in its own account with an
enrollment token (grain ``berth_enrollment_token``, presented by the ext_pillar). Each account's
release and execute reach only its own minion; the other account's attempts are 404 (or 409 for
a pending claim) and never reach salt-api -- counted at salt-api's door by a forwarding proxy.
And another account's own master cannot take a minion of the platform master by syncing its id
(issue 17, finding 3). A minion of one account cannot report a result for another device, of
its account or another's (issue 17, finding 2).
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from berth import results
from berth.contract import EventTag
from tests.fixtures.salt import LiveApi, fire_nested_events, send_result_event, wait_for

pytestmark = [pytest.mark.salt_daemons, pytest.mark.db]


class CountingProxy:
    """Forwards every request to salt-api and records the ``local_async`` publications."""

    def __init__(self, target: str):
        self.publications: list[dict] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if method == "POST" and self.path.rstrip("/") in ("", "/"):
                    try:
                        for low in (
                            json.loads(body or b"[]")
                            if body.startswith(b"[")
                            else [json.loads(body)]
                        ):
                            if low.get("client") == "local_async":
                                proxy.publications.append(low)
                    except ValueError:
                        pass
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                resp = requests.request(
                    method, target + self.path, data=body, headers=headers, timeout=60
                )
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "content-encoding",
                    ):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            def do_GET(self):
                self._forward("GET")

            def do_POST(self):
                self._forward("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def targets(self, fun=None):
        return [p.get("tgt") for p in self.publications if fun is None or p.get("fun") == fun]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tier(
    fleet_api,
    fleet_api_port,
    fleet_api_token_file,
    fleet_state_dir,
    salt_api,
    salt_minions,
    salt_cli,
    tmp_path,
):
    """The session's API stopped; a fresh API (own database, salt-api behind the counting proxy)
    on the master's API URL, with a platform token in the master's token file."""
    from flask_migrate import upgrade

    from api import create_app
    from api.extensions import db
    from api.settings import normalize_database_url
    from tests.fixtures.api import ApiFactory, _create_private_pg_database

    proxy = CountingProxy(salt_api.url)
    configured = os.environ.get("BERTH_TEST_DATABASE_URL")
    if configured:
        url, drop = _create_private_pg_database(normalize_database_url(configured))
    else:
        url, drop = "sqlite:///" + str(tmp_path / "tier.sqlite3"), lambda: None
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "berth-two-accounts-secret",
            "INSTANCE_PATH": str(tmp_path / "instance"),
            **salt_api.env(),
            "BERTH_SALT_API_URL": proxy.url,
            "BERTH_SALT_API_TIMEOUT": "60",
        }
    )
    with app.app_context():
        upgrade()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["platform-token", "create", "--name", "salt-tier"])
    assert result.exit_code == 0, result.output
    platform_token = result.output.strip().splitlines()[-1]
    factory = ApiFactory(app)
    accounts = {}
    for name in ("acme", "globex"):
        account = factory.account(name)
        accounts[name] = {
            "account": account,
            "headers": factory.token("user", account=account).headers,
            # the account's own single-tenant master (not running here: its sync is its word)
            "master": factory.token("master", account=account).headers,
        }

    saved_token = fleet_api_token_file.read_text()
    fleet_api.stop()
    live = LiveApi(app, fleet_api_port)
    live.start()
    fleet_api_token_file.write_text(platform_token + "\n")
    try:
        yield {
            "api": live,
            "accounts": accounts,
            "proxy": proxy,
            "minions": salt_minions,
            "platform_token": platform_token,
        }
    finally:
        for minion in salt_minions:
            salt_cli.run("grains.delkey", "berth_enrollment_token", minion_tgt=minion.id)
        live.stop()
        fleet_api_token_file.write_text(saved_token)
        os.chmod(fleet_api_token_file, 0o600)
        fleet_api.start()
        for minion in salt_minions:
            salt_cli.run("saltutil.refresh_pillar", minion_tgt=minion.id)
        proxy.close()
        with app.app_context():
            db.engine.dispose()
        drop()


def call(tier, account, method, path, expect, credential="headers", **kwargs):
    resp = requests.request(
        method,
        tier["api"].url + path,
        headers=tier["accounts"][account][credential],
        timeout=60,
        **kwargs,
    )
    assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
    return resp.json() if resp.content else None


def test_two_accounts_enrolled_on_one_master_reach_only_their_own_minion(tier, salt_cli):
    acme_minion, globex_minion = tier["minions"]
    owners = {"acme": acme_minion, "globex": globex_minion}
    devices = {}
    for account, minion in owners.items():
        token = call(
            tier,
            account,
            "POST",
            "/enrollment-tokens/",
            201,
            json={"name": "field batch", "max_uses": 1},
        )["token"]
        ret = salt_cli.run("grains.setval", "berth_enrollment_token", token, minion_tgt=minion.id)
        assert ret.returncode == 0, ret
        # the minion's next pillar request carries the grain; the ext_pillar presents it
        ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
        assert ret.returncode == 0, ret
        listed = wait_for(
            lambda a=account: call(tier, a, "GET", "/devices/", 200)["results"],
            timeout=60,
            what=f"{account}'s device",
        )
        assert [(d["unit_id"], d["enrolled"]) for d in listed] == [(minion.id, True)]
        devices[account] = listed[0]["id"]

    # each account's release reaches its own minion's pillar only
    for account in owners:
        project = call(tier, account, "POST", "/docker/projects/", 201, json={"name": "app"})["id"]
        call(
            tier,
            account,
            "POST",
            f"/docker/projects/{project}/releases/",
            201,
            json={
                "version": f"{account}-1",
                "devices": [devices[account]],
                "containers": [{"name": f"{account}-app", "image": f"{account}/app", "tag": "1"}],
                "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
            },
        )
    for account, minion in owners.items():
        # (what the worker's outbox message does first), then read it; Salt 3008 masks pillar
        # values unless asked with unmask=True
        ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
        assert ret.returncode == 0, ret
        ret = salt_cli.run("pillar.get", "docker:release", "unmask=True", minion_tgt=minion.id)
        assert ret.returncode == 0, ret
        release = ret.data
        assert release["version"] == f"{account}-1", ret.data
        assert [c["name"] for c in release["containers"]] == [f"{account}-app"]

    # the other account: 404 on the device, 409 for a pending claim of the unit_id -- and no publication
    before = list(tier["proxy"].publications)
    call(
        tier,
        "globex",
        "POST",
        f"/dongle/devices/{devices['acme']}/execute/",
        404,
        json={"command": "test.ping"},
    )
    call(tier, "globex", "GET", f"/devices/{devices['acme']}/", 404)
    claim = call(tier, "globex", "POST", "/devices/", 201, json={"unit_id": acme_minion.id})
    assert claim["enrolled"] is False
    call(
        tier,
        "globex",
        "POST",
        f"/dongle/devices/{claim['id']}/execute/",
        409,
        json={"command": "test.ping"},
    )
    assert tier["proxy"].publications == before  # nothing reached salt-api

    # each account's own execute reaches its own minion, and only it
    for account, minion in owners.items():
        job = call(
            tier,
            account,
            "POST",
            f"/dongle/devices/{devices[account]}/execute/",
            202,
            json={"command": "test.ping"},
        )
        assert job["minions"] == [minion.id]

        def done(a=account, jid=job["jid"]):
            result = call(tier, a, "GET", f"/dongle/devices/{devices[a]}/execute/{jid}/", 200)
            return result if result["state"] == "COMMAND_EXECUTED" else None

        result = wait_for(done, timeout=120, what=f"{account}'s test.ping")
        assert result["response"]["return"] is True
    assert tier["proxy"].targets("test.ping") == [[acme_minion.id], [globex_minion.id]]
    # and the audit log of each account shows its own enrollment and execute, nothing of the other's
    for account in owners:
        rows = call(tier, account, "GET", "/audit/", 200)["results"]
        actions = {r["action"] for r in rows}
        assert {"device.enroll", "execute", "enrollment_token.create", "release.create"} <= actions
        other = devices["globex" if account == "acme" else "acme"]
        assert all(r["device"] != other for r in rows)


def _pillar(salt_cli, minion, key):
    ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    ret = salt_cli.run("pillar.get", key, "unmask=True", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    return ret.data


def _enroll_with_grain(tier, salt_cli, account, minion):
    token = call(tier, account, "POST", "/enrollment-tokens/", 201, json={"max_uses": 1})["token"]
    ret = salt_cli.run("grains.setval", "berth_enrollment_token", token, minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
    assert ret.returncode == 0, ret


def _release(tier, account, device_id, version, more_devices=(), rollout=None):
    """``account``'s release ``version`` of a new project for ``device_id`` (and ``more_devices``;
    ``rollout``: its policy); the release JSON and its ``project``."""
    project = call(tier, account, "POST", "/docker/projects/", 201, json={"name": version})["id"]
    body = call(
        tier,
        account,
        "POST",
        f"/docker/projects/{project}/releases/",
        201,
        json={
            "version": version,
            "devices": [device_id, *more_devices],
            "containers": [{"name": f"{account}-app", "image": f"{account}/app", "tag": "1"}],
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
            **({"rollout": rollout} if rollout else {}),
        },
    )
    return {"project": project, **body}


def test_another_accounts_master_sync_cannot_take_a_minion_of_the_platform_master(tier, salt_cli):
    acme_minion, globex_minion = tier["minions"]
    for account in ("acme", "globex"):
        call(
            tier,
            account,
            "POST",
            "/docker/registries/",
            201,
            json={
                "name": "r",
                "url": f"{account}.example:5000",
                "username": account,
                "password": f"{account}-registry-pw",
            },
        )

    # acme's own master syncs globex's minion id before globex has any trace of it, and gives
    # that "device" a release: the platform master, asking the minion's pillar, is not served it
    sync = call(
        tier,
        "acme",
        "POST",
        "/master/devices/sync/",
        200,
        credential="master",
        json={"unit_ids": [globex_minion.id]},
    )
    assert sync["created"] == [globex_minion.id]
    taken = call(tier, "acme", "GET", "/devices/", 200)["results"][0]
    _release(tier, "acme", taken["id"], "acme-stolen-1")
    unserved = _pillar(salt_cli, globex_minion, "docker")
    assert unserved.get("release") is None and not unserved.get("registries"), unserved

    # the minion's own enrollment token (globex's) through the platform master takes it over
    _enroll_with_grain(tier, salt_cli, "globex", globex_minion)
    mine = wait_for(
        lambda: [
            d for d in call(tier, "globex", "GET", "/devices/", 200)["results"] if d["enrolled"]
        ],
        timeout=60,
        what="globex's device",
    )
    assert [d["unit_id"] for d in mine] == [globex_minion.id]
    _release(tier, "globex", mine[0]["id"], "globex-1")
    pillar = _pillar(salt_cli, globex_minion, "docker")
    assert pillar["release"]["version"] == "globex-1"
    assert [r["username"] for r in pillar["registries"].values()] == ["globex"]
    assert "acme" not in json.dumps(pillar)
    logbook = _pillar(salt_cli, globex_minion, "berth:logbook")
    assert logbook["device_id"] == mine[0]["id"]

    # acme's device is pending, its master not served, a new sync changes nothing, and
    # acme's execute on it reaches no minion
    before = list(tier["proxy"].publications)
    assert call(tier, "acme", "GET", f"/devices/{taken['id']}/", 200)["enrolled"] is False
    call(
        tier, "acme", "GET", f"/master/minions/{globex_minion.id}/pillar/", 404, credential="master"
    )
    again = call(
        tier,
        "acme",
        "POST",
        "/master/devices/sync/",
        200,
        credential="master",
        json={"unit_ids": [globex_minion.id, acme_minion.id]},
    )
    assert again["pending"] == [globex_minion.id]
    call(
        tier,
        "acme",
        "POST",
        f"/dongle/devices/{taken['id']}/execute/",
        409,
        json={"command": "test.ping"},
    )
    assert tier["proxy"].publications == before
    assert _pillar(salt_cli, globex_minion, "docker:release")["version"] == "globex-1"
    outcomes = {
        account: [
            r["details"]["outcome"]
            for r in call(tier, account, "GET", "/audit/", 200)["results"]
            if r["action"] == "device.enrollment_conflict"
        ]
        for account in ("acme", "globex")
    }
    assert outcomes == {"acme": ["refused", "lost"], "globex": ["taken_over"]}


# -- a device reports only for itself (docs/security.md "Trust beyond the REST API", 2.) --------
# A minion of account A forges ``berth/release/result`` for another device of A and for B's device
# -- in the nested ``events`` form (it writes the ``id`` the reactor reads), unsigned and signed
# with its own report key, and in the plain form -- and neither deployment nor rollout changes;
# every refusal is an audit row of the named device's account. The real device's own result lands.


def _enrolled_device(tier, account, unit_id):
    def listed():
        rows = call(tier, account, "GET", "/devices/", 200)["results"]
        return [d["id"] for d in rows if d["unit_id"] == unit_id and d["enrolled"]]

    return wait_for(listed, timeout=60, what=f"{unit_id} enrolled in {account}")[0]


def _enroll_without_minion(tier, account, unit_id):
    """An enrolled device of ``account`` with no minion behind it (the platform master presents
    the enrollment token, as its ext_pillar does for a minion's grain); its device id."""
    token = call(tier, account, "POST", "/enrollment-tokens/", 201, json={"max_uses": 1})["token"]
    resp = requests.post(
        tier["api"].url + "/master/devices/enroll/",
        json={"unit_id": unit_id, "enrollment_token": token},
        headers={"Authorization": f"APIToken {tier['platform_token']}"},
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    return _enrolled_device(tier, account, unit_id)


def observed(tier, account, rel):
    base = f"/docker/projects/{rel['project']}/releases/{rel['id']}"
    deployments = call(tier, account, "GET", f"{base}/deployments/", 200)["results"]
    rollout = call(tier, account, "GET", f"{base}/rollout/", 200)
    return (
        sorted((d["device"], d["status"], d.get("error")) for d in deployments),
        (rollout["state"], rollout["wave"], rollout["halt_reason"]),
    )


def refused(tier, account):
    return call(tier, account, "GET", "/audit/?action=report.refused", 200)["results"]


def forged_result(rel):
    return {
        "release_id": rel["id"],
        "version_hash": rel["version_hash"],
        "outcome": "failed",
        "error": "forged by another device",
        "containers": [],
        "finished_at": "2030-01-01T00:00:00.000Z",
    }


def test_a_minion_cannot_report_for_another_device_of_its_account_or_of_another(tier, salt_cli):
    forger, victim_minion = tier["minions"]
    _enroll_with_grain(tier, salt_cli, "acme", forger)
    forger_device = _enrolled_device(tier, "acme", forger.id)
    sensor_device = _enroll_without_minion(tier, "acme", sensor := "acme-sensor-" + forger.id[:8])
    _enroll_with_grain(tier, salt_cli, "globex", victim_minion)
    globex_device = _enrolled_device(tier, "globex", victim_minion.id)
    waves = {"waves": [100]}
    acme_release = _release(tier, "acme", forger_device, "acme-1", [sensor_device], waves)
    globex_release = _release(tier, "globex", globex_device, "globex-1", rollout=waves)
    for minion in tier["minions"]:
        ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
        assert ret.returncode == 0, ret
    before = {
        "acme": observed(tier, "acme", acme_release),
        "globex": observed(tier, "globex", globex_release),
    }
    # the forger's own report key, as the device has it (its pillar)
    ret = salt_cli.run("pillar.get", "berth:report_key", "unmask=True", minion_tgt=forger.id)
    own_key = ret.data
    assert results.valid_key(own_key), ret

    for victim, rel in ((sensor, acme_release), (victim_minion.id, globex_release)):
        result = forged_result(rel)
        fire_nested_events(
            salt_cli,
            forger,
            [
                # nested form: the forger writes the victim's id
                {"tag": EventTag.RELEASE_RESULT.value, "data": {"id": victim, "data": result}},
                # ... and signs it with the only key it has, its own
                {
                    "tag": EventTag.RELEASE_RESULT.value,
                    "data": {"id": victim, "data": results.signed(own_key, victim, result)},
                },
            ],
        )
        # plain form: Salt puts the forger's own id; the result names the victim's release
        send_result_event(salt_cli, forger, result)

    # every forgery reached the API and was refused there, audited in the named device's account
    acme_rows = wait_for(
        lambda: (rows := refused(tier, "acme")) and len(rows) >= 4 and rows,
        timeout=90,
        what="acme's refused reports",
    )
    globex_rows = wait_for(
        lambda: (rows := refused(tier, "globex")) and len(rows) >= 2 and rows,
        timeout=90,
        what="globex's refused reports",
    )
    assert sorted(r["details"]["reason"] for r in globex_rows) == ["bad signature", "unsigned"]
    assert {r["device"] for r in globex_rows} == {globex_device}
    assert sorted((r["device"], r["details"]["reason"]) for r in acme_rows) == sorted(
        [
            (sensor_device, "unsigned"),
            (sensor_device, "bad signature"),
            (forger_device, "unsigned"),  # the plain form, unsigned: refused as well
            (forger_device, "unsigned"),
        ]
    )
    assert observed(tier, "acme", acme_release) == before["acme"]
    assert observed(tier, "globex", globex_release) == before["globex"]

    # the real device's own result (signed on the device with the key of its pillar) lands
    ret = salt_cli.run(
        "docker.release_report_failed", "genuine failure", minion_tgt=victim_minion.id
    )
    assert ret.returncode == 0 and ret.data["reported"] is True, ret

    def landed():
        deployments, rollout = observed(tier, "globex", globex_release)
        return deployments == [(globex_device, "failed", "genuine failure")] and rollout

    rollout = wait_for(landed, timeout=90, what="the genuine result in the API")
    assert rollout[0] == "halted"  # halt_at 0: the real failure halts the rollout
    assert len(refused(tier, "globex")) == 2
