"""Two process workers on the ``mastering`` pool of a PostgreSQL-backed server (tests/scaleout/workers.py):
a deliver run and a nightly QC spread over both, the ``ffmpeg`` tag limit held across them (measured from the
task runs' timestamps), the loss of a worker (SIGKILL of it and everything under it) in the middle of a
nightly item and of a deliver run's deliverables, and the loss of an item's flow-run process alone.

Masters are 5 s of 320x180 (2 s of programme). Figures go to stdout (``pytest -s``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.archive.hashing import hash_file_xxh128
from tasks.media.files import PARTIAL_GLOB
from tests.scaleout import workers
from tests.scaleout.workers import FFMPEG_LIMIT, WORKERS, MasteringPool, max_overlap

pytestmark = [pytest.mark.workers]
mastering_pool = workers.mastering_pool  # the session fixture

N_MASTERS = 6
TITLE = "POOL"
PKG = f"{TITLE}_v1"
LAYBACK = f"work/{PKG}_layback.mov"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A tiny sample set (picture + 5.1 + 2.0) and its married master (what a nightly watch folder holds)."""
    from specs.loader import load_spec
    from tasks.layback import layback, plan_layback
    from tasks.media.probe import probe
    from tasks.media.synth import MasterSpec, make_sample_set

    root = tmp_path_factory.mktemp("media")
    sample = make_sample_set(root / "set", layout="5.1", stereo=True, master=MasterSpec(programme_s=2, head_s=3))
    spec = load_spec("demo")
    plan = plan_layback(probe(sample.master), [probe(p) for p in sample.mixes.values()], spec)
    married = root / "married.mov"
    layback(plan, spec, married)
    return {"sample": sample, "married": married}


def _deliver_parameters(media, out: Path) -> dict:
    s = media["sample"]
    return {"request": {"master": str(s.master), "mixes": [str(s.mixes["5.1"]), str(s.mixes["2.0"])], "spec": "demo",
                        "title": TITLE, "out": str(out)}}


def _watch(media, folder: Path, names: list[str]) -> Path:
    """A watch folder of ``names`` (copies of the married master) and its nightly config over the pool."""
    folder.mkdir(parents=True)
    for name in names:
        shutil.copyfile(media["married"], folder / name)
    cfg = folder.parent / f"{folder.name}.yaml"
    cfg.write_text(json.dumps({"watch_folders": [{"path": str(folder), "spec": "demo"}], "fixity": {"catalog": False},
                               "fan_out": {"mode": "deployments", "deployment": "qc-item/qc-item", "resubmits": 1}}))
    return cfg


def _item_runs(pool: MasteringPool, folder: Path) -> list:
    return [fr for fr in pool.flow_runs("qc-item") if str(folder) in fr.name]


def _worker_of(fr) -> str:
    return (fr.labels or {}).get("prefect.worker.name", "")


def _assert_outputs_verified(out: Path) -> dict:
    """report.json says delivered; every deliverable it lists is there with its size and xxh128, probed."""
    report = json.loads((out / "report.json").read_text())
    assert report["delivered"] is True, report.get("verdict")
    made = report["deliverables"]
    assert {Path(d["path"]).name for d in made} >= {f"{PKG}_mezzanine.mov", f"{PKG}_screener.mp4"}, made
    for d in made:
        path = Path(d["path"])
        assert path.stat().st_size == d["size"] and hash_file_xxh128(path) == d["xxh128"], d["name"]
        if path.suffix in (".mov", ".mp4"):
            assert d["format"] and d["format"]["video_codec"], d
    assert not list(out.rglob(PARTIAL_GLOB))
    return report


def test_a_deliver_deployment_run_completes_on_the_pool(mastering_pool, media, tmp_path):
    out = tmp_path / "out"
    run = mastering_pool.run_deployment("deliver/deliver", _deliver_parameters(media, out))
    fr = mastering_pool.wait(run, timeout_s=400)
    assert fr.state_type.value == "COMPLETED", fr.state.message
    assert _worker_of(fr) in WORKERS
    _assert_outputs_verified(out)


