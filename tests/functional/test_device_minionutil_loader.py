"""minionutil through the real Salt loader (salt-factories Loaders), repo root in module_dirs."""

import pathlib

import pytest
import salt.config
from salt.exceptions import SaltInvocationError
from saltfactories.utils.functional import Loaders

REPO = pathlib.Path(__file__).resolve().parents[2]

LOG = [
    '2026-11-27 10:00:00,001 [salt.cli.daemons  :309 ][INFO    ][100] Setting up the Salt Minion "dev-fn"',
    "2026-11-27 10:00:00,100 [salt.minion       :1000][ERROR   ][100] old error",
    '2026-11-27 11:00:00,001 [salt.cli.daemons  :309 ][INFO    ][200] Setting up the Salt Minion "dev-fn"',
    "2026-11-27 11:00:00,300 [salt.minion       :1000][ERROR   ][200] new error",
    "2026-11-27 11:00:00,500 [salt.minion       :1000][INFO    ][200] docker pulled curveball",
]


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("salt-logs")
    (path / "minion").write_text("".join(line + "\n" for line in LOG[2:]))
    (path / "minion.1").write_text("".join(line + "\n" for line in LOG[:2]))
    (path / "master").write_text("master says hi\n")
    return path


@pytest.fixture(scope="module")
def minion_opts(tmp_path_factory, log_dir):
    root = tmp_path_factory.mktemp("minion-root")
    opts = salt.config.minion_config(None)
    opts.update(
        id="dev-fn",
        root_dir=str(root),
        cachedir=str(root / "cache"),
        pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"),
        conf_file=str(root / "minion"),
        log_file=str(log_dir / "minion"),
        file_client="local",
        module_dirs=[str(REPO)],
    )
    return opts


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()


@pytest.fixture
def minionutil(loaders):
    mods = loaders.modules
    assert "minionutil.last_logs" in mods, "minionutil was not loaded from the repo's _modules"
    return mods


def test_unit_id_is_the_minion_id(minionutil):
    assert minionutil["minionutil.unit_id"]() == "dev-fn"


def test_last_logs_reads_log_file_and_rotation_newest_first(minionutil):
    assert minionutil["minionutil.last_logs"](limit=0) == list(reversed(LOG))


def test_last_logs_match_count_context(minionutil):
    result = minionutil["minionutil.last_logs"](match="docker", count=1, before=1)
    assert result == [LOG[4], LOG[3]]


def test_last_errors_and_last_startup(minionutil):
    assert minionutil["minionutil.last_errors"]() == [LOG[3], LOG[1]]
    assert minionutil["minionutil.last_startup"]() == [LOG[4], LOG[3], LOG[2]]


def test_other_file_in_log_dir(minionutil):
    assert minionutil["minionutil.last_logs"](file="master") == ["master says hi"]
    assert minionutil["minionutil.log_files"]() == ["master", "minion", "minion.1"]


def test_bad_input_is_a_salt_invocation_error_naming_the_parameter(minionutil):
    with pytest.raises(SaltInvocationError, match="^file: .*outside the log directory"):
        minionutil["minionutil.last_logs"](file="../../etc/passwd")
    with pytest.raises(SaltInvocationError, match="^match: "):
        minionutil["minionutil.last_logs"](match="(")
    with pytest.raises(SaltInvocationError, match="^level: "):
        minionutil["minionutil.last_errors"](level="loud")
