"""`deliver qc` with PREFECT_API_URL set records its run on that server (no embedded API)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_cli_run_is_recorded_on_the_configured_server(api, ops_root, sample_set, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    master = str(sample_set.master)
    env = dict(os.environ, PREFECT_API_URL=api, PREFECT_HOME=str(tmp_path / "client-home"))
    proc = subprocess.run([str(Path(sys.executable).parent / "deliver"), "qc", master, "--spec", "ebu-r128",
                           "--json", str(tmp_path / "qc.json")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr  # verdict aside, the run happened
    assert "Starting temporary server" not in proc.stdout + proc.stderr  # it used the configured server
    verdict = json.loads((tmp_path / "qc.json").read_text())["verdict"]
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_=Path(master).name)))
    assert verdict in ("pass", "fail")
    # the run's state says the verdict: Completed on pass, Failed named "QC failed" on fail (exit 1 still)
    want = ("COMPLETED", "Completed") if verdict == "pass" else ("FAILED", "QC failed")
    assert any(r.state and (r.state.type.value, r.state.name) == want for r in runs), [
        (r.name, r.state.name if r.state else None) for r in runs]
    assert proc.returncode == (0 if verdict == "pass" else 1)
