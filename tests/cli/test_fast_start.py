"""The start-up savings of a terminal command on the local server (:mod:`flows.server`): Prefect is told
up front that a tag without a concurrency limit has none (no slot-acquisition write, so no "database is
locked" back-off), a tag with a limit is still acquired, and the flow-run heartbeat thread is off unless
configured."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture
def local_api(monkeypatch):
    """This process pointed at the session's local server, as ``deliver qc`` points itself."""
    import flows.server as server

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setattr(server, "_local_api_url", None)
    # no API configured, even when another package's Prefect test harness is active in this session
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        url = server.ensure_api(announce=False)
        assert url
        with temporary_settings({PREFECT_API_URL: os.environ["PREFECT_API_URL"]}):  # this test's client too
            yield os.environ["PREFECT_API_URL"]


def test_an_unlimited_tag_is_known_up_front_and_a_limited_one_is_acquired(local_api) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency import services

    from flows.server import skip_absent_tag_limits

    assert skip_absent_tag_limits(["fast-start-probe"]) is True
    assert services._no_limits_cache.get(frozenset({"tag:fast-start-probe"})) is True
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="tag:fast-start-limited", limit=2))
        try:
            assert skip_absent_tag_limits(["fast-start-limited"]) is False
            assert services._no_limits_cache.get(frozenset({"tag:fast-start-limited"})) is None
        finally:
            client.delete_global_concurrency_limit_by_name("tag:fast-start-limited")


def test_not_on_a_configured_server(monkeypatch) -> None:
    import flows.server as server

    monkeypatch.setattr(server, "_local_api_url", "http://127.0.0.1:9/api")
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example:4200/api")
    assert server.skip_absent_tag_limits(["ffmpeg"]) is False


PROBE = """
from prefect.settings import get_current_settings
from flows.server import without_heartbeat
with without_heartbeat():
    print(get_current_settings().flows.heartbeat_frequency)
print(get_current_settings().flows.heartbeat_frequency)
"""


@pytest.mark.parametrize(("configured", "inside"), [(None, "None"), ("60", "60")])
def test_no_heartbeat_thread_unless_configured(configured: str | None, inside: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("HEARTBEAT_FREQUENCY")}
    if configured:
        env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = configured
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [inside, configured or "180"]  # restored after the block
