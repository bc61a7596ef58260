"""The nightly fan-out over a ``distributed`` cluster given by address (``fan_out.dask_address`` of the
nightly config) gives the same summary as the thread runner, and its items run in the cluster's worker
processes. Against the PostgreSQL-backed Prefect server."""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.workers


@pytest.fixture(scope="module")
def watch(tmp_path_factory):
    """Five tiny masters: three that pass the demo spec, one checked against Netflix's by a sidecar
    (fails: picture size, frame rate...), one that is not a movie (an error row)."""
    from bench.startup import make_clip

    root = tmp_path_factory.mktemp("dask-nightly")
    clip = make_clip(root / "clip")
    folder = root / "watch"
    folder.mkdir()
    for n in range(4):
        shutil.copyfile(clip, folder / f"title{n}.mov")
    (folder / "title3.mov.spec").write_text("netflix\n")
    (folder / "corrupt.mov").write_bytes(b"this is not a movie" * 100)
    return folder


@pytest.fixture
def dask_cluster():
    """Two single-threaded worker processes; each names itself in the summary's host column
    (DELIVER_WORKER_NAME, as on a render node)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        def name_worker(dask_worker):
            os.environ["DELIVER_WORKER_NAME"] = f"dask-{dask_worker.name}"
            return os.getpid()

        pids = client.run(name_worker)
        yield cluster.scheduler_address, pids


def _night(tmp: Path, watch: Path, runner: str, server, address: str | None = None):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deployments import NightlyRequest
    from flows.nightly import nightly_qc_flow

    out = tmp / runner
    out.mkdir()
    fan_out = {"mode": "tasks", "task_runner": runner, "max_workers": 2}
    if address:
        fan_out["dask_address"] = address
    cfg = out / "nightly.yaml"
    cfg.write_text(json.dumps({"watch_folders": [{"path": str(watch), "spec": "demo", "patterns": ["*.mov"]}],
                               "reports": str(out / "reports"), "state": str(out / "state.json"),
                               "fixity": {"catalog": False}, "fan_out": fan_out}))
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        state = nightly_qc_flow(NightlyRequest(config=str(cfg), night="2026-12-07"), return_state=True)
    return state.result(raise_on_failure=False), state.state_details.flow_run_id


def _item_task_runs(server, flow_run_id, watch: Path) -> list[str]:
    """The final state of every ``nightly-qc-master`` task run the server recorded for a night's run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                     task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=f"qc-{watch}")))
    return sorted(r.state.type.value for r in runs if r.state is not None and r.name.startswith(f"qc-{watch}/"))


def _findings(report: str) -> list[tuple[str, str]]:
    doc = json.loads(Path(report).read_text())
    return sorted((f["check"], f["severity"], f["message"]) for f in doc["findings"])


def test_dask_fan_out_by_address_gives_the_thread_runners_summary(pg_prefect_server, watch, dask_cluster, tmp_path,
                                                                   monkeypatch):
    from tasks.nightly import NightlySummary

    monkeypatch.delenv("DELIVER_WORKER_NAME", raising=False)
    address, pids = dask_cluster
    dask, dask_run = _night(tmp_path, watch, "dask", pg_prefect_server, address)
    thread, thread_run = _night(tmp_path, watch, "thread", pg_prefect_server)
    assert isinstance(dask, NightlySummary) and isinstance(thread, NightlySummary)

    by_dask = {Path(r.item).name: r for r in dask.rows}
    by_thread = {Path(r.item).name: r for r in thread.rows}
    assert set(by_dask) == set(by_thread) == {"title0.mov", "title1.mov", "title2.mov", "title3.mov", "corrupt.mov"}
    assert dask.problems == thread.problems == 2  # the Netflix-spec master fails, the corrupt one errors
    for name, row in by_dask.items():
        other = by_thread[name]
        # verdict, spec, "<reason> (<source> spec); N error(s), M warning(s): first error", or the error text
        assert (row.kind, row.result, row.spec, row.detail) == (other.kind, other.result, other.spec, other.detail)
        if row.report:
            assert _findings(row.report) == _findings(other.report), name  # every finding: check, severity, message
    assert by_dask["title3.mov"].result == "fail" and by_dask["corrupt.mov"].result == "error"
    assert {by_dask[f"title{n}.mov"].result for n in range(3)} == {"pass"}

    # the Dask items ran in the cluster's two worker processes, the thread items in this one
    node = platform.node()
    assert len(set(pids.values()) | {os.getpid()}) == 3
    ran_on = {r.host for r in dask.rows if r.report}
    assert ran_on == {f"{node}/dask-0", f"{node}/dask-1"}, ran_on
    assert {r.host for r in thread.rows if r.report} == {node}
    # and the PostgreSQL-backed server recorded each item's task run under its night, from either runner
    assert _item_task_runs(pg_prefect_server, dask_run, watch) \
        == _item_task_runs(pg_prefect_server, thread_run, watch) \
        == ["COMPLETED"] * 4 + ["FAILED"]
