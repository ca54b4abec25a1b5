"""api.salt_client error paths against a scripted HTTP server (the real salt-api is in
tests/integration/test_fleet_execute_salt_client.py)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.salt_client import (
    SaltApiClient,
    SaltApiError,
    SaltApiNotConfigured,
    SaltApiRefused,
    SaltApiTimeout,
    new_jid,
)


class FakeSaltApi:
    def __init__(self):
        self.logins = 0
        self.publish_answer = (200, {"return": [{"jid": "1", "minions": ["m1"]}]})
        self.publish_delay = 0.0
        self.published = []
        self.token_expire_offset = 3600
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                if self.path == "/login":
                    fake.logins += 1
                    if body["password"] != "pw":
                        return self._send(401, b"<html>401</html>")
                    import time

                    token = f"tok{fake.logins}"
                    return self._send(
                        200,
                        {
                            "return": [
                                {"token": token, "expire": time.time() + fake.token_expire_offset}
                            ]
                        },
                    )
                if self.headers.get("X-Auth-Token") != f"tok{fake.logins}":
                    return self._send(401, b"<html>401</html>")
                fake.published.append(body)
                import time

                time.sleep(fake.publish_delay)
                self._send(*fake.publish_answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def fake():
    server = FakeSaltApi()
    yield server
    server.server.shutdown()


def test_token_is_cached(fake):
    client = SaltApiClient(fake.url, "u", "pw")
    client.local_async(["m1"], "test.ping")
    client.local_async(["m1"], "test.ping")
    assert fake.logins == 1


def test_token_renewed_before_expiry(fake):
    fake.token_expire_offset = 30  # inside the renewal margin
    client = SaltApiClient(fake.url, "u", "pw")
    client.local_async(["m1"], "test.ping")
    client.local_async(["m1"], "test.ping")
    assert fake.logins == 2


def test_stale_token_relogs_once(fake):
    client = SaltApiClient(fake.url, "u", "pw")
    client.local_async(["m1"], "test.ping")
    fake.logins += 1  # the server forgot the token
    assert client.local_async(["m1"], "test.ping") == ("1", ["m1"])


def test_refused_publish_is_reported(fake):
    fake.publish_answer = (200, {"return": ["Authentication error occurred."]})
    with pytest.raises(SaltApiRefused, match="refused local_async test.ping"):
        SaltApiClient(fake.url, "u", "pw").local_async(["m1"], "test.ping")
    # rest_cherrypy answers a publish its external_auth refuses with 401, even after a login
    fake.publish_answer = (401, b"<html>401</html>")
    with pytest.raises(SaltApiRefused, match="external_auth does not permit it"):
        SaltApiClient(fake.url, "u", "pw").local_async(["m1"], "cmd.run", ["id"])


def test_server_error_and_non_json(fake):
    fake.publish_answer = (500, b"boom")
    with pytest.raises(SaltApiError, match="HTTP 500"):
        SaltApiClient(fake.url, "u", "pw").local_async(["m1"], "test.ping")
    fake.publish_answer = (200, b"not json")
    with pytest.raises(SaltApiError, match="no JSON body"):
        SaltApiClient(fake.url, "u", "pw").local_async(["m1"], "test.ping")


def test_missing_configuration_is_named(monkeypatch):
    for name in ("BERTH_SALT_API_URL", "BERTH_SALT_API_USER", "BERTH_SALT_API_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SaltApiNotConfigured, match="BERTH_SALT_API_URL"):
        SaltApiClient.from_config({})
    with pytest.raises(SaltApiNotConfigured, match="BERTH_SALT_API_USER"):
        SaltApiClient("http://x", "", "")


def test_repr_hides_the_password():
    assert "pw" not in repr(SaltApiClient("http://x", "u", "pw"))


def test_slow_answer_is_a_timeout_that_may_have_been_carried_out(fake):
    fake.publish_delay = 2
    client = SaltApiClient(fake.url, "u", "pw", timeout=0.5)
    client.login()
    with pytest.raises(SaltApiTimeout, match="did not answer POST / within 0.5s"):
        client.local_async(["m1"], "test.ping", jid="20260101000000000001")
    assert fake.published[-1][0]["jid"] == "20260101000000000001"


def test_refused_connection_is_not_a_timeout():
    with pytest.raises(SaltApiError) as exc:
        SaltApiClient("http://127.0.0.1:9", "u", "p", timeout=1).job("1")
    assert not isinstance(exc.value, SaltApiTimeout)


def test_new_jid_has_salts_format():
    jid = new_jid()
    assert len(jid) == 20 and jid.isdigit()
