"""``pip install berth`` on a device: the wheel, installed without extras into a clean venv,
brings nothing of the API's server stack, every device and master module imports from it, and
that venv's ``salt-call --local`` plans and test-applies a release through the ``salt.loader``
entry point with the state tree the wheel carries. Prints what the install weighs.

Runs once (SQLite pass: it touches no database). Needs PyPI (through pip's cache) for salt and
the other device dependencies: about a minute of the test's time is that install."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.fixtures.docker import REPO, seed_containers
from tests.unit.test_device_install_imports import api_extra_imports

pytestmark = [pytest.mark.docker]

# Salt 3008 itself requires these (salt -> cherrypy; salt -> jaraco.text -> typer-slim -> typer
# -> pydantic; salt -> cryptography): present on any pip-installed minion, never because of Berth
SALT_BRINGS = ("cherrypy", "pydantic", "cryptography")
# what only the fleet API hosts need (the `api` extra): never on a device
SERVER_STACK = tuple(sorted(set(api_extra_imports()) - set(SALT_BRINGS)))

# Run inside the device venv: which of the names are importable, which distributions Berth's own
# requirements (without salt's tree) pull in, and every berth/ and loader module imported.
PROBE = r"""
import importlib, importlib.metadata as md, importlib.util, json, pathlib, pkgutil, re, sys

names = json.loads(sys.argv[1])
present = sorted(n for n in names if importlib.util.find_spec(n) is not None)

def key(req):
    return re.split(r"[\s;\[<>=!~]", req, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")

def closure(roots, skip=()):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name in skip:
            continue
        seen.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [key(r) for r in reqs if "extra ==" not in r]
    return seen

own = [key(r) for r in md.requires("berth") if "extra ==" not in r]
without_salt = sorted(closure([n for n in own if n != "salt"], skip={"salt"}))

import berth, berth.loader
imported = []
for mod in pkgutil.walk_packages(berth.__path__, "berth."):
    importlib.import_module(mod.name)
    imported.append(mod.name)
for kind, dirs in berth.loader.get_loader_dirs().items():
    for d in dirs:
        for path in sorted(pathlib.Path(d).glob("*.py")):
            spec = importlib.util.spec_from_file_location(f"berth_probe_{kind}_{path.stem}", path)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
            imported.append(f"{kind}/{path.name}")
print(json.dumps({"present": present, "own": own, "without_salt": without_salt,
                  "imported": imported, "modules": sorted(sys.modules)}))
"""


def _du(path) -> int:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory):
    """The device install: the wheel built from the checkout, ``pip install``-ed without extras
    into a venv that sees nothing of this interpreter's packages."""
    root = tmp_path_factory.mktemp("device-install")
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(root / "dist"), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
        cwd=root,
    )
    (wheel,) = (root / "dist").glob("berth-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    built = time.monotonic()
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(
        f"\ndevice install: wheel + venv {built - started:.1f} s, "
        f"pip install {time.monotonic() - built:.1f} s"
    )
    return venv


def test_device_install_has_no_server_stack_and_imports_every_device_module(device_venv):
    python = str(device_venv / "bin" / "python")
    names = [*SERVER_STACK, *SALT_BRINGS, "salt", "docker", "yaml", "requests", "werkzeug"]
    proc = subprocess.run(
        [python, "-c", PROBE, json.dumps(names)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=device_venv.parent,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    probe = json.loads(proc.stdout)

    assert {"flask", "sqlalchemy", "psycopg", "gunicorn", "orjson"} <= set(SERVER_STACK)
    assert [n for n in SERVER_STACK if n in probe["present"]] == []
    assert {"salt", "docker", "yaml", "requests", "werkzeug"} <= set(probe["present"])
    # Berth asks for none of the server stack, nor for what salt happens to bring
    assert sorted(probe["own"]) == ["docker", "pyyaml", "requests", "salt", "werkzeug"]
    pulled = {name.replace("-", "_") for name in probe["without_salt"]}
    assert pulled.isdisjoint({*SERVER_STACK, *SALT_BRINGS, "psycopg_binary"})

    # every module a device (or the master) loads imports from the device install alone
    assert "berth.localapi" in probe["imported"] and "berth.master.forward" in probe["imported"]
    for loaded in (
        "modules/docker.py",
        "modules/minionutil.py",
        "states/docker_release.py",
        "engines/berth_localapi.py",
        "engines/berth_shipper.py",
        "runners/berth.py",
        "pillar/berth_api.py",
    ):
        assert loaded in probe["imported"]
    assert not [m for m in probe["modules"] if m == "api" or m.startswith("api.")]

    site = next((device_venv / "lib").glob("python3*/site-packages"))
    sizes = {
        "berth": _du(site / "berth"),
        "api (code only, unusable without the extra)": _du(site / "api"),
        "salt": _du(site / "salt"),
        "site-packages total": _du(site),
    }
    print("\ndevice install, installed size (du -sk):")
    for what, kib in sizes.items():
        print(f"  {what:45s} {kib / 1024:7.1f} MiB")


def test_device_install_salt_call_plans_and_test_applies_a_release(
    device_venv, fresh_engine, testbed, release_images, release_pillar, salt_call_local, tmp_path
):
    call = salt_call_local(fresh_engine, venv=device_venv)
    assert call.command()[0] == str(device_venv / "bin" / "salt-call")
    data = tmp_path / "data"
    data.mkdir()
    release = release_pillar(60, seed_containers(release_images, data))
    call.set_pillar({"docker": {"release": release, "registries": testbed.registries_pillar()}})

    code, plan, proc = call.run("docker.release_plan")
    assert code == 0, proc.stderr[-4000:]
    actions = [step["action"] for step in plan]
    assert "pull" in actions and "start" in actions, plan

    code, out, proc = call.run("state.sls", "docker.release", "test=True")
    assert code == 0, proc.stderr[-4000:]
    (state,) = out.values()
    assert state["result"] is None, state
    assert state["comment"] == f"Release 60 would be applied in {len(plan)} steps"
    assert sorted(state["changes"]["started"]) == [
        "deployment-curveball-60",
        "deployment-ravendb-60",
    ]
    # test=True changed nothing on the engine
    cli = testbed.client(fresh_engine)
    assert cli.api.containers(all=True) == []
    cli.close()
    assert "Traceback" not in proc.stderr
