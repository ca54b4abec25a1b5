"""Free-space estimate helpers (no engine, no registry)."""

from berth.release import space


def test_nothing_to_pull_or_check_disabled_needs_no_engine():
    assert space.shortfall(None, [], 3, 0) is None
    assert space.shortfall(None, [("a:1", None, None)], 0, 0) is None
