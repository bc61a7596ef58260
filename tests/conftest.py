"""Test-wide settings: an isolated Prefect home, no telemetry, generous server start-up."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="deliver-test-prefect-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["DELIVER_HOME"] = os.path.join(_HOME, "deliver-home")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
# Never talk to a real API from tests: the flow tests start their own harness.
os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session", autouse=True)
def _stop_local_prefect_server():
    """A ``deliver run``/``qc`` subprocess starts the local Prefect server (flows.server) under this
    session's DELIVER_HOME on first use; stop it when the session ends."""
    yield
    from flows.server import stop_server

    stop_server()


@pytest.fixture(autouse=True)
def _no_api_url_leaks():
    """An in-process CLI command points this process at the local server (flows.server.ensure_api sets
    PREFECT_API_URL); later subprocess tests must not inherit an address a test may have stopped."""
    before = os.environ.get("PREFECT_API_URL")
    yield
    if before is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = before


@pytest.fixture(scope="session", autouse=True)
def _require_ffmpeg() -> None:
    if not shutil.which(os.environ.get("FFMPEG", "ffmpeg")):
        pytest.exit("ffmpeg is required for the test suite; run `make test` (installs it) or apt-get install ffmpeg", 3)
