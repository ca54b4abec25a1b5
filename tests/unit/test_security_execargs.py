"""berth.execargs: command-line values read as YAML without anchors or aliases, and every
command's arguments capped by node count and size (issue 17, finding 6)."""

import time

import pytest

from berth import execargs

# Seven levels of nine: 9**7 (4.8 million) leaves from 260 bytes.
LAUGHS = (
    "{a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
    "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]}"
)


def test_salt_reads_the_values_as_before():
    assert execargs.parse_command_line("docker.logs curveball tail=10 'x=[1, {a: b}]' 0x1F") == (
        "docker.logs",
        ["curveball", 31],
        {"tail": 10, "x": [1, {"a": "b"}]},
    )
    # what Salt keeps as a string stays one: not YAML, a comment, a tab
    assert execargs.parse_command_line("test.echo 'a: [' '# x' 'a\tb'")[1] == [
        "a: [",
        "# x",
        "a\tb",
    ]


@pytest.mark.parametrize(
    "line",
    [
        f"docker.logs curveball 'tail={LAUGHS}'",
        f"docker.logs '{LAUGHS}'",
        "test.echo '&a x'",
        "test.echo '[&a x, *a]'",
        "test.echo 'k={a: &a 1, <<: *a}'",
    ],
)
def test_anchors_and_aliases_are_refused_before_anything_is_built(line):
    started = time.perf_counter()
    with pytest.raises(execargs.BadValue, match="anchors and aliases"):
        execargs.parse_command_line(line)
    assert time.perf_counter() - started < 0.1


def test_kwarg_strings_among_positional_arguments_are_checked_too():
    # the minion reads a positional "name=value" string's value as YAML
    with pytest.raises(execargs.BadValue, match="anchors"):
        execargs.check_kwarg_strings(["curveball", f"tail={LAUGHS}"])
    execargs.check_kwarg_strings(["curveball", "tail=10", LAUGHS, "x=a\n&b"])  # not read as YAML


def test_node_and_size_caps():
    execargs.check_size(["x"] * (execargs.MAX_ARG_NODES - 1))
    with pytest.raises(execargs.BadValue, match=f"more than {execargs.MAX_ARG_NODES} values"):
        execargs.check_size(["x"] * execargs.MAX_ARG_NODES)
    with pytest.raises(execargs.BadValue, match=f"more than {execargs.MAX_ARG_CHARS} characters"):
        execargs.check_size([], {"k": "x" * execargs.MAX_ARG_CHARS})
    with pytest.raises(execargs.BadValue, match="characters"):
        execargs.check_size({"k" * (execargs.MAX_ARG_CHARS + 1): 1})
    nested = "[" + ",".join(["[]"] * execargs.MAX_ARG_NODES) + "]"
    with pytest.raises(execargs.BadValue, match="values"):
        execargs.parse_command_line(f"test.echo '{nested}'")
    with pytest.raises(execargs.BadValue, match="Cannot parse"):
        execargs.parse_command_line("test.echo 'unclosed")
