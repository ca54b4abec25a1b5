import pytest

pytest_plugins = [
    "tests.fixtures.api",
    "tests.fixtures.docker",
    "tests.fixtures.salt",
    "tests.fixtures.logbook",
]


def pytest_collection_modifyitems(items):
    # Every test that touches the database runs again on PostgreSQL (scripts/test pass 2).
    for item in items:
        if "app" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)
