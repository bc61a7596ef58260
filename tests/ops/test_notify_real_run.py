"""Notifications from real runs, not from events emitted by hand: ``deliver qc`` of a master that fails
its spec, and a run refused for a typo, each reach a webhook on 127.0.0.1 through the automation that
``deliver automation create`` makes (event ``deliver.qc.failed`` / ``deliver.input.refused`` ->
Prefect automation -> webhook block -> HTTP POST)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

DELIVER = str(Path(sys.executable).parent / "deliver")


def _wait_for(received: list[dict], pred, timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        hits = [r for r in received if pred(r.get("body", ""))]
        if hits:
            return hits
        time.sleep(0.5)
    return []


def test_a_failing_qc_and_a_typo_notify_through_the_automation(api, ops_root, hook, tmp_path):
    from tasks.media.synth import make_sample_set

    url, received = hook
    env = dict(os.environ, PREFECT_API_URL=api, PREFECT_HOME=str(ops_root / "client-home"),
               DELIVER_HOME=str(tmp_path / "home"))
    res = subprocess.run([DELIVER, "automation", "create", "--webhook-url", url, "--name", "ops-real-run-notify"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    # the server's triggers service loads a new automation asynchronously
    time.sleep(5)

    # a real QC failure: a picture-only master against a spec that wants a 5.1 and a 2.0 track
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=False)
    qc = subprocess.run([DELIVER, "qc", str(media.master), "--spec", "demo", "--json", str(tmp_path / "qc.json")],
                        capture_output=True, text=True, env=env, timeout=300)
    assert qc.returncode == 1, qc.stderr
    run_link = re.search(r"Run:\s+(\S+/runs/flow-run/[0-9a-f-]{36})", qc.stdout)  # the summary's last line
    assert run_link, (qc.stdout, qc.stderr)
    hits = _wait_for(received, lambda b: "Verdict: fail" in b and "master.mov" in b, 90)
    assert hits, received
    body = hits[0]["body"].splitlines()
    assert re.fullmatch(r"master\.mov: QC failed: 1 error \(first: metadata\.audio_tracks at \d\d:\d\d:\d\d:\d\d: "
                        r"0 audio tracks, spec wants 2 \(5\.1 main mix, 2\.0 stereo mix\)\)", body[0]), body
    assert "Title: master.mov" in body and "Verdict: fail" in body and "Spec: demo" in body
    assert f"Run: {run_link.group(1)}" in body, body  # the link is this run's page in the UI
    assert hits[0]["text"].startswith("deliver: master.mov: QC failed: 1 error")
    assert "{'" not in hits[0]["body"]  # no Python dict printout

    # a typo in a run started from the UI (the deployment form): the flow refuses it, a distinct event
    from flows.deployments import QCRequest
    from flows.qc import qc_flow

    missing = tmp_path / "masters" / "typo.mov"
    state = qc_flow(QCRequest(path=str(missing), spec="demo", report=str(tmp_path / "typo.json")),
                    return_state=True)
    assert state.is_failed() and state.name == "Bad input", state
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    typo = _wait_for(received, lambda b: "bad input" in b and "typo.mov" in b, 90)
    assert typo, received
    lines = typo[0]["body"].splitlines()
    assert lines[0] == f"typo.mov: bad input, run refused: master not found: {missing}. Check the path.", lines
    assert lines[1:3] == ["Title: typo.mov", "Verdict: bad input"]
    assert any(line.startswith("Run: http") and "/runs/flow-run/" in line for line in lines), lines
    assert "QC failed" not in typo[0]["body"]