def test_a_nightly_qc_spreads_over_both_workers_within_the_ffmpeg_limit(mastering_pool, media, tmp_path):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    watch = tmp_path / "watch"
    cfg = _watch(media, watch, [f"m{i}.mov" for i in range(N_MASTERS)])
    run = mastering_pool.run_deployment("nightly-qc/nightly-qc", {"request": {"config": str(cfg), "force_all": True,
                                                                              "night": "2026-12-01"}})
    fr = mastering_pool.wait(run, timeout_s=600)
    with mastering_pool.client() as c:
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run])))
    table = next(a for a in arts if a.key == "nightly-summary")
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert fr.state_type.value in ("COMPLETED", "FAILED"), fr.state.message  # FAILED: a QC verdict, not an error
    qc = [r for r in rows if r["kind"] == "qc"]
    assert sorted(Path(r["item"]).name for r in qc) == sorted(p.name for p in watch.iterdir())
    assert all(r["result"] in ("pass", "fail") and Path(r["report"]).is_file() for r in qc), qc
    by_worker = {w: sum(1 for r in qc if r["host"].endswith("/" + w)) for w in WORKERS}
    items = _item_runs(mastering_pool, watch)
    assert len(items) == N_MASTERS and all(i.state_type.value == "COMPLETED" for i in items)
    assert {w: sum(1 for i in items if _worker_of(i) == w) for w in WORKERS} == by_worker
    assert all(by_worker.values()), f"items did not spread over both workers: {by_worker}"

    # The ffmpeg tag limit across workers: ffmpeg-tagged task runs of these items, from the server's timestamps.
    ids = {i.id for i in items}
    ffmpeg = [(t.start_time, t.end_time) for t in mastering_pool.task_runs("ffmpeg") if t.flow_run_id in ids]
    assert len(ffmpeg) == N_MASTERS and all(s and e for s, e in ffmpeg)
    items_at_once = max_overlap([(i.start_time, i.end_time) for i in items])
    ffmpeg_at_once = max_overlap(ffmpeg)
    print(f"\nnightly of {N_MASTERS} items: per worker {by_worker}; qc-item runs at once {items_at_once}, "
          f"ffmpeg tasks at once {ffmpeg_at_once} (limit {FFMPEG_LIMIT}); "
          f"run {(fr.end_time - fr.start_time).total_seconds():.0f} s")
    assert items_at_once > FFMPEG_LIMIT  # more items running at once than slots: the limit was contended
    assert ffmpeg_at_once <= FFMPEG_LIMIT


