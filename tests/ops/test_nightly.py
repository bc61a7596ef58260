"""The nightly QC: schedule from configs, watch-folder scan (new/changed/touched), spec mapping
(folder map and sidecar), fixity rotation, and a run whose failures do not stop the others."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from flows.nightly import nightly_schedule
from specs.errors import BadInputError
from tasks.nightly import (
    NightlyConfig,
    NightlyState,
    WatchFolder,
    fixity_share,
    load_nightly_config,
    night_of,
    scan_watch_folders,
    spec_for_master,
)


def _cfg(tmp_path: Path, **extra) -> NightlyConfig:
    return NightlyConfig.model_validate({"watch_folders": [{"path": str(tmp_path / "netflix"), "spec": "netflix"},
                                                           {"path": str(tmp_path / "bcast"), "spec": "ebu-r128",
                                                            "patterns": ["*.mxf"], "recursive": False}], **extra})


def test_shipped_config_and_schedule_come_from_configs():
    cfg = load_nightly_config(Path(__file__).resolve().parents[2] / "configs" / "nightly.yaml")
    cron = nightly_schedule(cfg)
    assert (cron.cron, cron.timezone) == (cfg.schedule.cron, cfg.schedule.timezone) == ("0 2 * * *", "Europe/London")


def test_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "n.yaml"
    bad.write_text("schedule: {cron: '0 2 * *', timezone: Mars/Olympus}\n")
    with pytest.raises(BadInputError, match="n.yaml"):
        load_nightly_config(bad)
    bad.write_text("schedul: {}\n")
    with pytest.raises(BadInputError, match="schedul"):
        load_nightly_config(bad)


def test_night_is_the_date_in_the_configured_timezone():
    at = dt.datetime(2026, 3, 1, 17, 30, tzinfo=dt.UTC)  # 02:30 next day in Tokyo
    assert night_of(at, "Asia/Tokyo") == dt.date(2026, 3, 2)
    assert night_of(at, "America/Los_Angeles") == dt.date(2026, 3, 1)


def test_scan_finds_new_then_only_changed_masters_with_their_spec(tmp_path):
    (tmp_path / "netflix" / "s1").mkdir(parents=True)
    (tmp_path / "bcast" / "deep").mkdir(parents=True)
    a = tmp_path / "netflix" / "a.mov"
    b = tmp_path / "netflix" / "s1" / "b.mov"
    c = tmp_path / "bcast" / "c.mxf"
    for p, data in ((a, b"a" * 100), (b, b"b" * 100), (c, b"c" * 100)):
        p.write_bytes(data)
    (tmp_path / "netflix" / "x.mov.partial").write_bytes(b"partial")
    (tmp_path / "netflix" / "notes.txt").write_text("not media")
    (tmp_path / "bcast" / "deep" / "d.mxf").write_bytes(b"not scanned: not recursive")
    (tmp_path / "netflix" / "s1" / "b.mov.spec").write_text("amazon\n")  # sidecar wins over the folder
    cfg = _cfg(tmp_path)
    state = NightlyState(tmp_path / "state.json")
    items = {Path(i.path).name: i for i in scan_watch_folders(cfg, state)}
    assert set(items) == {"a.mov", "b.mov", "c.mxf"}
    assert (items["a.mov"].spec, items["a.mov"].spec_source, items["a.mov"].reason) == ("netflix", "folder", "new")
    assert (items["b.mov"].spec, items["b.mov"].spec_source) == ("amazon", "sidecar")
    assert items["c.mxf"].spec == "ebu-r128"
    for i in items.values():
        state.record(i, verdict="pass")
    state.save()

    state = NightlyState(tmp_path / "state.json")  # next night
    assert scan_watch_folders(cfg, state) == []
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes: not re-checked
    c.write_bytes(b"C" * 100)  # same size, new content
    os.utime(c, ns=(st.st_atime_ns, st.st_mtime_ns + 5 * 10**9))
    (tmp_path / "netflix" / "s1" / "b.mov.spec").write_text("apple\n")  # spec changed
    again = {Path(i.path).name: i for i in scan_watch_folders(cfg, state)}
    assert set(again) == {"c.mxf", "b.mov"}
    assert again["c.mxf"].reason == "changed" and again["b.mov"].spec == "apple"
    assert {Path(i.path).name for i in scan_watch_folders(cfg, state, force_all=True)} == {"a.mov", "b.mov", "c.mxf"}


def test_sidecar_yaml_path_is_relative_to_the_master(tmp_path):
    m = tmp_path / "m.mov"
    m.write_bytes(b"x")
    (tmp_path / "m.mov.spec").write_text("house.yaml\n")
    ref, source = spec_for_master(m, WatchFolder(path=str(tmp_path), spec="netflix"))
    assert (ref, source) == (str((tmp_path / "house.yaml").resolve()), "sidecar")


def test_fixity_rotation_verifies_everything_once_every_n_nights():
    now = dt.datetime(2026, 11, 21, 3, tzinfo=dt.UTC)
    recent = now - dt.timedelta(hours=1)
    copies = [(f"file:///vault/pkg{i:03d}", recent) for i in range(200)]
    n = 7
    nights = [dt.date(2026, 11, 21) + dt.timedelta(days=k) for k in range(n)]
    shares = [fixity_share(copies, night, n, now=now) for night in nights]
    seen = [u for s in shares for u in s]
    assert sorted(seen) == sorted(u for u, _ in copies)  # all of it, each exactly once in N nights
    assert max(len(s) for s in shares) < 200 / n * 2  # a share, not the lot
    assert fixity_share(copies, nights[0] + dt.timedelta(days=n), n, now=now) == shares[0]  # period N
    # growing the archive does not reshuffle existing copies
    grown = copies + [("file:///vault/new", recent)]
    assert set(shares[3]) <= set(fixity_share(grown, nights[3], n, now=now))
    # never verified, or overdue after missed nights: verified tonight whatever the bucket
    stale = [("file:///vault/never", None), ("file:///vault/old", now - dt.timedelta(days=30))]
    for night in nights:
        assert {"file:///vault/never", "file:///vault/old"} <= set(fixity_share(stale, night, n, now=now))


def _package(root: Path, name: str) -> Path:
    from tasks.archive.hashing import hash_file_xxh128
    from tasks.archive.mhl import write_mhl_generation

    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "a.bin").write_bytes(os.urandom(2048))
    write_mhl_generation(pkg, process="in-place", location=str(pkg), comment="test",
                         hashes={"a.bin": hash_file_xxh128(pkg / "a.bin")})
    return pkg


def test_nightly_run_qcs_verifies_and_summarises_one_failure_not_stopping_others(api, sample_set, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.deployments import NightlyRequest
    from flows.nightly import nightly_qc_flow
    from tasks.nightly import NightlySummary

    watch = tmp_path / "watch"
    watch.mkdir()
    good = watch / "good.mov"
    good.write_bytes(sample_set.master.read_bytes())
    (watch / "corrupt.mov").write_bytes(b"this is not a movie" * 100)
    vault = tmp_path / "vault"
    _package(vault, "OK_v1")
    bad = _package(vault, "BAD_v1")
    (bad / "a.bin").write_bytes(b"bit rot")
    cfg = tmp_path / "nightly.yaml"
    cfg.write_text(json.dumps({"schedule": {"cron": "0 2 * * *", "timezone": "UTC"},
                               "watch_folders": [{"path": str(watch), "spec": "demo"}],
                               "reports": str(tmp_path / "reports"), "state": str(tmp_path / "state.json"),
                               "fixity": {"rotation_nights": 1, "catalog": False, "uris": [str(vault)]}}))
    state = nightly_qc_flow(NightlyRequest(config=str(cfg), night="2026-11-21"), return_state=True)
    assert state.is_failed()  # a corrupt master and bit rot: problems, reported after everything ran
    summary = state.result(raise_on_failure=False)
    assert isinstance(summary, NightlySummary)  # the flow's typed result
    assert summary.problems == sum(r.result in ("fail", "error", "mismatch") for r in summary.rows) >= 2
    rows = {(r.kind, Path(r.item).name): r for r in summary.rows}
    with get_client(sync_client=True) as c:
        art = c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-summary"])))[0]
    table = json.loads(art.data) if isinstance(art.data, str) else art.data
    by_item = {(r["kind"], Path(r["item"].replace("file://", "")).name): r for r in table}
    assert by_item[("qc", "good.mov")]["result"] in ("pass", "fail")
    assert Path(by_item[("qc", "good.mov")]["report"]).is_file()
    assert by_item[("qc", "corrupt.mov")]["result"] == "error"
    assert by_item[("fixity", "OK_v1")]["result"] == "ok"
    assert by_item[("fixity", "BAD_v1")]["result"] == "mismatch"
    saved = json.loads((tmp_path / "state.json").read_text())
    assert str(good.resolve()) in saved and str((watch / "corrupt.mov").resolve()) not in saved  # retried tomorrow
    assert len(rows) == 4


def test_prefect_yaml_declares_every_deployment_and_the_configured_nightly_schedule():
    import yaml

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "configs" / "prefect.yaml").read_text())
    deps = {d["name"]: d for d in doc["deployments"]}
    assert set(deps) == {"deliver", "deliver-plan", "qc", "archive", "verify", "nightly-qc", "qc-item"}
    cfg = load_nightly_config(root / "configs" / "nightly.yaml")
    assert deps["nightly-qc"]["schedules"] == [{"cron": cfg.schedule.cron, "timezone": cfg.schedule.timezone}]
    import importlib

    for d in deps.values():
        module, func = d["entrypoint"].removesuffix("").split(":")
        mod = importlib.import_module(module.removesuffix(".py").replace("/", "."))
        assert hasattr(getattr(mod, func), "to_deployment"), d["entrypoint"]


def test_fan_out_task_runners_are_bounded():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.nightly import make_task_runner

    thread = make_task_runner(NightlyConfig.model_validate({"fan_out": {"max_workers": 3}}))
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 3
    default = make_task_runner(NightlyConfig())
    assert default._max_workers == (os.cpu_count() or 1)
    dask = make_task_runner(NightlyConfig.model_validate({"fan_out": {"task_runner": "dask", "max_workers": 2}}))
    assert isinstance(dask, DaskTaskRunner) and dask.cluster_kwargs["n_workers"] == 2
    shared = make_task_runner(NightlyConfig.model_validate({"fan_out": {"task_runner": "dask",
                                                                        "dask_address": "tcp://10.0.0.5:8786"}}))
    assert shared.address == "tcp://10.0.0.5:8786"


def test_a_worker_is_lost_after_three_missed_heartbeats_or_leaving_its_pool():
    from tasks.nightly import WORKER_HEARTBEAT_MISSES, worker_lost

    now = dt.datetime(2026, 12, 7, 2, 0, 0, tzinfo=dt.UTC)
    assert WORKER_HEARTBEAT_MISSES == 3  # Prefect's foreman marks a worker OFFLINE after 3 missed heartbeats
    assert worker_lost(now - dt.timedelta(seconds=30), 10, now) is None  # 3 intervals: not yet
    assert worker_lost(now - dt.timedelta(seconds=31), 10, now) == "no heartbeat for 31 s (expected every 10 s)"
    assert worker_lost((now - dt.timedelta(seconds=91)).replace(tzinfo=None), None, now) == \
        "no heartbeat for 91 s (expected every 30 s)"  # naive = UTC; Prefect's default interval
    assert worker_lost(None, 10, now) is None  # registering: no heartbeat yet
    assert worker_lost(now, 10, now, registered=False) == "it is no longer registered on the pool"
    assert NightlyConfig().fan_out.resubmits == 1
    with pytest.raises(ValueError, match="resubmits"):
        NightlyConfig.model_validate({"fan_out": {"resubmits": -1}})


def test_nightly_items_as_qc_item_runs_of_the_served_deployment(served, sample_set, tmp_path):
    """fan_out.mode deployments: each master is a run of the served qc-item deployment (a QCRequest),
    and its typed outcome comes back into the night's summary."""
    from flows.deployments import NightlyRequest
    from flows.nightly import nightly_qc_flow
    from tasks.nightly import NightlySummary

    watch = tmp_path / "watch"
    watch.mkdir()
    (watch / "good.mov").write_bytes(sample_set.master.read_bytes())
    (watch / "corrupt.mov").write_bytes(b"this is not a movie" * 100)
    cfg = tmp_path / "nightly.yaml"
    cfg.write_text(json.dumps({"watch_folders": [{"path": str(watch), "spec": "demo"}],
                               "reports": str(tmp_path / "reports"), "state": str(tmp_path / "state.json"),
                               "fixity": {"catalog": False},
                               "fan_out": {"mode": "deployments", "deployment": "qc-item/qc-item"}}))
    state = nightly_qc_flow(NightlyRequest(config=str(cfg), night="2026-11-22"), return_state=True)
    summary = state.result(raise_on_failure=False)
    assert isinstance(summary, NightlySummary)
    rows = {Path(r.item).name: r for r in summary.rows}
    assert rows["good.mov"].result in ("pass", "fail") and Path(rows["good.mov"].report).is_file()
    assert rows["good.mov"].host  # where the qc-item run ran
    assert rows["corrupt.mov"].result == "error" and "qc-item run" in rows["corrupt.mov"].detail
    saved = json.loads((tmp_path / "state.json").read_text())
    assert str((watch / "good.mov").resolve()) in saved and str((watch / "corrupt.mov").resolve()) not in saved
