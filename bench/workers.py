"""Nightly throughput on Dask workers: 30 small QC items queued at once on two worker processes vs the same
30 run one by one on one worker.

Run: ``.venv/bin/python -m bench.workers [--items 30] [--repeat 3]`` (or ``make bench``; exit 1 when an
item failed or was lost).

Generates one master (:func:`bench.startup.make_clip`: 320x180 25p ProRes, 2 s of programme after a 3 s
head, 5.1 + 2.0) and copies it ``--items`` times into a watch folder. A ``distributed`` LocalCluster of
two single-threaded worker processes and one of a single worker are started once (each worker names
itself ``dask-<n>`` through ``DELIVER_WORKER_NAME``, the summary's host column), and warmed with a
two-item night each. Then, alternating so machine load hits both alike, ``--repeat`` times each, the
nightly flow (:func:`flows.nightly.nightly_qc_flow`) QCs every item with ``fan_out: {task_runner: dask,
dask_address: <the cluster>}``: every item submitted at once, the cluster's workers taking them as they
free up. Throughput = items / wall time of the night (scan, fan-out, summary, artifacts included).

An item counts only if the Prefect server recorded exactly one ``qc-<path>`` task run for it, Completed,
and the summary a ``pass`` row with its report: a failed, crashed, duplicated or missing run fails the
bench (exit 1). The most items in flight at once (from the task runs' start and end times) shows the
one-worker side really ran them one by one. The worker processes' CPU (with their ffmpeg children) over
the night's wall gives the cores one worker keeps busy: one item already decodes picture and audio in
parallel ffmpeg processes, so the best the two workers can do is ``min(2, cores / that)``, printed
beside the ratio. API: ``PREFECT_API_URL`` if set, else the local server of
:mod:`flows.server` in a temporary ``DELIVER_HOME`` (stopped at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ITEMS = 30


def cpu_s(pids: list[int]) -> float:
    """CPU seconds so far of processes ``pids`` and their waited-for children (each item's ffmpeg)."""
    import psutil  # distributed's own dependency

    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
    return total


@contextmanager
def named_cluster(n_workers: int, label: str = "dask",
                  env: dict[str, str] | None = None) -> Iterator[tuple[str, dict[str, int]]]:
    """A ``distributed`` LocalCluster of ``n_workers`` single-threaded worker processes on loopback, each
    named ``<label>-<n>`` in DELIVER_WORKER_NAME (as a render node sets it). Yields the scheduler's address and
    ``{worker address: pid}``. ``env``: more environment for the worker processes.

    The client that names the workers is closed before the cluster is handed out: prefect-dask's runner
    prefers a process's current Dask client to its configured address, so a client left open here would
    take the nightly's items whatever its ``dask_address`` says."""
    import distributed

    with distributed.LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=":0", env=env or {}) as cluster:
        def name_worker(dask_worker: Any) -> int:
            os.environ["DELIVER_WORKER_NAME"] = f"{label}-{dask_worker.name}"
            return os.getpid()

        with distributed.Client(cluster) as client:
            pids = client.run(name_worker)
        try:
            distributed.get_client()
        except ValueError:
            pass  # no current client: the runner connects by address
        else:
            raise RuntimeError("a Dask client is still current in this process")
        yield cluster.scheduler_address, pids


def make_watch(folder: Path, clip: Path, n: int) -> Path:
    """``folder`` with ``n`` copies of ``clip`` (item0000.mov ...)."""
    folder.mkdir(parents=True)
    for i in range(n):
        shutil.copyfile(clip, folder / f"item{i:04d}.mov")
    return folder


def night_config(out: Path, watch: Path, task_runner: str = "dask", address: str | None = None,
                 max_workers: int = 2) -> Path:
    """A nightly config QC'ing every ``*.mov`` of ``watch`` against the demo spec, reports and state under
    ``out``, no fixity, items fanned out as tasks on ``task_runner`` (the Dask cluster at ``address``)."""
    out.mkdir(parents=True, exist_ok=True)
    fan_out: dict[str, Any] = {"mode": "tasks", "task_runner": task_runner, "max_workers": max_workers}
    if address:
        fan_out["dask_address"] = address
    cfg = out / "nightly.yaml"
    cfg.write_text(json.dumps({"watch_folders": [{"path": str(watch), "spec": "demo", "patterns": ["*.mov"]}],
                               "reports": str(out / "reports"), "state": str(out / "state.json"),
                               "fixity": {"catalog": False}, "fan_out": fan_out}))
    return cfg


@dataclass
class Night:
    summary: Any  # tasks.nightly.NightlySummary, or what a failed run returned
    flow_run_id: Any
    wall_s: float
    state: str  # the night's final state type: COMPLETED when every item passed


def run_night(config: Path, night: str = "2026-12-07") -> Night:
    """The nightly flow on ``config``, in this process, timed."""
    from flows.deployments import NightlyRequest
    from flows.nightly import nightly_qc_flow

    t0 = time.perf_counter()
    state = nightly_qc_flow(NightlyRequest(config=str(config), night=night), return_state=True)
    wall = time.perf_counter() - t0
    return Night(state.result(raise_on_failure=False), state.state_details.flow_run_id, wall, state.type.value)