def _nightly_in_subprocess(pool: MasteringPool, cfg: Path, night: str) -> subprocess.Popen[str]:
    """The nightly parent on this machine (not on a worker of the pool, so losing a worker cannot take it)."""
    code = ("import json, sys\n"
            "from flows.deployments import NightlyRequest\n"
            "from flows.nightly import nightly_qc_flow\n"
            f"s = nightly_qc_flow(NightlyRequest(config={str(cfg)!r}, night={night!r}, force_all=True), "
            "return_state=True)\n"
            "print('SUMMARY ' + s.result(raise_on_failure=False).model_dump_json())\n")
    return subprocess.Popen(["nice", sys.executable, "-c", code], env=pool.env, cwd=pool.root, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _running_item(pool: MasteringPool, folder: Path, name: str):
    deadline = time.monotonic() + 60
    while True:
        runs = [fr for fr in _item_runs(pool, folder) if fr.name.endswith("/" + name) and _worker_of(fr)
                and fr.state_type.value == "RUNNING"]
        if runs:
            return runs[0]
        assert time.monotonic() < deadline, f"no running qc-item run of {name}"
        time.sleep(0.5)


def _wait_held(pool: MasteringPool, proc: subprocess.Popen | None = None, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not pool.held():
        assert proc is None or proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the held ffmpeg call was never reached"
        time.sleep(0.2)


def test_losing_a_worker_mid_item_the_item_is_qcd_once_by_the_other(mastering_pool, media, tmp_path):
    pool = mastering_pool
    watch = tmp_path / "watch"
    names = [f"n{i}.mov" for i in range(N_MASTERS - 1)] + ["victim.mov"]
    cfg = _watch(media, watch, names)
    pool.hold("*victim.mov*rawvideo*")  # the victim's QC decode (ffmpeg piping raw frames), not its probe
    parent = _nightly_in_subprocess(pool, cfg, "2026-12-02")
    try:
        _wait_held(pool, parent)
        victim = _running_item(pool, watch, "victim.mov")
        lost = _worker_of(victim)
        other = next(w for w in WORKERS if w != lost)
        killed = pool.kill_worker(lost)
        killed_at = dt.datetime.now(dt.UTC)
        assert any(c.startswith("sleep 600") for c in killed.values()), killed  # the held ffmpeg went with it
        output, _ = parent.communicate(timeout=600)
    finally:
        if parent.poll() is None:
            parent.kill()
        pool.start_worker(lost) if lost not in pool.workers else None
    assert parent.returncode == 0, output[-4000:]
    summary = json.loads(output.split("SUMMARY ", 1)[1])
    qc = [r for r in summary["rows"] if r["kind"] == "qc"]
    assert sorted(Path(r["item"]).name for r in qc) == sorted(names)  # every item counted once
    assert all(r["result"] in ("pass", "fail") for r in qc), qc
    row = next(r for r in qc if Path(r["item"]).name == "victim.mov")
    assert row["host"].endswith("/" + other), row

    runs = [fr for fr in _item_runs(pool, watch) if fr.name.endswith("/victim.mov")]
    crashed = [fr for fr in runs if fr.state_type.value == "CRASHED"]
    completed = [fr for fr in runs if fr.state_type.value == "COMPLETED"]
    assert len(runs) == 2 and len(crashed) == 1 and len(completed) == 1, [(r.name, r.state_type) for r in runs]
    assert crashed[0].id == victim.id and f"its worker {lost} was lost" in crashed[0].state.message
    assert _worker_of(completed[0]) == other
    assert "resubmitted as run" in output and "marked Crashed" in output
    detected_s = (crashed[0].state.timestamp - killed_at).total_seconds()
    print(f"\nworker {lost} SIGKILLed with {len(killed) - 1} process(es) under it; its run marked Crashed "
          f"{detected_s:.1f} s later; victim re-QC'd on {other}; runs per item "
          f"{ {Path(r['item']).name: r['host'].split('/')[-1] for r in qc} }")

    home = Path(pool.env["DELIVER_HOME"])
    state = json.loads((home / "nightly" / "state.json").read_text())  # parses: written atomically
    raw = (home / "nightly" / "state.json").read_text()
    for name in names:
        key = str((watch / name).resolve())
        assert key in state and raw.count(json.dumps(key)) == 1
    assert not [p for d in (watch, home) for p in d.rglob(PARTIAL_GLOB)]
    reports = list((home / "nightly" / "reports" / "2026-12-02").glob("victim.mov-*.report.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["verdict"] == row["result"]


def test_an_item_run_crashed_under_a_live_worker_is_resubmitted(mastering_pool, media, tmp_path):
    """The flow-run process of an item dies (the OOM killer) but its worker lives: the worker reports the run
    Crashed and the nightly parent submits the item again."""
    pool = mastering_pool
    watch = tmp_path / "watch"
    names = ["c0.mov", "crash.mov"]
    cfg = _watch(media, watch, names)
    pool.hold("*crash.mov*rawvideo*")
    parent = _nightly_in_subprocess(pool, cfg, "2026-12-03")
    try:
        _wait_held(pool, parent)
        worker, killed = pool.kill_held_run()
        output, _ = parent.communicate(timeout=600)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert worker in pool.workers and pool.workers[worker].poll() is None  # the worker lived on
    assert parent.returncode == 0, output[-4000:]
    qc = [r for r in json.loads(output.split("SUMMARY ", 1)[1])["rows"] if r["kind"] == "qc"]
    assert sorted(Path(r["item"]).name for r in qc) == names and all(r["result"] in ("pass", "fail") for r in qc)
    runs = [fr for fr in _item_runs(pool, watch) if fr.name.endswith("/crash.mov")]
    states = sorted(fr.state_type.value for fr in runs)
    assert states == ["COMPLETED", "CRASHED"], [(fr.name, fr.state_type, fr.state.message) for fr in runs]
    crashed = next(fr for fr in runs if fr.state_type.value == "CRASHED")
    assert _worker_of(crashed) == worker and "was lost" not in (crashed.state.message or "")  # the worker said so
    assert "Crashed (" in output and "resubmitted as run" in output
    reports = list((Path(pool.env["DELIVER_HOME"]) / "nightly" / "reports" / "2026-12-03").glob("crash.mov-*.json"))
    assert len(reports) == 1 and not list(watch.rglob(PARTIAL_GLOB))
    again = next(fr for fr in runs if fr is not crashed)
    print(f"\nflow-run process of crash.mov SIGKILLed under live {worker} ({len(killed)} processes); worker's "
          f"state: {crashed.state.message!r}; resubmitted run on {_worker_of(again)}")


def test_a_deliver_run_killed_with_its_worker_resumes_when_run_again(mastering_pool, media, tmp_path):
    pool = mastering_pool
    out = tmp_path / "out"
    pool.hold(f"*filter_complex*{PKG}/*.partial-*", after=True)  # the deliverables' encode, its partials written
    first = pool.run_deployment("deliver/deliver", _deliver_parameters(media, out))
    _wait_held(pool)
    with pool.client() as c:
        fr = c.read_flow_run(first)
    lost = _worker_of(fr)
    pool.kill_worker(lost)
    killed_at = time.monotonic()
    try:
        assert list((out / PKG).glob(f"{PKG}_mezzanine.partial-*.mov"))
        layback = out / LAYBACK
        before = (layback.stat().st_ino, layback.stat().st_mtime_ns)
        again = pool.run_deployment("deliver/deliver", _deliver_parameters(media, out))
        fr2 = pool.wait(again, timeout_s=400)
    finally:
        pool.start_worker(lost)
    assert fr2.state_type.value == "COMPLETED", fr2.state.message
    assert _worker_of(fr2) != lost
    assert (layback.stat().st_ino, layback.stat().st_mtime_ns) == before
    logs = pool.logs(again)
    assert f"reused {layback}" in logs  # the layback step's record and hash matched: not made again
    assert "left by an interrupted run" in logs  # the killed encode's partials removed before the deliverables
    _assert_outputs_verified(out)
    # and the killed run is not left Running: the server's unresponsive-run automation (deliver automation
    # unresponsive) marks it Crashed once 3 of its 30 s heartbeats are missed
    with pool.client() as c:
        while not (state := c.read_flow_run(first).state).is_final():
            assert time.monotonic() - killed_at < 240, f"the killed run is still {state.name} 240 s after"
            time.sleep(3)
    assert state.is_crashed() and state.message.startswith("no heartbeat for 90 s"), (state.name, state.message)
