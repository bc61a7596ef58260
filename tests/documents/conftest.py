"""One Prefect test harness for the documents tests (a deliver run through the CLI needs the API)."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def _prefect_logs_to_real_stderr():
    """Re-bind Prefect's console handler before each test (CliRunner closes the stream it first saw)."""
    from prefect.logging.configuration import setup_logging

    setup_logging(incremental=False)
    yield
