"""Signature verification on the device when its minion configuration has no
``berth_trusted_keys``: pillar ``docker:release:signatures`` decides (docs/release.md "Signature
verification on the device"), on a real dockerd and the testbed registry with cosign signatures
pushed through its HTTP API. (With ``berth_trusted_keys`` against a forged pillar:
tests/integration/test_release_signatures_device.py.)"""

import secrets

import pytest

from berth import registryclient
from tests.fixtures import cosign
from tests.fixtures.docker import set_pillar

pytestmark = [pytest.mark.docker]

QUIET = {"network_mode": "none", "restart_policy": "no"}


def test_pillar_requiring_signatures_runs_only_what_its_keys_signed(
    fresh_engine, testbed, build_image, release_pillar, release_loaders, registry_push
):
    repo = "signed" + secrets.token_hex(3)
    creds = (testbed.user, testbed.password)
    build_image(f"{testbed.registry}/{repo}:1")
    build_image(f"{testbed.registry}/{repo}:2", cmd=["sh", "-c", "echo unsigned; sleep 3600"])
    first = registryclient.resolve(testbed.registry, repo, "1", creds)
    second = registryclient.resolve(testbed.registry, repo, "2", creds)
    key = cosign.new_key("ed25519")
    cosign.sign_and_push(registry_push, repo, first, key)
    registries = testbed.registries_pillar()
    loaders = release_loaders({"docker": {"registries": registries}}, docker_host=fresh_engine)
    cli = testbed.client(fresh_engine)
    required = {"required": True, "keys": [{"name": "ci", "public_key": cosign.public_pem(key)}]}

    def apply(release_id, digest, tag, signatures):
        container = {"name": "app", "image": repo, "tag": tag, "registry": 1, "digest": digest}
        release = {
            **release_pillar(release_id, [{**container, "startup_parameters": dict(QUIET)}]),
            "signatures": signatures,
        }
        set_pillar(loaders, {"docker": {"release": release, "registries": registries}})
        return loaders.modules.docker.release_apply()

    try:
        result = apply(1, first, "1", required)
        assert result["outcome"] == "succeeded", result
        assert result["signed_by"] == {"app": "ci"}
        running = cli.api.inspect_container("deployment-app-1")

        result = apply(2, second, "2", required)
        assert result["outcome"] == "failed", result
        assert result["error"] == (
            f"refused: container 'app' ({testbed.registry}/{repo}@{second}): no signature "
            "(keys: pillar docker:release:signatures); nothing was stopped"
        )
        after = cli.api.inspect_container("deployment-app-1")
        assert after["Id"] == running["Id"] and after["State"]["Running"]
        assert after["State"]["StartedAt"] == running["State"]["StartedAt"]

        # the pillar no longer requiring signatures (and no berth_trusted_keys): it runs
        result = apply(2, second, "2", {"required": False, "keys": []})
        assert result["outcome"] == "succeeded", result
        assert "signed_by" not in result
    finally:
        cli.close()
