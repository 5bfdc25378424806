"""Set-up shared by every test module.

The fixture modules are plugins for the whole suite, loaded here once: `central_fixtures` (a central
store on SQLite and PostgreSQL, a real server on loopback), `policy_fixtures` (a store with users) and
`console_fixtures` (a served console and Debian's chromium). pytest rewrites the asserts of a plugin
module, so their helpers fail with the values compared, as the tests' own asserts do. Test modules
import the helpers by name (`from central_fixtures import enrol_unit`: tests/ is on sys.path).
"""
import logging

import pytest

pytest_plugins = ["central_fixtures", "policy_fixtures", "console_fixtures"]


@pytest.fixture
def root_logging():
    """The CLIs set up the process's logging; give the next test the logging it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
