"""Signature verification on the device, all real (issue 18 item 2, docs/release.md "Signature
verification on the device"): a salt-master whose pillar the test writes (a forged pillar, as
a compromised master or ext_pillar would render it), one salt-minion with its own dockerd whose
minion configuration holds ``berth_trusted_keys`` (a PEM file), the testbed registry with
cosign signatures pushed through its HTTP API (tests/fixtures/cosign.py).

With a signed release running, the forged pillar tries: an unsigned image with ``required:
false``; an image signed by the attacker's key, with the attacker's key in pillar; a signature
by the device's key over another digest; the image by tag without a digest. Each ends
``failed`` with the reason naming the container, nothing pulled or stopped (``docker inspect``
on the device's engine: the same container, started once). A properly signed one applies.
"""

from __future__ import annotations

import os
import uuid

import pytest
import yaml

from berth import registryclient
from tests.fixtures import cosign
from tests.fixtures.salt import REPO, start_engine, stop_engine

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker]

QUIET = {"network_mode": "none", "restart_policy": "no"}


@pytest.fixture(scope="module")
def keys():
    device, attacker = cosign.new_key(), cosign.new_key("ed25519")
    return {"device": device, "attacker": attacker}


@pytest.fixture(scope="module")
def roots(tmp_path_factory, keys):
    base = tmp_path_factory.mktemp("signatures")
    (base / "pillar").mkdir()
    (base / "pillar" / "top.sls").write_text("base:\n  '*':\n    - berth\n")
    (base / "pillar" / "berth.sls").write_text("{}\n")
    pub = base / "cosign.pub"
    pub.write_text(cosign.public_pem(keys["device"]))
    pub.chmod(0o644)
    return base


@pytest.fixture(scope="module")
def device(salt_factories, roots):
    """(master, minion, salt cli): one daemon set for the module."""
    master = salt_factories.salt_master_daemon(
        f"berth-signatures-{uuid.uuid4().hex[:8]}",
        overrides={"pillar_roots": {"base": [str(roots / "pillar")]}, "pillar_cache": False},
    )
    engine = f"signatures-{os.getpid()}"
    docker_host = start_engine(engine)
    try:
        with master.started(start_timeout=120):
            minion = master.salt_minion_daemon(
                str(uuid.uuid4()),
                overrides={
                    "module_dirs": [str(REPO)],
                    "docker.url": docker_host,
                    "docker.release_settle_seconds": 1,
                    "docker.release_stop_timeout": 2,
                    "docker.release_state_dir": str(roots / "device-state"),
                    # the device's own word: only images signed by this key run here
                    "berth_trusted_keys": [str(roots / "cosign.pub")],
                },
            )
            with minion.started(start_timeout=120):
                minion.docker_host = docker_host
                yield master, minion, master.salt_cli(timeout=240)
    finally:
        stop_engine(engine)


class Device:
    def __init__(self, device, roots, testbed):
        self.master, self.minion, self.cli = device
        self.roots, self.testbed = roots, testbed

    def render(self, release_id, digest, repo, signatures=None, tag="1"):
        """Write the master's pillar for the device (what a forged ext_pillar would serve)."""
        container = {
            "name": "app",
            "image": repo,
            "tag": tag,
            "registry": 1,
            "startup_parameters": QUIET,
            "fully_qualified_name": f"deployment-app-{release_id}",
        }
        if digest:
            container["digest"] = digest
        release = {
            "id": release_id,
            "version": f"1.0.{release_id}",
            "version_hash": uuid.uuid4().hex[:8],
            "project": 1,
            "containers": [container],
        }
        if signatures is not None:
            release["signatures"] = signatures
        pillar = {"docker": {"release": release, "registries": self.testbed.registries_pillar()}}
        (self.roots / "pillar" / "berth.sls").write_text(yaml.safe_dump(pillar))
        ret = self.cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=self.minion.id)
        assert ret.returncode == 0, ret

    def run(self, function):
        return self.cli.run(function, minion_tgt=self.minion.id)

    def inspect(self, name):
        import docker

        cli = docker.DockerClient(base_url=self.minion.docker_host)
        try:
            return cli.api.inspect_container(name)
        finally:
            cli.close()

    def has_image(self, ref):
        import docker

        cli = docker.DockerClient(base_url=self.minion.docker_host)
        try:
            return any(ref in (i.get("RepoDigests") or []) for i in cli.api.images())
        finally:
            cli.close()


