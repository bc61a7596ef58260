"""The Prefect test harness fixtures shared by the packages whose tests run flows in-process (start-up costs
10-15 s on 2 cores, so once per package and session). A conftest imports them to use them."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session", autouse=True)
def prefect_api():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def _prefect_logs_to_real_stderr():
    """Prefect's console handler keeps the stream it first saw; under CliRunner that stream is closed
    after the first invoke (RecursionError on the next run). Re-bind it before each test."""
    from prefect.logging.configuration import setup_logging

    setup_logging(incremental=False)
    yield
