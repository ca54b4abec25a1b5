"""Log search logic of berth.minionlogs on crafted log files."""

import gzip
import os

import pytest

from berth import minionlogs
from berth.minionlogs import LogQueryError


def _write(path, lines, compress=False):
    text = "".join(f"{line}\n" for line in lines)
    if compress:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        with open(path, "w") as fh:
            fh.write(text)


@pytest.fixture
def logdir(tmp_path):
    """A log dir with minion (lines 20..29), minion.1 (10..19), minion.2.gz (0..9)."""
    _write(tmp_path / "minion", [f"line {i}" for i in range(20, 30)])
    _write(tmp_path / "minion.1", [f"line {i}" for i in range(10, 20)])
    _write(tmp_path / "minion.2.gz", [f"line {i}" for i in range(0, 10)], compress=True)
    return tmp_path


@pytest.fixture
def log_file(logdir):
    return str(logdir / "minion")


def nums(lines):
    return [int(line.split()[1]) if line != "--" else "--" for line in lines]


def test_newest_first_across_rotations(log_file):
    assert nums(minionlogs.last_logs(log_file, limit=0)) == list(range(29, -1, -1))


def test_default_limit_is_100_lines(tmp_path):
    _write(tmp_path / "minion", [f"line {i}" for i in range(250)])
    result = minionlogs.last_logs(str(tmp_path / "minion"))
    assert nums(result) == list(range(249, 149, -1))


def test_limit_caps_returned_lines(log_file):
    assert nums(minionlogs.last_logs(log_file, limit=3)) == [29, 28, 27]


def test_match_is_a_regex_searched_anywhere(log_file):
    assert nums(minionlogs.last_logs(log_file, match=r"[13]$", limit=0)) == [23, 21, 13, 11, 3, 1]


def test_count_caps_matches(log_file):
    assert nums(minionlogs.last_logs(log_file, match=r"5$", count=2)) == [25, 15]


def test_until_stops_the_backward_scan_at_the_newest_marker(log_file):
    # "line 2" also occurs as "line 2x" in the current file; the newest match wins.
    assert nums(minionlogs.last_logs(log_file, until=r"line 24$", limit=0)) == [
        29,
        28,
        27,
        26,
        25,
        24,
    ]
    # The marker line is returned only if it matches ``match``.
    assert nums(
        minionlogs.last_logs(log_file, until=r"line 24$", match="line 2[5-9]", limit=0)
    ) == [
        29,
        28,
        27,
        26,
        25,
    ]


def test_until_dollar_means_whole_log(log_file):
    assert len(minionlogs.last_logs(log_file, until="$", limit=0)) == 30


def test_until_never_matching_scans_everything(log_file):
    assert len(minionlogs.last_logs(log_file, until="no such marker", limit=0)) == 30


def test_context_before_is_older_after_is_newer_with_separators(log_file):
    result = minionlogs.last_logs(log_file, match=r"line (25|12)$", before=2, after=1, limit=0)
    assert nums(result) == [26, 25, 24, 23, "--", 13, 12, 11, 10]


def test_overlapping_context_is_not_repeated(log_file):
    result = minionlogs.last_logs(log_file, match=r"line (25|23)$", before=1, after=1, limit=0)
    assert nums(result) == [26, 25, 24, 23, 22]


def test_context_crosses_the_rotation_boundary(log_file):
    result = minionlogs.last_logs(log_file, match=r"line 20$", before=2, after=1)
    assert nums(result) == [21, 20, 19, 18]


def test_count_still_returns_the_last_matches_before_context(log_file):
    result = minionlogs.last_logs(log_file, match=r"line 2[68]$", count=2, before=1)
    assert nums(result) == [28, 27, 26, 25]
    result = minionlogs.last_logs(log_file, match=r"line 2[69]$", count=2, before=1)
    assert nums(result) == [29, 28, "--", 26, 25]


def test_limit_counts_context_lines(log_file):
    result = minionlogs.last_logs(log_file, match=r"line 25$", before=5, limit=3)
    assert nums(result) == [25, 24, 23]


def test_line_without_final_newline_and_long_lines_across_blocks(tmp_path):
    long = "x" * (200 * 1024)
    path = tmp_path / "minion"
    path.write_text(f"first\n{long}\nsecond\nunfinished")
    assert minionlogs.last_logs(str(path), limit=0) == ["unfinished", "second", long, "first"]


def test_invalid_bytes_are_replaced_not_fatal(tmp_path):
    path = tmp_path / "minion"
    path.write_bytes(b"ok\n\xff\xfe broken\n")
    assert minionlogs.last_logs(str(path)) == ["\ufffd\ufffd broken", "ok"]


def test_dated_rotations_are_read_newest_date_first(tmp_path):
    _write(tmp_path / "minion", ["now"])
    _write(tmp_path / "minion-20260101.gz", ["january"], compress=True)
    _write(tmp_path / "minion-20260301", ["march"])
    assert minionlogs.last_logs(str(tmp_path / "minion")) == ["now", "march", "january"]


