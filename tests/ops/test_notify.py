"""`deliver automation create` makes an automation that POSTs to a webhook on a QC-failure event, with a
readable message, the title, the verdict and the run's link; a bad parameter sends a different event."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def test_qc_failure_event_reaches_the_webhook_through_the_automation(api, ops_root, hook):
    url, received = hook

    env = dict(os.environ, PREFECT_API_URL=api, PREFECT_HOME=str(ops_root / "client-home"))
    res = subprocess.run([str(Path(sys.executable).parent / "deliver"), "automation", "create", "--webhook-url",
                          url, "--name", "ops-test-notify"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "deliver.qc.failed" in res.stdout and "deliver.input.refused" in res.stdout
    from prefect.events.worker import EventsWorker

    from flows.events import emit_input_refused, emit_qc_failed, run_url

    link = run_url("0f0e0d0c-0b0a-4908-8706-050403020100")
    assert link == f"{api.rsplit('/api', 1)[0]}/runs/flow-run/0f0e0d0c-0b0a-4908-8706-050403020100"
    # The server's triggers service picks up a new automation asynchronously (seconds under
    # load): emit until the first webhook call arrives; one delivered event proves the path.
    deadline = time.monotonic() + 90
    while not received and time.monotonic() < deadline:
        emit_qc_failed(title="NOTIFY", version="v1", path="/masters/notify.mov", spec="netflix",
                       report="/r/report.json", errors=2, url=link,
                       first_error="integrated loudness -19.0 LUFS, expected -27 ± 2",
                       message="QC failed: 2 errors (first: loudness.integrated: integrated loudness -19.0 LUFS)")
        EventsWorker.drain_all()
        waited = time.monotonic() + 5
        while not received and time.monotonic() < waited:
            time.sleep(0.25)
    assert received, "no webhook call within 90 s"
    call = received[0]
    assert call["text"].startswith("deliver: NOTIFY v1: QC failed: 2 errors")  # the subject
    body = call["body"]
    assert body.splitlines()[0] == ("NOTIFY v1: QC failed: 2 errors (first: loudness.integrated: integrated "
                                    "loudness -19.0 LUFS)")
    for line in ("Title: NOTIFY v1", "Verdict: fail", "Spec: netflix", "Report: /r/report.json", f"Run: {link}",
                 "First error: integrated loudness -19.0 LUFS, expected -27 ± 2"):
        assert line in body.splitlines(), (line, body)
    assert "{'" not in body and "payload" not in body  # no Python dict printout
    # a typo is another event, and reads as one
    seen = len(received)
    deadline = time.monotonic() + 60
    while not any("bad input" in r.get("body", "") for r in received[seen:]) and time.monotonic() < deadline:
        emit_input_refused(title="TYPO", version="v1", reason="picture master not found: /m/x.mov. Check the path.",
                           spec="demo", url=link)
        EventsWorker.drain_all()
        time.sleep(3)
    typo = [r for r in received[seen:] if "bad input" in r.get("body", "")]
    assert typo, received[seen:]
    assert typo[0]["body"].splitlines()[:3] == [
        "TYPO v1: bad input, run refused: picture master not found: /m/x.mov. Check the path.",
        "Title: TYPO v1", "Verdict: bad input"]
    assert "QC failed" not in typo[0]["body"]
