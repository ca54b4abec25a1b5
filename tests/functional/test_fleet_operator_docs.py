"""The operator docs work when followed to the letter: the salt-api snippet shown in
docs/fleet-api.md is conf/master.d/salt-api.conf, the one the test harness runs salt-api
with; a wheel carries the state tree, reactor files and conf snippets, and
``python3 -m berth.paths state_tree`` prints where pip put them (the master's file_roots);
the minion conf logs at the level ``minionutil.last_logs`` needs."""

import os
import pathlib
import re
import subprocess
import sys
import zipfile

import yaml

from berth import paths
from berth.master.config import (
    master_options,
    minion_options,
    salt_api_options,
    syndic_master_options,
    top_master_options,
)

REPO = pathlib.Path(__file__).resolve().parents[2]
SALT_API_CONF = REPO / "conf" / "master.d" / "salt-api.conf"


def test_fleet_api_doc_shows_the_salt_api_conf_verbatim():
    doc = (REPO / "docs" / "fleet-api.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.S)
    assert SALT_API_CONF.read_text() in blocks


def test_harness_runs_salt_api_with_that_conf():
    conf = yaml.safe_load(SALT_API_CONF.read_text())
    options = master_options(
        api_url="http://api",
        token_file="/t",
        spool_dir="/s",
        salt_api_port=18001,
        sharedsecret="s3cret",
        salt_api_user="ops",
    )
    assert options["netapi_enable_clients"] == conf["netapi_enable_clients"]
    assert "runner" in conf["netapi_enable_clients"]  # GET /jobs/<jid> goes through it
    assert options["external_auth"] == {
        "sharedsecret": {"ops": conf["external_auth"]["sharedsecret"]["berth"]}
    }
    assert {"@jobs": ["^list_job$"]} in conf["external_auth"]["sharedsecret"]["berth"]
    assert options["rest_cherrypy"] == {**conf["rest_cherrypy"], "port": 18001}
    assert options["sharedsecret"] == "s3cret"
    assert salt_api_options(port=1, sharedsecret="x")["external_auth"] == conf["external_auth"]


def test_master_conf_and_harness_use_the_packaged_state_tree():
    master_conf = (REPO / "conf" / "master.d" / "berth.conf").read_text()
    assert "python3 -m berth.paths state_tree" in master_conf
    options = master_options(
        api_url="x", token_file="t", spool_dir="s", salt_api_port=1, sharedsecret="x"
    )
    assert options["file_roots"] == {"base": [str(paths.state_tree())]}
    assert (paths.state_tree() / "docker" / "release.sls").is_file()


def test_syndic_confs_say_what_the_harness_runs():
    """conf/master.d/berth-top.conf and berth-syndic.conf (docs/scale.md) are what
    ``top_master_options`` / ``syndic_master_options`` give the syndic integration test."""
    conf_dir = REPO / "conf" / "master.d"
    top_conf = yaml.safe_load((conf_dir / "berth-top.conf").read_text())
    top = top_master_options(salt_api_port=18001, sharedsecret="s")
    assert top_conf == {"order_masters": True, "master_id": top["master_id"]}
    assert top["order_masters"] is True and top["rest_cherrypy"]["port"] == 18001
    # the top master reacts to nothing of Berth's and holds no credential
    assert not {"reactor", "ext_pillar", "berth_api", "schedule"} & set(top)

    syndic_conf = yaml.safe_load((conf_dir / "berth-syndic.conf").read_text())
    lower = syndic_master_options(
        api_url="http://api", token_file="/t", spool_dir="/s", syndic_master="top", flush_seconds=3
    )
    assert {"syndic_master", "syndic_master_port"} <= set(syndic_conf)
    assert lower["syndic_master"] == "top" and lower["syndic_master_port"] == 4506
    assert syndic_conf["syndic_master_port"] == lower["syndic_master_port"]
    single = master_options(
        api_url="http://api", token_file="/t", spool_dir="/s", salt_api_port=1, sharedsecret="x"
    )
    # a lower master is a Berth master (berth.conf) without salt-api, whose reactor also
    # forwards the returns of the top master's jobs (its list replaces berth.conf's)
    for key in ("ext_pillar", "berth_api", "file_roots", "module_dirs"):
        assert lower[key] == single[key], key
    berth_conf = yaml.safe_load((conf_dir / "berth.conf").read_text())
    assert single["reactor"] == berth_conf["reactor"]
    assert (
        lower["reactor"]
        == syndic_conf["reactor"]
        == [
            *berth_conf["reactor"],
            {"salt/job/*/ret/*": ["salt://reactor/job_return.sls"]},
        ]
    )
    assert "rest_cherrypy" not in lower and "external_auth" not in lower


def test_minion_conf_logs_at_the_level_last_logs_needs():
    conf = yaml.safe_load((REPO / "conf" / "minion.d" / "berth.conf").read_text())
    assert conf["log_level_logfile"] == "info"
    options = minion_options(docker_host="unix:///x", hook_dir="/h", localapi_port=1)
    assert options["log_level_logfile"] == "info"


def test_wheel_carries_the_state_tree_and_berth_paths_finds_it(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp_path / "dist"), str(REPO)],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("berth-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = [f.relative_to(REPO) for f in sorted((REPO / "salt").rglob("*.sls"))]
    wanted += [f.relative_to(REPO) for f in sorted((REPO / "conf").rglob("*.conf"))]
    assert any(str(w).startswith("salt/reactor/") for w in wanted)
    missing = [str(w) for w in wanted if f"berth/salt_ext/{w}" not in names]
    assert missing == []

    # what "pip install" puts on the master, and the command the master conf tells to run
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
        + [str(wheel)],
        check=True,
        timeout=300,
    )
    printed = subprocess.run(
        [sys.executable, "-m", "berth.paths", "state_tree"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    ).stdout.strip()
    tree = pathlib.Path(printed)
    assert tree == target / "berth" / "salt_ext" / "salt"
    assert (tree / "docker" / "release.sls").read_text() == (
        REPO / "salt" / "docker" / "release.sls"
    ).read_text()
    assert (tree / "reactor" / "release_result.sls").is_file()
