"""The post house restarts its PostgreSQL-backed Prefect server while a deliver run, started from the
``deliver/deliver`` deployment (``deliver serve``), is in its deliverables step (a transcode throttled by an
ffmpeg wrapper). The run finishes, with no Crashed or Failed state on the way: the transcode does not talk
to the API, and the Prefect clients of the run and of ``deliver serve`` retry a refused connection (to a
server they reached before) with exponential backoff, about a minute with the default
PREFECT_CLIENT_MAX_RETRIES=5, longer than the restart. Its record, state history, logs and artifacts are in
PostgreSQL afterwards, its outputs verify, and its archive copy and schedule are in the PostgreSQL catalog.
Every concurrency slot it held across the restart is given back (the server keeps its leases on disk)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tasks.archive.hashing import hash_file_xxh128
from tasks.media.ffmpeg import ffmpeg_pids_writing_under
from tests.ops.test_served import _wait_final
from tests.postgres import VENV_BIN, PrefectServer, stop_process_group, use_api, wait_served
from tests.scaleout.test_pg_catalog import plain_url, psql

REPO = Path(__file__).resolve().parents[2]
# Only the deliverable transcodes of the RESTART title (its package folder RESTART_v1/) are throttled:
# 0.1x real time makes the 8 s sample master's deliverables step last about a minute.
SLOW_FFMPEG = """#!/bin/sh
case "$*" in
  */RESTART_v1/*) exec "{ffmpeg}" -readrate 0.1 "$@" ;;
  *) exec "{ffmpeg}" "$@" ;;
esac
"""


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


@pytest.fixture(scope="module")
def house(pg_cluster, tmp_path_factory):
    """Its own PostgreSQL-backed server (it is restarted here; the session's server is left alone) and a
    ``deliver serve`` against it, with the archive catalog on the same cluster."""
    root = tmp_path_factory.mktemp("restart")
    server = PrefectServer(home=root / "server-home",
                           db_url=pg_cluster.url(pg_cluster.create_database("prefect_restart"), driver="asyncpg"))
    server.start()
    catalog = pg_cluster.create_database("catalog_restart")
    wrapper = root / "ffmpeg-wrapper"
    wrapper.write_text(SLOW_FFMPEG.format(ffmpeg=shutil.which(os.environ.get("FFMPEG", "ffmpeg"))))
    wrapper.chmod(0o755)
    env = dict(server.env(), PREFECT_HOME=str(root / "client-home"), DELIVER_HOME=str(root / "deliver-home"),
               FFMPEG=str(wrapper), DELIVER_CATALOG_URL=plain_url(pg_cluster, catalog),
               DELIVER_STORAGE_CONFIG=str(root / "no-storage.yaml"),
               DELIVER_NIGHTLY_CONFIG=str(root / "nightly.yaml"))
    (root / "nightly.yaml").write_text("schedule: {cron: '0 2 * * *', timezone: 'UTC'}\nwatch_folders: []\n")
    log = root / "serve.log"
    serve = subprocess.Popen([str(VENV_BIN / "deliver"), "serve", "--limit", "2", "--no-schedule"], cwd=REPO,
                             stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_served(server.api_url, serve, log, 180)
        with use_api(server.api_url):
            yield {"server": server, "serve": serve, "log": log, "root": root, "env": env, "catalog": catalog}
    finally:
        stop_process_group(serve)
        server.stop()


def test_server_restart_during_the_deliverables_step_the_run_finishes(house, pg_cluster):
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )

    from tasks.media.synth import make_sample_set

    root, server = house["root"], house["server"]
    media = make_sample_set(root / "media", layout="5.1", stereo=True)
    out, vault = root / "out", root / "vault"
    request = {"master": str(media.master), "mixes": [str(media.mixes["5.1"]), str(media.mixes["2.0"])],
               "spec": "demo", "title": "RESTART", "out": str(out), "archive": [str(vault)]}
    with _client() as c:
        dep = c.read_deployment_by_name("deliver/deliver")
        run_id = c.create_flow_run_from_deployment(dep.id, parameters={"request": request}).id
    package = out / "RESTART_v1"
    deadline = time.monotonic() + 300
    while not (package.exists() and ffmpeg_pids_writing_under(package) and list(package.rglob("*.partial*"))):
        assert time.monotonic() < deadline, house["log"].read_text()[-3000:]
        time.sleep(0.3)
    with _client() as c:
        running = {tr.name: tr.state.type.value for tr in c.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))) if tr.state}
    assert [s for n, s in running.items() if n.startswith("deliverables")] == ["RUNNING"], running

    # the restart: the server goes away while ffmpeg writes the deliverables, then comes back on its port
    t_stop = time.monotonic()
    server.stop()
    time.sleep(5)  # clients meet refused connections for a while
    assert ffmpeg_pids_writing_under(package), "the transcode does not depend on the API"
    server.start()
    down_s = time.monotonic() - t_stop
    still_running_after_restart = bool(ffmpeg_pids_writing_under(package))

    fr = _wait_final(run_id, 600)
    assert fr.state.is_completed(), (fr.state, house["log"].read_text()[-4000:])
    print(f"server down {down_s:.1f} s (stop, 5 s, start until /health); transcode still running after "
          f"the restart: {still_running_after_restart}; run {fr.state.name}: {fr.state.message}")
    assert still_running_after_restart, "the restart must fall inside the deliverables step"

    # the run's record, its task runs, logs and artifacts are on the server (in PostgreSQL)
    with _client() as c:
        tasks = {tr.name: tr.state.type.value for tr in c.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))) if tr.state}
        logs: list[str] = []
        while page := c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                                  limit=200, offset=len(logs)):
            logs += [m.message for m in page]
        history = [s.type.value for s in c.read_flow_run_states(run_id)]
        arts = {a.key: a for a in c.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))) if a.key}
    assert [s for n, s in tasks.items() if n.startswith("deliverables")] == ["COMPLETED"], tasks
    assert not [n for n, s in tasks.items() if s not in ("COMPLETED", "CACHED")], tasks
    assert psql(pg_cluster, "prefect_restart", f"SELECT state_type FROM flow_run WHERE id = '{run_id}'") == \
        [["COMPLETED"]]
    # no Crashed/Failed on the way: the outage fell inside the clients' retry window (docs/operations.md)
    print("flow run states:", history)
    assert history[-1] == "COMPLETED" and not {"CRASHED", "FAILED"} & set(history), history
    # logs from before the restart (the deliverable transcode commands) and after it (the final state)
    assert any(m.startswith("$ ") and "RESTART_v1" in m for m in logs), logs[:20]
    # the slots the run held across the restart (the deployment's and the ffmpeg tag's) are given back: the
    # server keeps leases on disk (tests/postgres.py); with Prefect's in-memory default tag:ffmpeg kept 1
    slots = psql(pg_cluster, "prefect_restart", "SELECT name, active_slots FROM concurrency_limit_v2 ORDER BY name")
    print("concurrency limits (name, active slots) after the run:", slots)
    assert slots and all(n == "0" for _, n in slots), slots
    assert "Finished in state Completed()" in logs, logs[-20:]
    assert {"qc-summary-restart-v1", "report-restart-v1"} <= set(arts), sorted(arts)
    assert float(arts["deliverables-restart-v1"].data) == 100.0

    # the outputs: delivered, every deliverable's recorded hash is the file's, no partial file left
    report = json.loads((out / "report.json").read_text())
    assert report["delivered"] is True and report["verdict"] == "pass"
    assert {d["kind"] for d in report["deliverables"]} >= {"mezzanine", "screener"}
    for d in report["deliverables"]:
        assert hash_file_xxh128(d["path"]) == d["xxh128"], d["name"]
    assert not list(out.rglob("*.partial*"))
    # the archive copy and the schedule are in the PostgreSQL catalog
    assert psql(pg_cluster, house["catalog"], "SELECT kind, last_verify_ok FROM copies WHERE title = 'RESTART'") \
        == [["local", "t"]]
    states = dict(psql(pg_cluster, house["catalog"], "SELECT item, state FROM schedule_items WHERE title = "
                                                     "'RESTART' AND kind = 'deliverable'"))
    assert states == {"mezzanine": "archived", "screener": "archived"}
    assert subprocess.run([str(VENV_BIN / "deliver"), "verify", str(vault / "RESTART_v1")], env=house["env"],
                          capture_output=True, timeout=120).returncode == 0
