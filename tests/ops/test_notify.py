"""`deliver automation create` makes an automation that POSTs to a webhook on a QC-failure event."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def test_qc_failure_event_reaches_the_webhook_through_the_automation(api, ops_root):
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
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        env = dict(os.environ, PREFECT_API_URL=api, PREFECT_HOME=str(ops_root / "client-home"))
        res = subprocess.run([str(Path(sys.executable).parent / "deliver"), "automation", "create", "--webhook-url",
                              url, "--name", "ops-test-notify"], capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "deliver.qc.failed" in res.stdout
        from prefect.events.worker import EventsWorker

        from flows.events import emit_qc_failed

        # The server's triggers service picks up a new automation asynchronously (seconds under
        # load): emit until the first webhook call arrives; one delivered event proves the path.
        deadline = time.monotonic() + 90
        while not received and time.monotonic() < deadline:
            emit_qc_failed(title="NOTIFY_v1", path="/masters/notify.mov", spec="netflix", report="/r/report.json",
                           errors=2, first_error="integrated loudness -19.0 LUFS, expected -27 ± 2")
            EventsWorker.drain_all()
            waited = time.monotonic() + 5
            while not received and time.monotonic() < waited:
                time.sleep(0.25)
        assert received, "no webhook call within 90 s"
        text = json.dumps(received[0])
        assert "deliver.qc.failed" in text and "NOTIFY_v1" in text
    finally:
        server.shutdown()