def test_other_files_resolve_inside_the_log_dir(logdir, log_file):
    _write(logdir / "master", ["master line"])
    assert minionlogs.last_logs(log_file, file="master") == ["master line"]
    # A rotated copy can be read on its own.
    assert nums(minionlogs.last_logs(log_file, file="minion.1", limit=2)) == [19, 18]


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "sub/../../x"])
def test_paths_escaping_the_log_dir_are_refused(log_file, name):
    with pytest.raises(LogQueryError, match="file: .*(outside|absolute)"):
        minionlogs.last_logs(log_file, file=name)


def test_symlink_out_of_the_log_dir_is_refused(logdir, log_file, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret"
    outside.write_text("secret\n")
    os.symlink(outside, logdir / "link")
    with pytest.raises(LogQueryError, match="outside the log directory"):
        minionlogs.last_logs(log_file, file="link")


def test_missing_file_is_a_clear_error(log_file):
    with pytest.raises(LogQueryError, match="file: no log file .*nothere"):
        minionlogs.last_logs(log_file, file="nothere")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"match": "("}, "match"),
        ({"until": "[a-"}, "until"),
        ({"count": -1}, "count"),
        ({"before": "two"}, "before"),
        ({"after": 1.5}, "after"),
        ({"limit": None}, "limit"),
        ({"match": 5}, "match"),
    ],
)
def test_bad_parameters_name_the_parameter(log_file, kwargs, field):
    with pytest.raises(LogQueryError, match=f"^{field}: "):
        minionlogs.last_logs(log_file, **kwargs)


def test_numeric_strings_are_accepted(log_file):
    # Salt's CLI passes "3" for limit=3 only when YAML does not convert it.
    assert len(minionlogs.last_logs(log_file, limit="3")) == 3


def test_non_file_log_destination_is_a_clear_error():
    with pytest.raises(LogQueryError, match="not a local file"):
        minionlogs.last_logs("udp://127.0.0.1:514")


SALT_LOG = [
    '2026-11-27 10:00:00,001 [salt.cli.daemons  :309 ][INFO    ][100] Setting up the Salt Minion "dev1"',
    "2026-11-27 10:00:00,100 [salt.minion       :1000][ERROR   ][100] old error",
    "2026-11-27 10:00:01,000 [salt.minion       :1000][INFO    ][100] old info",
    '2026-11-27 11:00:00,001 [salt.cli.daemons  :309 ][INFO    ][200] Setting up the Salt Minion "dev1"',
    "2026-11-27 11:00:00,200 [salt.minion       :1000][WARNING ][200] a warning",
    "2026-11-27 11:00:00,300 [salt.minion       :1000][ERROR   ][200] new error",
    "Traceback (most recent call last):",
    '  File "x.py", line 1, in <module>',
    "2026-11-27 11:00:00,400 [salt.minion       :1000][CRITICAL][200] critical thing",
    "2026-11-27 11:00:00,500 [salt.minion       :1000][DEBUG   ][200] debug noise",
]


@pytest.fixture
def salt_log(tmp_path):
    _write(tmp_path / "minion", SALT_LOG)
    return str(tmp_path / "minion")


def test_last_errors_error_and_above_newest_first(salt_log):
    result = minionlogs.last_errors(salt_log)
    assert [line.rsplit("] ", 1)[1] for line in result] == [
        "critical thing",
        "new error",
        "old error",
    ]


def test_last_errors_level_warning_and_after_shows_traceback(salt_log):
    # Lines after an error (newer ones: its traceback) come with ``after``.
    result = minionlogs.last_errors(salt_log, level="WARNING", until="Setting up", after=2, count=2)
    assert result == [SALT_LOG[9], SALT_LOG[8], SALT_LOG[7], SALT_LOG[6], SALT_LOG[5]]
    result = minionlogs.last_errors(salt_log, level="WARNING", until="Setting up")
    assert result == [SALT_LOG[8], SALT_LOG[5], SALT_LOG[4]]


def test_last_errors_unknown_level(salt_log):
    with pytest.raises(LogQueryError, match="^level: 'fatal' is not one of"):
        minionlogs.last_errors(salt_log, level="fatal")


def test_last_startup_returns_the_newest_start_newest_first(salt_log):
    assert minionlogs.last_startup(salt_log) == list(reversed(SALT_LOG[3:]))


def test_last_startup_limit_keeps_the_start_of_the_sequence(salt_log):
    assert minionlogs.last_startup(salt_log, limit=3) == [SALT_LOG[5], SALT_LOG[4], SALT_LOG[3]]


def test_last_startup_not_found(salt_log):
    assert minionlogs.last_startup(salt_log, match="no such start") == []
    assert minionlogs.last_startup(salt_log, until="critical") == []


def test_log_files_lists_the_log_dir(log_file):
    assert minionlogs.log_files(log_file) == ["minion", "minion.1", "minion.2.gz"]
