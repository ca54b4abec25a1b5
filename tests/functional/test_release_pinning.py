"""The device pulls and runs a pinned release by digest (docs/release.md "Digest pinning"), on a
real dockerd and the testbed registry; a pillar pinning a digest the registry does not serve is
refused before anything is stopped."""

import secrets

import pytest

from berth import registryclient
from tests.fixtures.docker import set_pillar

pytestmark = [pytest.mark.docker]

QUIET = {"network_mode": "none", "restart_policy": "no"}


@pytest.fixture
def pinned(fresh_engine, testbed, build_image, release_pillar, release_loaders):
    """A repository with ``app:1`` pushed, and the device's loaders."""
    repo = "pinned" + secrets.token_hex(3)
    ref = f"{testbed.registry}/{repo}:1"
    build_image(ref)
    creds = (testbed.user, testbed.password)
    registries = testbed.registries_pillar()
    loaders = release_loaders({"docker": {"registries": registries}}, docker_host=fresh_engine)
    cli = testbed.client(fresh_engine)

    class Device:
        def __init__(self):
            self.repo, self.ref, self.cli, self.loaders = repo, ref, cli, loaders

        def digest(self):
            return registryclient.resolve(testbed.registry, repo, "1", creds)

        def apply(self, release_id, digest, tag="1"):
            container = {"name": "app", "image": repo, "tag": tag, "registry": 1}
            if digest is not None:
                container["digest"] = digest
            container["startup_parameters"] = dict(QUIET)
            release = release_pillar(release_id, [container])
            set_pillar(loaders, {"docker": {"release": release, "registries": registries}})
            return loaders.modules.docker.release_apply()

        def running(self, release_id):
            return self.cli.api.inspect_container(f"deployment-app-{release_id}")

    yield Device()
    cli.close()


def test_a_pinned_release_runs_that_digest_after_the_tag_moved(pinned, build_image, testbed):
    first = pinned.digest()
    result = pinned.apply(1, first)
    assert result["outcome"] == "succeeded", result
    ref = f"{testbed.registry}/{pinned.repo}@{first}"
    assert result["changes"]["pulled"] == [ref]
    container = pinned.running(1)
    assert container["Config"]["Image"] == ref
    assert ref in pinned.cli.api.inspect_image(container["Image"])["RepoDigests"]

    # a different image pushed under the same tag: a release pinned to the first digest runs it
    build_image(pinned.ref, cmd=["sh", "-c", "echo other; sleep 3600"])
    assert pinned.digest() != first
    pinned.cli.api.remove_container("deployment-app-1", force=True)
    for image in pinned.cli.api.images():
        pinned.cli.api.remove_image(image["Id"], force=True)
    result = pinned.apply(2, first)
    assert result["outcome"] == "succeeded", result
    assert ref in pinned.cli.api.inspect_image(pinned.running(2)["Image"])["RepoDigests"]


def test_a_forged_digest_is_refused_and_the_previous_release_keeps_running(pinned):
    assert pinned.apply(1, pinned.digest())["outcome"] == "succeeded"
    before = pinned.running(1)
    forged = "sha256:" + secrets.token_hex(32)
    result = pinned.apply(2, forged)
    assert result["outcome"] == "failed"
    assert result["error"].startswith("refused: the registry does not serve the pinned image")
    assert forged in result["error"] and "nothing was stopped" in result["error"]
    assert not result["changes"].get("stopped")
    after = pinned.running(1)
    assert after["State"]["Running"] and after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert pinned.loaders.modules.docker.release_status()["release_id"] == 1


def test_a_malformed_digest_in_pillar_is_refused(pinned):
    assert pinned.apply(1, None)["outcome"] == "succeeded"  # by tag, as before pinning
    with pytest.raises(Exception, match="'digest' is not sha256"):
        pinned.apply(2, "sha256:../../etc")
    assert pinned.running(1)["State"]["Running"]


def test_the_digest_check_refuses_an_image_without_that_digest(pinned, monkeypatch):
    """The engine's image for the pinned reference must list it in RepoDigests."""
    from berth import dockerutil

    digest = pinned.digest()
    assert pinned.apply(1, None)["outcome"] == "succeeded"
    monkeypatch.setattr(dockerutil, "repo_digests", lambda cli, ref: ["other@sha256:" + "0" * 64])
    result = pinned.apply(2, digest)
    assert result["outcome"] == "failed"
    assert "does not have the pinned digest" in result["error"]
    assert pinned.running(1)["State"]["Running"]
