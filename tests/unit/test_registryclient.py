"""berth.registryclient: references, schemes, and the bearer-token flow against a small local
HTTP server that answers like a token-auth registry (the testbed registry uses Basic auth; the
API's pinning against it is in tests/functional/test_api_release_pinning.py)."""

import socket
import urllib.parse

import pytest

from berth import registryclient
from berth.registryclient import RegistryError


@pytest.mark.parametrize(
    "ref,expected",
    [
        ("127.0.0.1:5609/chaos-good:1", ("127.0.0.1:5609", "chaos-good", "1")),
        ("reg.example:5000/team/app:2.1", ("reg.example:5000", "team/app", "2.1")),
        ("ravendb:base", (registryclient.DOCKER_HUB, "library/ravendb", "base")),
        ("user/app", (registryclient.DOCKER_HUB, "user/app", "latest")),
        ("localhost/app@sha256:ab", ("localhost", "app", "sha256:ab")),
    ],
)
def test_split_reference(ref, expected):
    assert registryclient.split(ref) == expected


def test_loopback_registries_are_plain_http_others_https():
    assert registryclient.scheme("127.0.0.1:5609", None) == "http"
    assert registryclient.scheme("localhost:5000", None) == "http"
    assert registryclient.scheme("reg.example:5000", None) == "https"
    assert registryclient.scheme("reg.example:5000", "http://reg.example:5000/") == "http"


def test_bearer_flow_token_asked_with_the_credentials_and_scope(token_registry):
    digest = token_registry.add("team/app", "2.0.0")
    creds = (token_registry.user, token_registry.password)
    assert registryclient.resolve(token_registry.url, "team/app", "2.0.0", creds) == digest
    (asked,) = token_registry.token_requests
    assert asked["service"] == "fake-registry"
    assert urllib.parse.unquote(asked["scope"]) == "repository:team/app:pull"
    # challenged once, then the token
    assert token_registry.manifest_requests == ["team/app:2.0.0", "team/app:2.0.0"]


def test_multi_arch_index_digest_is_the_index_own(token_registry):
    digest = token_registry.add("app", "multi", media_type=registryclient.OCI_INDEX)
    creds = (token_registry.user, token_registry.password)
    assert registryclient.resolve(token_registry.url, "app", "multi", creds) == digest


def test_token_service_refusing_the_credentials_is_auth_refused(token_registry):
    token_registry.add("app", "1")
    with pytest.raises(RegistryError) as err:
        registryclient.resolve(token_registry.url, "app", "1", ("tok-user", "wrong"))
    assert err.value.reason == RegistryError.AUTH


def test_unknown_tag(token_registry):
    creds = (token_registry.user, token_registry.password)
    with pytest.raises(RegistryError) as err:
        registryclient.resolve(token_registry.url, "app", "missing", creds)
    assert err.value.reason == RegistryError.UNKNOWN
    assert "MANIFEST_UNKNOWN" in err.value.detail


def test_a_digest_header_that_does_not_match_the_bytes_is_never_believed(token_registry):
    token_registry.add("app", "1")
    token_registry.lie_about_digest = True
    creds = (token_registry.user, token_registry.password)
    with pytest.raises(RegistryError) as err:
        registryclient.resolve(token_registry.url, "app", "1", creds)
    assert err.value.reason == RegistryError.BAD_ANSWER
    assert "hashes to" in err.value.detail


def test_nothing_listening_is_registry_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RegistryError) as err:
        registryclient.resolve(f"127.0.0.1:{port}", "app", "1", None, timeout=2)
    assert err.value.reason == RegistryError.UNREACHABLE


def test_a_registry_dripping_its_answer_is_cut_at_the_deadline():
    """A registry (or something in the way) sending one byte at a time, each within the socket
    timeout: reading 64 KiB used to take hours (the deadline was only looked at per 64 KiB)."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", registryclient.OCI_MANIFEST)
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    started = time.monotonic()
    try:
        with registryclient.Client(f"127.0.0.1:{server.server_port}", timeout=5) as client:
            with pytest.raises(RegistryError) as caught:
                client.manifest("a/b", "1", 65536, deadline=time.monotonic() + 1)
        # without a deadline (the device's disk-space check): 3 x the client's timeout
        with registryclient.Client(f"127.0.0.1:{server.server_port}", timeout=0.5) as client:
            with pytest.raises(RegistryError):
                client.manifest("a/b", "1")
    finally:
        server.shutdown()
    assert caught.value.reason == RegistryError.UNREACHABLE
    assert time.monotonic() - started < 6
