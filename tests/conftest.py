"""Fixtures shared across test modules (the central-store fixtures live in central_fixtures.py)."""
import logging

import pytest


@pytest.fixture
def root_logging():
    """The CLIs set up the process's logging; give the next test the logging it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
