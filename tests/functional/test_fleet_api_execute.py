"""Execute endpoints and the worker on a real database, where Salt is not needed:
tenancy, forbidden commands, bad input, Salt unreachable, timeouts, outbox retries.
(With real salt-api/minions: tests/integration/test_fleet_execute.py.)"""

from datetime import timedelta

import pytest
from sqlalchemy import select

from api.deployments.service import enqueue_release_notification
from api.execute.models import ExecuteJob
from api.extensions import db
from api.outbox import OutboxMessage
from api.types import utcnow
from api.worker import run_once

pytestmark = pytest.mark.db

UNREACHABLE = {
    "BERTH_SALT_API_URL": "http://127.0.0.1:9",
    "BERTH_SALT_API_USER": "berth",
    "BERTH_SALT_API_PASSWORD": "x",
    "BERTH_SALT_API_TIMEOUT": "1",
}


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_another_accounts_device_is_404(client, user_token, api_factory):
    stranger = api_factory.device()
    for path in ("execute/", "execute_raw/"):
        resp = client.post(
            f"/dongle/devices/{stranger.id}/{path}",
            json={"command": "test.ping"},
            headers=user_token.headers,
        )
        assert resp.status_code == 404 and resp.json == {"detail": "Not found."}
    resp = client.get(
        f"/dongle/devices/{stranger.id}/execute/20260101000000000000/", headers=user_token.headers
    )
    assert resp.status_code == 404


def test_unknown_jid_is_404(client, user_token, device):
    resp = client.get(f"/dongle/devices/{device.id}/execute/123/", headers=user_token.headers)
    assert resp.status_code == 404


def test_needs_a_user_token(client, master_token, device):
    assert (
        client.post(
            f"/dongle/devices/{device.id}/execute/", json={"command": "test.ping"}
        ).status_code
        == 401
    )
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.ping"},
        headers=master_token.headers,
    )
    assert resp.status_code == 403


def test_forbidden_command_is_403_naming_the_allow_list(app, client, user_token, device, account):
    out = cli(
        app,
        "accounts",
        "commands",
        account.name,
        "--allow",
        "docker.*",
        "--allow",
        "minionutil.last_logs",
    )
    assert "docker.* | minionutil.last_logs" in out
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "cmd.run", "arg": ["id"]},
        headers=user_token.headers,
    )
    assert resp.status_code == 403
    assert (
        resp.json["detail"]
        == 'This account may not execute "cmd.run" (allowed commands: docker.*, minionutil.last_logs).'
    )
    resp = client.post(
        f"/dongle/devices/{device.id}/execute_raw/",
        json={"command": "cmd.run id"},
        headers=user_token.headers,
    )
    assert resp.status_code == 403
    assert "every command" in cli(app, "accounts", "commands", account.name, "--allow-all")


def test_bad_body_is_400(client, user_token, device):
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "ping"},
        headers=user_token.headers,
    )
    assert resp.status_code == 400 and "command" in resp.json
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        data="{",
        content_type="application/json",
        headers=user_token.headers,
    )
    assert resp.status_code == 400 and "JSON parse error" in resp.json["detail"]


def test_callback_needs_a_webhook_secret(app, client, user_token, device, account):
    body = {"command": "test.ping", "callback_url": "http://127.0.0.1:1/hook"}
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/", json=body, headers=user_token.headers
    )
    assert resp.status_code == 400 and "webhook-secret" in resp.json["callback_url"][0]


def test_webhook_secret_is_shown_once_and_stored_encrypted(app, account):
    secret = cli(app, "accounts", "webhook-secret", account.name).strip().splitlines()[-1]
    assert secret.startswith("whsec_") and len(secret) > 40
    from api.execute.models import ExecuteSettings

    with app.app_context():
        settings = db.session.get(ExecuteSettings, account.id)
        assert secret not in settings.webhook_secret_encrypted
        assert settings.webhook_secret() == secret


def test_salt_unreachable_is_503_and_nothing_recorded(app, client, user_token, device):
    app.config.update(UNREACHABLE)
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.ping"},
        headers=user_token.headers,
    )
    assert resp.status_code == 503
    assert "Salt is unavailable" in resp.json["detail"] and "unreachable" in resp.json["detail"]
    assert "x" not in resp.json["detail"].split("salt-api")[0]
    with app.app_context():
        assert db.session.scalars(select(ExecuteJob)).all() == []


def test_salt_not_configured_is_503(app, client, user_token, device, monkeypatch):
    monkeypatch.delenv("BERTH_SALT_API_URL", raising=False)
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.ping"},
        headers=user_token.headers,
    )
    assert resp.status_code == 503 and "BERTH_SALT_API_URL" in resp.json["detail"]


def _job(app, device, account, **kw):
    with app.app_context():
        job = ExecuteJob(
            jid=kw.pop("jid", "20260101000000000001"),
            account_id=account.id,
            device_id=device.id,
            unit_id=device.unit_id,
            fun="test.ping",
            arg=[],
            kwarg={},
            callback_timeout=5,
            deadline=kw.pop("deadline", utcnow() - timedelta(seconds=1)),
            **kw,
        )
        db.session.add(job)
        db.session.commit()
        return job.jid


