"""Operations tests: a real ``prefect server start`` on loopback and ``deliver serve`` against it.

One server and one ``deliver serve`` per session (start-up costs seconds on 2 cores). The server
gets its own temporary PREFECT_HOME (SQLite), no telemetry; ``PREFECT_API_URL`` is set explicitly
for every subprocess (tests/conftest.py pops it). The served process uses an ``FFMPEG`` wrapper that
throttles (``-readrate``) only the deliverable transcodes of titles starting with ``SLOW``, so a
cancellation test has a transcode to cancel while other runs go at full speed.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests.postgres import drain_prefect_workers, free_port, stop_process_group, use_api, wait_http, wait_served

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ops: operations tests on a real Prefect server (deliver serve, UI)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ops/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.ops)


@pytest.fixture(scope="session")
def ops_root():
    root = Path(tempfile.mkdtemp(prefix="deliver-ops-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server(ops_root):
    """``prefect server start`` on a free loopback port; yields the API URL."""
    port = free_port()
    home = ops_root / "prefect-home"
    home.mkdir()
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_API_URL=f"http://127.0.0.1:{port}/api", PREFECT_UI_API_URL=f"http://127.0.0.1:{port}/api")
    log = ops_root / "server.log"
    proc = subprocess.Popen([str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", 120, proc, log)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        drain_prefect_workers()  # while the server is up: no "Error logging to API" at exit
        stop_process_group(proc)


@pytest.fixture(scope="session")
def api(prefect_server):
    """This test process talks to the ops server while the fixture is active."""
    with use_api(prefect_server):
        yield prefect_server


SLOW_FFMPEG = """#!/bin/sh
# Throttle the deliverable transcodes of SLOW* titles (package folder SLOW*_v1/), nothing else.
case "$*" in
  */SLOW*_v1/*) exec "{ffmpeg}" -readrate 0.05 "$@" ;;
  *) exec "{ffmpeg}" "$@" ;;
esac
"""


@pytest.fixture(scope="session")
def served(api, ops_root):
    """``deliver serve`` against the ops server; yields a dict of paths/env for the tests."""
    deliver_home = ops_root / "deliver-home"
    deliver_home.mkdir()
    wrapper = ops_root / "ffmpeg-wrapper"
    wrapper.write_text(SLOW_FFMPEG.format(ffmpeg=shutil.which(os.environ.get("FFMPEG", "ffmpeg"))))
    wrapper.chmod(0o755)
    nightly_cfg = ops_root / "nightly.yaml"
    nightly_cfg.write_text("schedule: {cron: '30 3 * * *', timezone: 'Asia/Tokyo'}\nwatch_folders: []\n")
    env = dict(os.environ, PREFECT_API_URL=api, DELIVER_HOME=str(deliver_home), FFMPEG=str(wrapper),
               DELIVER_NIGHTLY_CONFIG=str(nightly_cfg), PREFECT_HOME=str(ops_root / "client-home"),
               PREFECT_LOGGING_EXTRA_LOGGERS="deliver", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = ops_root / "serve.log"
    proc = subprocess.Popen([str(VENV_BIN / "deliver"), "serve", "--limit", "4"], cwd=REPO, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_served(api, proc, log, 120)
        yield {"api": api, "log": log, "proc": proc, "home": deliver_home, "root": ops_root}
    finally:
        stop_process_group(proc)


@pytest.fixture(scope="session")
def sample_set(ops_root):
    from tasks.media.synth import make_sample_set

    return make_sample_set(ops_root / "media", layout="5.1", stereo=True)


@pytest.fixture
def hook():
    """A webhook receiver on 127.0.0.1; yields (url, received bodies)."""
    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # the name http.server calls
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
