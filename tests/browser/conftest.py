import pytest


def pytest_collection_modifyitems(items):
    # every test here drives Chromium (tests/fixtures/browser.py); none is a `db` test
    for item in items:
        if "tests/browser/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.browser)
