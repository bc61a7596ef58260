"""The nightly fan-out over a ``distributed`` cluster given by address (``fan_out.dask_address`` of the
nightly config) gives the same summary as the thread runner, and its items run in the cluster's worker
processes; 30 small items queued at once on its two workers all complete, none failed or lost. Against the
PostgreSQL-backed Prefect server. Throughput: ``python -m bench.workers``."""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

import pytest

from tests.postgres import use_api

pytestmark = pytest.mark.workers


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 2 s-programme 320x180 ProRes master with 5.1 + 2.0 that passes the demo spec."""
    from bench.startup import make_clip

    return make_clip(tmp_path_factory.mktemp("dask-clip"))


@pytest.fixture(scope="module")
def watch(tmp_path_factory, clip):
    """Five tiny masters: three that pass the demo spec, one checked against Netflix's by a sidecar
    (fails: picture size, frame rate...), one that is not a movie (an error row)."""
    folder = tmp_path_factory.mktemp("dask-nightly") / "watch"
    folder.mkdir()
    for n in range(4):
        shutil.copyfile(clip, folder / f"title{n}.mov")
    (folder / "title3.mov.spec").write_text("netflix\n")
    (folder / "corrupt.mov").write_bytes(b"this is not a movie" * 100)
    return folder


@pytest.fixture(scope="module")
def dask_cluster():
    """Two single-threaded worker processes; each names itself in the summary's host column
    (DELIVER_WORKER_NAME ``dask-0``/``dask-1``, as on a render node). No Dask client stays current in this
    process, so the nightly reaches the cluster only by its address."""
    pytest.importorskip("distributed")
    from bench.workers import named_cluster

    with named_cluster(2, "dask") as (address, pids):
        yield address, pids


def _night(tmp: Path, watch: Path, runner: str, server, address: str | None = None):
    from bench.workers import night_config, run_night

    with use_api(server.api_url):
        night = run_night(night_config(tmp / runner, watch, runner, address, max_workers=2))
    return night.summary, night.flow_run_id


def _item_task_runs(server, flow_run_id, watch: Path) -> list[str]:
    """The final state of every ``nightly-qc-master`` task run the server recorded for a night's run."""
    from bench.workers import item_task_runs

    with use_api(server.api_url):
        runs = item_task_runs(flow_run_id, f"qc-{watch}/")
    return sorted(r.state.type.value for r in runs if r.state is not None)


def _findings(report: str) -> list[tuple[str, str, str]]:
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
    # (task-run states reach the server as events, written a moment after the run ends: wait up to 60 s)
    expected = ["COMPLETED"] * 4 + ["FAILED"]
    deadline = time.monotonic() + 60
    while True:
        recorded = [_item_task_runs(pg_prefect_server, run, watch) for run in (dask_run, thread_run)]
        if recorded == [expected, expected] or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert recorded == [expected, expected], recorded


def test_thirty_items_queued_at_once_on_two_workers_all_complete(pg_prefect_server, clip, dask_cluster, tmp_path,
                                                                  monkeypatch):
    """Load: 30 small QC items submitted at once to the two Dask workers: every one has exactly one task
    run, Completed, a pass row and its report; both workers took items, two at a time at most."""
    from bench.workers import item_task_runs, make_watch, most_in_flight, night_config, problems, run_night
    from tasks.nightly import NightlySummary

    monkeypatch.delenv("DELIVER_WORKER_NAME", raising=False)
    address, _ = dask_cluster
    watch = make_watch(tmp_path / "watch", clip, 30)
    with use_api(pg_prefect_server.api_url):
        night = run_night(night_config(tmp_path / "out", watch, address=address))
        assert problems(night, watch, 30, {"dask-0", "dask-1"}) == []
        runs = item_task_runs(night.flow_run_id, f"qc-{watch}/")
    assert isinstance(night.summary, NightlySummary)
    assert sorted(r.name for r in runs) == [f"qc-{watch}/item{i:04d}.mov" for i in range(30)]
    assert most_in_flight(runs) == 2  # both workers busy at once, never more than the cluster's two threads

    per_worker: dict[str, int] = {}
    for r in night.summary.rows:
        per_worker[r.host] = per_worker.get(r.host, 0) + 1
    node = platform.node()
    assert set(per_worker) == {f"{node}/dask-0", f"{node}/dask-1"} and sum(per_worker.values()) == 30, per_worker
    # the state file records every item once, as passed; one report per item and nothing half-written
    state = json.loads((tmp_path / "out" / "state.json").read_text())
    assert sorted(state) == sorted(str(p) for p in watch.iterdir())
    assert {v["verdict"] for v in state.values()} == {"pass"}
    reports = sorted(p.name for p in (tmp_path / "out" / "reports").rglob("*") if p.is_file())
    assert len(reports) == 30 and all(n.endswith(".report.json") for n in reports), reports