def item_task_runs(flow_run_id: Any, prefix: str) -> list[Any]:
    """Every task run the server recorded under ``flow_run_id`` whose name starts with ``prefix``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r for r in runs if r.name.startswith(prefix)]


def most_in_flight(runs: list[Any]) -> int:
    """The most task runs running at the same time, from their start and end times."""
    edges = sorted([(r.start_time, 1) for r in runs if r.start_time and r.end_time]
                   + [(r.end_time, -1) for r in runs if r.start_time and r.end_time])
    best = cur = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        cur += step
        best = max(best, cur)
    return best


def problems(night: Night, watch: Path, n_items: int, workers: set[str]) -> list[str]:
    """Why the night lost or failed an item: every item needs one Completed task run, and a pass row with
    its report, from one of ``workers`` (``DELIVER_WORKER_NAME``s)."""
    from tasks.nightly import NightlySummary

    if not isinstance(night.summary, NightlySummary):
        return [f"the night returned {night.summary!r}"]
    out = [] if night.state == "COMPLETED" else [f"the night's run ended {night.state}"]
    runs = item_task_runs(night.flow_run_id, f"qc-{watch}/")
    names = [r.name for r in runs]
    if len(runs) != n_items or len(set(names)) != n_items:
        out.append(f"{len(runs)} task run(s) for {len(set(names))} distinct item(s), want {n_items} once each")
    out += [f"{r.name}: {r.state.type.value}" for r in runs if r.state is None or not r.state.is_completed()]
    rows = [r for r in night.summary.rows if r.kind == "qc"]
    if len(rows) != n_items or night.summary.problems:
        out.append(f"summary: {len(rows)} row(s), {night.summary.problems} problem(s), want {n_items} and 0")
    out += [f"{r.item}: {r.result} {r.detail}" for r in rows if r.result != "pass" or not Path(r.report).is_file()]
    out += [f"{r.item}: ran on {r.host}, not on {sorted(workers)}" for r in rows
            if r.host.rpartition("/")[2] not in workers]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from bench.startup import make_clip, temporary_home
    from flows.server import ensure_api

    load_before = os.getloadavg()[0]
    configured = os.environ.get("PREFECT_API_URL")
    walls: dict[int, list[float]] = {1: [], 2: []}
    in_flight: dict[int, int] = {}
    busy: dict[int, list[float]] = {1: [], 2: []}
    spread: dict[str, int] = {}
    lost: list[str] = []
    with temporary_home("bench-workers-") as tmp:
        ensure_api(announce=False)
        clip = make_clip(tmp / "clip")
        watch = make_watch(tmp / "watch", clip, args.items)
        warm = make_watch(tmp / "warm", clip, 2)
        quiet = {"PREFECT_LOGGING_LEVEL": "ERROR"}  # the table, not a Prefect warning per task
        with named_cluster(1, "one", quiet) as (one, pids1), named_cluster(2, "two", quiet) as (two, pids2):
            pids = {1: list(pids1.values()), 2: list(pids2.values())}
            names = {1: {"one-0"}, 2: {"two-0", "two-1"}}
            for n, address in ((1, one), (2, two)):  # imports and first-run caches of every worker process
                run_night(night_config(tmp / f"warm-{n}", warm, address=address))
            for rep in range(args.repeat):
                for n, address in ((1, one), (2, two)):
                    cpu0 = cpu_s(pids[n])
                    night = run_night(night_config(tmp / f"run{rep}-{n}", watch, address=address))
                    busy[n].append((cpu_s(pids[n]) - cpu0) / night.wall_s)
                    lost += [f"{n} worker(s), run {rep}: {p}" for p in problems(night, watch, args.items,
                                                                                names[n])]
                    walls[n].append(night.wall_s)
                    in_flight[n] = max(in_flight.get(n, 0),
                                       most_in_flight(item_task_runs(night.flow_run_id, f"qc-{watch}/")))
                    if n == 2 and hasattr(night.summary, "rows"):
                        for r in night.summary.rows:
                            spread[r.host] = spread.get(r.host, 0) + 1
    load_after = os.getloadavg()[0]

    per_min = {n: args.items / statistics.median(w) * 60 for n, w in walls.items()}
    ratio = per_min[2] / per_min[1]
    cores_one = statistics.median(busy[1])
    ceiling = min(2.0, (os.cpu_count() or 1) / cores_one)
    api = f"the configured server {configured}" if configured else "the local server (flows.server)"
    print(f"\n{args.items} nightly QC items (2 s-programme 320x180 ProRes, 5.1 + 2.0, demo spec), median of "
          f"{args.repeat}, {os.cpu_count()} cores, API: {api}\n")
    print("| fan-out | night wall s (runs) | items/min | most items in flight | cores the workers kept busy |")
    print("|---|---|---|---|---|")
    for n, label in ((1, "one by one on one Dask worker"), (2, "queued at once on two Dask workers")):
        runs = ", ".join(f"{w:.1f}" for w in walls[n])
        print(f"| {label} | {statistics.median(walls[n]):.1f} ({runs}) | {per_min[n]:.1f} | {in_flight[n]} "
              f"| {statistics.median(busy[n]):.2f} |")
    print(f"\nitems per worker (two workers, all runs): {json.dumps(spread, sort_keys=True)}")
    print(f"**{ratio:.2f}x** the one-worker throughput; best possible here {ceiling:.2f}x (one worker keeps "
          f"{cores_one:.2f} of {os.cpu_count()} cores busy). Load average (1 min) {load_before:.2f} before, "
          f"{load_after:.2f} after: figures under load from other jobs are not the fan-out's.")
    if lost:
        print("\nfailed or lost items:\n" + "\n".join(f"- {p}" for p in lost), file=sys.stderr)
        return 1
    print(f"none of the {2 * args.items * args.repeat} items failed or was lost")
    return 0


if __name__ == "__main__":
    sys.exit(main())
