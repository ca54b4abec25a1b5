"""Webhooks and logs (docs/security.md): callback URLs that lead inside the network (SSRF) were
accepted; credentials from callback URLs reached the log; a newline in a name forged a log line."""

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.execute.webhooks import WebhookFailed, deliver
from api.security import ssrf

pytestmark = pytest.mark.db

UNREACHABLE = {
    "BERTH_SALT_API_URL": "http://127.0.0.1:9",
    "BERTH_SALT_API_USER": "berth",
    "BERTH_SALT_API_PASSWORD": "x",
    "BERTH_SALT_API_TIMEOUT": "1",
}


@pytest.fixture
def strict(app, account):
    """The production default: private targets refused; the account can sign callbacks."""
    app.config.update(UNREACHABLE, BERTH_WEBHOOK_ALLOW_PRIVATE_TARGETS=False)
    result = app.test_cli_runner().invoke(args=["accounts", "webhook-secret", account.name])
    assert result.exit_code == 0
    return app


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.1/hook",
        "http://172.16.0.1/hook",
        "http://100.64.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://224.0.0.1/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_internal_callback_targets_are_400(strict, client, user_token, device, url):
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.ping", "callback_url": url},
        headers=user_token.headers,
    )
    assert resp.status_code == 400, resp.json
    assert (
        list(resp.json) == ["callback_url"]
        and "public addresses only" in resp.json["callback_url"][0]
    )


def test_a_public_target_passes(strict, client, user_token, device):
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.ping", "callback_url": "http://93.184.215.14/hook"},
        headers=user_token.headers,
    )
    assert resp.status_code == 503  # the policy let it through; Salt is unreachable here


def test_delivery_checks_again_and_never_shows_credentials(strict, account, caplog):
    url = "http://hookuser:s3cret-pw@localhost:9/hook?sig=query-secret"
    with strict.app_context():
        with pytest.raises(
            WebhookFailed
        ) as exc:  # e.g. a name that now resolves inside (rebinding)
            deliver(url, account.id, {"jid": "1"})
    text = str(exc.value)
    assert "refused" in text and "http://localhost:9/hook" in text
    assert "s3cret" not in text and "query-secret" not in text and "hookuser" not in text
    strict.config["BERTH_WEBHOOK_ALLOW_PRIVATE_TARGETS"] = True
    with strict.app_context():
        with pytest.raises(WebhookFailed) as exc:  # allowed now: connection refused on port 9
            deliver(url, account.id, {"jid": "1"})
    text = str(exc.value)
    assert "failed" in text and "s3cret" not in text and "query-secret" not in text


def test_credentials_in_the_url_are_sent_but_not_logged(app, account, caplog):
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            seen["auth"] = self.headers.get("Authorization")
            seen["path"] = self.path
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app.test_cli_runner().invoke(args=["accounts", "webhook-secret", account.name])
        url = f"http://hookuser:s3cret-pw@127.0.0.1:{server.server_address[1]}/hook?sig=q"
        with app.app_context():
            deliver(url, account.id, {"jid": "1"})
    finally:
        server.shutdown()
        server.server_close()
    assert seen == {"auth": "Basic aG9va3VzZXI6czNjcmV0LXB3", "path": "/hook?sig=q"}
    assert ssrf.redact_url(url) == f"http://127.0.0.1:{server.server_address[1]}/hook"


def test_a_newline_in_a_name_cannot_forge_a_log_line(client, user_token, caplog):
    caplog.set_level(logging.INFO)
    name = "ok\r\n2026-11-29 12:00:00 INFO api.auth: admin logged in"
    resp = client.post("/docker/projects/", json={"name": name}, headers=user_token.headers)
    assert resp.status_code == 201, resp.json
    lines = [r.getMessage() for r in caplog.records if "created in account" in r.getMessage()]
    assert lines and "\n" not in lines[0] and "\r" not in lines[0]
    assert "ok\\r\\n2026-11-29 12:00:00 INFO api.auth: admin logged in" in lines[0]


# IPv6 forms whose packets end at an IPv4 address (issue 17, finding 8): the IPv6 address
# itself looked global, so a private or loopback IPv4 behind it passed the target check.
IPV6_EMBEDDING_PRIVATE_IPV4 = [
    "http://[64:ff9b::7f00:1]/hook",  # NAT64 well-known prefix -> 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 -> 169.254.169.254
    "http://[64:ff9b:1::a00:1]/hook",  # NAT64 local-use prefix (RFC 8215)
    "http://[2002:a00:1::1]/hook",  # 6to4 -> 10.0.0.1
    "http://[2002:7f00:1::1]/hook",  # 6to4 -> 127.0.0.1
    "http://[::127.0.0.1]/hook",  # IPv4-compatible
    "http://[::10.1.2.3]/hook",  # IPv4-compatible
    "http://[::ffff:10.1.2.3]/hook",  # IPv4-mapped
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
]


@pytest.mark.parametrize("url", IPV6_EMBEDDING_PRIVATE_IPV4)
def test_ipv6_forms_of_a_private_ipv4_are_refused_at_creation(
    strict, client, user_token, device, url
):
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.ping", "callback_url": url},
        headers=user_token.headers,
    )
    assert resp.status_code == 400, resp.json
    assert "public addresses only" in resp.json["callback_url"][0]
    resp = client.post("/docker/rollout-webhooks/", json={"url": url}, headers=user_token.headers)
    assert resp.status_code == 400, resp.json
    assert "public addresses only" in resp.json["url"][0]


@pytest.mark.parametrize("url", IPV6_EMBEDDING_PRIVATE_IPV4)
def test_ipv6_forms_of_a_private_ipv4_are_refused_at_delivery(strict, account, url):
    with strict.app_context():
        with pytest.raises(WebhookFailed) as exc:
            deliver(url, account.id, {"jid": "1"})
    assert "refused" in str(exc.value) and "public addresses only" in str(exc.value)


@pytest.mark.parametrize(
    "address",
    ["64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700:4700::1111"],
)
def test_ipv6_forms_of_a_public_ipv4_stay_allowed(strict, address):
    with strict.app_context():
        assert ssrf.resolve(f"http://[{address}]/hook") == [address]
