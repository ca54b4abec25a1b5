import sys

import pytest

pytest_plugins = [
    "tests.fixtures.api",
    "tests.fixtures.docker",
    "tests.fixtures.salt",
    "tests.fixtures.logbook",
    "tests.fixtures.registry",
    "tests.fixtures.browser",
]


def pytest_collection_modifyitems(items):
    # Every test that touches the database runs again on PostgreSQL (scripts/test pass 2).
    for item in items:
        if "app" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


def pytest_configure(config):
    # salt-factories' log-server thread forwards the daemons' records at any time, also after
    # pytest closed the capture stream of the test that started them: each would print a
    # "--- Logging error ---" traceback in the middle of the run. pytest reports the records it
    # captured; a record that arrives too late for any test is dropped quietly.
    import logging

    logging.raiseExceptions = False


def pytest_unconfigure(config):
    # Salt's loader installs a temporary root handler that keeps every warning it sees and writes
    # them all to the stderr of that moment at interpreter exit, after pytest closed it: dozens of
    # "--- Logging error ---" blocks after the summary. pytest already showed those records with
    # their tests, so the copies are dropped here and the run ends with pytest's summary.
    import logging
    import sys

    impl = sys.modules.get("salt._logging.impl")
    handler = impl.get_temp_handler() if impl else None
    if handler is not None:
        logging.root.removeHandler(handler)
        handler.sync_with_handlers(())


def pytest_terminal_summary(terminalreporter):
    # schemathesis counts (tests/functional/test_api_schemathesis.py), when it ran
    module = sys.modules.get("test_api_schemathesis") or sys.modules.get(
        "tests.functional.test_api_schemathesis"
    )
    if module is not None and module.COUNTS["requests"]:
        for line in module.summary():
            terminalreporter.write_line(line)