def test_poll_marks_a_job_past_its_deadline_timeout_even_without_salt(
    app, client, user_token, device, account
):
    app.config.update(UNREACHABLE)
    jid = _job(app, device, account)
    resp = client.get(f"/dongle/devices/{device.id}/execute/{jid}/", headers=user_token.headers)
    assert resp.status_code == 200
    assert resp.json == {
        "jid": jid,
        "device_id": device.id,
        "state": "TIMEOUT",
        "response": {
            "fun": "test.ping",
            "fun_args": [],
            "return": None,
            "retcode": None,
            "success": False,
        },
    }


def test_pending_job_within_deadline_stays_pending(app, client, user_token, device, account):
    app.config.update(UNREACHABLE)
    jid = _job(app, device, account, deadline=utcnow() + timedelta(seconds=60))
    resp = client.get(f"/dongle/devices/{device.id}/execute/{jid}/", headers=user_token.headers)
    assert resp.json["state"] == "PENDING" and resp.json["response"]["success"] is None


def test_worker_times_out_jobs_and_queues_their_webhook_once(app, device, account):
    app.config.update(UNREACHABLE)
    cli(app, "accounts", "webhook-secret", account.name)
    jid = _job(app, device, account, callback_url="http://127.0.0.1:9/hook")
    with app.app_context():
        run_once()
        run_once()
        job = db.session.scalars(select(ExecuteJob).where(ExecuteJob.jid == jid)).one()
        assert job.state == "TIMEOUT"
        hooks = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "webhook")
        ).all()
        assert len(hooks) == 1
        assert hooks[0].payload["body"]["state"] == "TIMEOUT"
        # the receiver is down: retried with backoff, not dropped
        assert (
            hooks[0].attempts >= 1 and hooks[0].delivered_at is None and hooks[0].gave_up_at is None
        )
        assert "POST http://127.0.0.1:9/hook failed" in hooks[0].last_error
        assert hooks[0].next_attempt_at > utcnow()


def test_worker_keeps_salt_messages_until_delivered(app, device):
    app.config.update(UNREACHABLE)
    with app.app_context():
        enqueue_release_notification(7, [device.unit_id])
        db.session.commit()
        run_once()
        msg = db.session.scalars(select(OutboxMessage)).one()
        assert msg.attempts == 1 and msg.delivered_at is None
        assert "unreachable" in msg.last_error
        assert msg.next_attempt_at > utcnow()
        # not due yet: the next pass leaves it alone
        run_once()
        db.session.refresh(msg)
        assert msg.attempts == 1


def test_worker_cli_once(app):
    app.config.update(UNREACHABLE)
    result = app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output


def test_worker_purges_old_delivered_messages(app, device):
    from api.worker import purge_delivered

    with app.app_context():
        old, fresh, pending = (
            enqueue_release_notification(n, [device.unit_id])[0] for n in (1, 2, 3)
        )
        old.delivered_at = utcnow() - timedelta(days=8)
        fresh.delivered_at = utcnow()
        db.session.commit()
        assert purge_delivered() == 1
        assert sorted(m.reason for m in db.session.scalars(select(OutboxMessage))) == [
            "release 2 queued",
            "release 3 queued",
        ]


def test_publish_timeout_still_records_and_follows_the_job(app, client, user_token, device):
    """salt-api slower than BERTH_SALT_API_TIMEOUT: the command may run, so it is tracked (202), not lost."""
    import json as _json
    import threading
    import time as _time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class SlowSaltApi(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/login":
                _time.sleep(2)
            body = _json.dumps({"return": [{"token": "t", "expire": _time.time() + 3600}]}).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except BrokenPipeError:  # the API gave up waiting, as it should
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowSaltApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app.config.update(
            BERTH_SALT_API_URL=f"http://127.0.0.1:{server.server_address[1]}",
            BERTH_SALT_API_USER="berth",
            BERTH_SALT_API_PASSWORD="x",
            BERTH_SALT_API_TIMEOUT="0.5",
        )
        resp = client.post(
            f"/dongle/devices/{device.id}/execute/",
            json={"command": "test.ping", "callback_timeout": 1},
            headers=user_token.headers,
        )
        assert resp.status_code == 202, resp.json
        assert resp.json["minions"] == [device.unit_id]
        with app.app_context():
            job = db.session.scalars(select(ExecuteJob)).one()
            assert job.jid == resp.json["jid"] and job.state == "PENDING"
    finally:
        server.shutdown()


def test_callback_url_with_a_bad_port_is_a_400(client, user_token, device):
    for url in ("http://example.com:99999/hook", "http://example.com:8x/hook", "http://[::1/hook"):
        body = {"command": "test.ping", "callback_url": url}
        resp = client.post(
            f"/dongle/devices/{device.id}/execute/", json=body, headers=user_token.headers
        )
        assert resp.status_code == 400, (url, resp.json)
        assert resp.json["callback_url"] == ["Enter a valid http or https URL."]
