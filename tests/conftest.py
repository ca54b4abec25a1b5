pytest_plugins = [
    "tests.fixtures.api",
    "tests.fixtures.docker",
    "tests.fixtures.salt",
    "tests.fixtures.logbook",
]