def test_a_device_with_trusted_keys_runs_only_what_they_signed(
    device, roots, keys, testbed, build_image, registry_push
):
    dev = Device(device, roots, testbed)
    registry = testbed.registry
    repo = f"signed-{uuid.uuid4().hex[:6]}/app"
    creds = (testbed.user, testbed.password)
    build_image(f"{registry}/{repo}:1")
    good = registryclient.resolve(registry, repo, "1", creds)
    build_image(f"{registry}/{repo}:2", cmd=["sh", "-c", "echo not signed; sleep 3600"])
    other = registryclient.resolve(registry, repo, "2", creds)
    cosign.sign_and_push(registry_push, repo, good, keys["device"])

    # a signed release, pillar saying nothing about signatures: the minion's key decides
    dev.render(1, good, repo)
    ret = dev.run("docker.release_apply")
    assert ret.returncode == 0 and ret.data["outcome"] == "succeeded", ret
    assert ret.data["signed_by"] == {"app": str(roots / "cosign.pub")}
    running = dev.inspect("deployment-app-1")
    assert running["State"]["Running"]

    attacker = cosign.public_pem(keys["attacker"])
    forged = [
        # an image nobody signed, pillar saying signatures are not required
        ({"required": False, "keys": []}, other, "no signature", None),
        # signed by the attacker, whose key the pillar offers
        (
            {"required": True, "keys": [{"name": "ops", "public_key": attacker}]},
            other,
            "signed by an unknown key",
            lambda: cosign.sign_and_push(registry_push, repo, other, keys["attacker"]),
        ),
        # the device's key, but over the first image's digest
        (
            None,
            other,
            f"signature payload names another digest ({good})",
            lambda: cosign.sign_and_push(
                registry_push, repo, other, keys["device"], payload_digest=good
            ),
        ),
        # by tag: nothing to verify
        ({"required": False}, None, "has no pinned digest", None),
    ]
    for signatures, digest, reason, prepare in forged:
        if prepare:
            prepare()
        dev.render(2, digest, repo, signatures, tag="2")
        ret = dev.run("docker.release_apply")
        assert ret.returncode == 0, ret
        result = ret.data
        assert result["outcome"] == "failed", result
        assert result["error"].startswith("refused: container 'app' ("), result["error"]
        assert reason in result["error"] and "berth_trusted_keys" in result["error"]
        assert result["error"].endswith("nothing was stopped")
        assert result["rolled_back"] is False and result["changes"] == {}
        after = dev.inspect("deployment-app-1")  # the previous release, untouched
        assert after["Id"] == running["Id"] and after["State"]["Running"]
        assert after["State"]["StartedAt"] == running["State"]["StartedAt"]
        if digest:
            assert not dev.has_image(f"{registry}/{repo}@{digest}")  # not even pulled
        # the pre-pull refuses it too, before downloading anything
        pulled = dev.run("docker.release_pull")
        assert pulled.returncode != 0 and reason in str(pulled.data), pulled
    assert not dev.has_image(f"{registry}/{repo}@{other}")

    # signed by the device's key: it applies
    cosign.sign_and_push(registry_push, repo, other, keys["device"])
    dev.render(2, other, repo, {"required": False}, tag="2")
    ret = dev.run("docker.release_pull")
    assert ret.returncode == 0, ret
    ret = dev.run("docker.release_apply")
    assert ret.returncode == 0 and ret.data["outcome"] == "succeeded", ret
    assert dev.inspect("deployment-app-2")["Config"]["Image"] == f"{registry}/{repo}@{other}"
