"""One Prefect test harness for the schedule tests (a real deliver run records the schedule)."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def _prefect_logs_to_real_stderr():
    """Prefect's console handler keeps the stream it first saw; CliRunner closes it after an invoke."""
    from prefect.logging.configuration import setup_logging

    setup_logging(incremental=False)
    yield
