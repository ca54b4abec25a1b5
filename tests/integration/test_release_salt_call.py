"""Real ``salt-call --local`` processes: Berth's modules found through the ``salt.loader``
entry point alone (no ``module_dirs``), from the checkout and from a built wheel."""

import json
import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.fixtures.docker import REPO, seed_containers

pytestmark = [pytest.mark.docker]


def test_state_sls_docker_release_via_salt_call(
    fresh_engine, testbed, release_images, release_pillar, salt_call_local, tmp_path
):
    cli = testbed.client(fresh_engine)
    data = tmp_path / "data"
    data.mkdir()
    release = release_pillar(50, seed_containers(release_images, data))
    call = salt_call_local(fresh_engine)
    call.set_pillar({"docker": {"release": release, "registries": testbed.registries_pillar()}})

    code, out, proc = call.run("state.sls", "docker.release")
    assert code == 0, proc.stderr
    (state,) = out.values()
    assert state["result"] is True, state["comment"]
    assert sorted(state["changes"]["started"]) == [
        "deployment-curveball-50",
        "deployment-ravendb-50",
    ]
    assert {c["Names"][0] for c in cli.api.containers()} == {
        "/deployment-curveball-50",
        "/deployment-ravendb-50",
    }
    assert testbed.password not in proc.stdout + proc.stderr

    code, out, _ = call.run("state.sls", "docker.release")
    (state,) = out.values()
    assert code == 0 and state["result"] is True and state["changes"] == {}

    code, out, _ = call.run("docker.ps")
    assert code == 0
    assert {c["name"] for c in out} == {"deployment-curveball-50", "deployment-ravendb-50"}

    code, out, _ = call.run("docker.logs", "curveball")
    assert code == 0 and out.startswith("started ")

    code, out, _ = call.run("docker.release_status")
    assert out["release_id"] == 50 and out["state"] == "running"

    # the log says what happened to which device
    log = call.log_file.read_text()
    assert "berth release 50" in log and "succeeded" in log
    assert testbed.password not in log

    code, out, proc = call.run("docker.logs", "nope")
    assert code != 0
    assert "no container named 'nope'" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    cli.close()


def test_registries_sls_logs_in(fresh_engine, testbed, salt_call_local):
    call = salt_call_local(fresh_engine)
    call.set_pillar({"docker": {"registries": testbed.registries_pillar()}})
    code, out, proc = call.run("state.sls", "docker.registries")
    assert code == 0, proc.stderr
    (state,) = out.values()
    assert state["result"] is True and state["changes"] == {"logged_in": [testbed.registry]}
    code, out, _ = call.run("state.sls", "docker.registries")
    (state,) = out.values()
    assert state["result"] is True and state["changes"] == {}


def test_built_wheel_serves_the_modules(fresh_engine, testbed, salt_call_local, tmp_path):
    """A real wheel, installed into a fresh environment, carries _modules/_states inside
    ``berth/salt_ext`` and salt-call finds them through the entry point."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("berth-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "berth/salt_ext/_modules/docker.py" in names
    assert "berth/salt_ext/_states/docker_release.py" in names

    # a fresh environment: the wheel unpacked into its own site dir, the dependencies
    # (salt, docker SDK) reachable but not the checkout's editable berth
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    deps = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["PYTHONPATH"] = f"{site}"
    bootstrap = (
        f"import sys; sys.path = [p for p in sys.path if not p.startswith({str(REPO)!r})]; "
        f"sys.path.append({deps!r}); "
        "import berth.loader, json; print(json.dumps(berth.loader.get_loader_dirs()))"
    )
    dirs = json.loads(
        subprocess.run(
            [sys.executable, "-S", "-c", bootstrap],
            check=True,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        ).stdout
    )
    assert dirs["modules"] == [str(site / "berth" / "salt_ext" / "_modules")]

    call = salt_call_local(fresh_engine)
    run_salt_call = (
        f"import sys; sys.path = [p for p in sys.path if not p.startswith({str(REPO)!r})]; "
        f"sys.path.append({deps!r}); "
        "import salt.scripts; sys.argv = ['salt-call'] + sys.argv[1:]; salt.scripts.salt_call()"
    )
    args = call.command("docker.ps", "all=True")[1:]
    proc = subprocess.run(
        [sys.executable, "-S", "-c", run_salt_call, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["local"] == []
    # the function came from the wheel: the checkout is not on this interpreter's path at all
    check = (
        f"import sys; sys.path = [p for p in sys.path if not p.startswith({str(REPO)!r})]; "
        f"sys.path.append({deps!r}); import berth; print(berth.__file__)"
    )
    where = subprocess.run(
        [sys.executable, "-S", "-c", check],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert pathlib.Path(where).is_relative_to(site)


def test_sleep_hook_without_the_local_api_applies_through_salt_call(
    testbed, salt_call_local, tmp_path
):
    # a device whose minion has no berth_localapi engine: the hook goes straight to salt-call
    hook = tmp_path / "hook" / "berth-before-sleep"
    call = salt_call_local(
        testbed.docker_host,
        berth={"sleep": {"script": str(hook), "unit_dir": str(tmp_path / "units")}},
    )
    code, out, proc = call.run("state.sls", "docker.sleep")
    assert code == 0, proc.stdout + proc.stderr
    script = hook.read_text()
    assert (
        "sleephook.py --timeout 1200 --release-lock " in script and "--local-api" not in script
    ), script
    assert "state.sls docker.release" in script

    done = subprocess.run([str(hook)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "state.sls docker.release via salt-call: succeeded" in done.stderr, done.stderr
