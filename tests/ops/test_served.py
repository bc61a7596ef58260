"""Deployments served by ``deliver serve`` on a real Prefect server: forms, a run triggered through the
API with its artifacts and ffmpeg logs, and cancellation of a running transcode."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

import pytest

from flows.serve import _ffmpeg_pids_writing_under


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _trigger(name: str, request: dict) -> UUID:
    with _client() as c:
        dep = c.read_deployment_by_name(name)
        return c.create_flow_run_from_deployment(dep.id, parameters={"request": request}).id


def _wait_final(run_id: UUID, timeout_s: float = 180):
    deadline = time.monotonic() + timeout_s
    with _client() as c:
        while True:
            fr = c.read_flow_run(run_id)
            if fr.state is not None and fr.state.is_final():
                return fr
            assert time.monotonic() < deadline, f"run {run_id} still {fr.state.type if fr.state else None}"
            time.sleep(1)


def _artifacts(run_id: UUID):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with _client() as c:
        return c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))


def _logs(run_id: UUID) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with _client() as c:
        return [log.message for log in c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])),
                                                   limit=200)]


def test_deployments_render_typed_forms_and_nightly_schedule(served):
    with _client() as c:
        names = {f"{c.read_flow(d.flow_id).name}/{d.name}" for d in c.read_deployments()}
        assert {"deliver/deliver", "qc/qc", "archive/archive", "verify-archive/verify", "nightly-qc/nightly-qc",
                "qc-item/qc-item"} <= names
        dep = c.read_deployment_by_name("deliver/deliver")
        schema = dep.parameter_openapi_schema
        defs = schema["definitions"] if "definitions" in schema else schema["$defs"]
        assert "netflix" in defs["SpecName"]["enum"] and "demo" in defs["SpecName"]["enum"]
        assert defs["DeliverRequest"]["properties"]["master"]["description"]
        nightly = c.read_deployment_by_name("nightly-qc/nightly-qc")
        cron = nightly.schedules[0].schedule
        assert (cron.cron, cron.timezone) == ("30 3 * * *", "Asia/Tokyo")  # from DELIVER_NIGHTLY_CONFIG
        assert c.read_concurrency_limit_by_tag("ffmpeg").concurrency_limit >= 1


def test_deliver_run_through_the_api_publishes_artifacts_and_ffmpeg_logs(served, sample_set, ops_root, request):
    out = ops_root / "deliver-out"
    run_id = _trigger("deliver/deliver", {
        "master": str(sample_set.master), "mixes": [str(sample_set.mixes["5.1"]), str(sample_set.mixes["2.0"])],
        "spec": "demo", "title": "OPS", "out": str(out)})
    fr = _wait_final(run_id, 240)
    assert fr.state.is_completed(), f"{fr.state}\n{served['log'].read_text()[-4000:]}"
    arts = {a.key: a for a in _artifacts(run_id) if a.key}
    assert arts["qc-summary"].type == "markdown" and "PASS" in arts["qc-summary"].data
    assert arts["qc-findings"].type == "table"
    assert arts["loudness-summary"].type == "markdown" and "LUFS" in arts["loudness-summary"].data
    assert "OPS_v1_screener.mp4" in arts["deliverables"].data
    progress = [a for a in _artifacts(run_id) if a.type == "progress"]
    kinds = {a.key.split("-")[0] for a in progress}
    assert {"layback", "qc", "transcode"} <= kinds, kinds
    assert all(float(a.data) == pytest.approx(100.0) for a in progress if a.key.startswith("transcode"))
    logs = _logs(run_id)
    assert any(m.startswith("$ ") and "ffmpeg" in m and "-progress" in m for m in logs), logs[:20]
    assert (out / "report.json").is_file() and not list(out.rglob("*.partial*"))
    request.config.cache.set("ops/deliver_run", str(run_id))


def test_cancelling_a_running_transcode_leaves_no_ffmpeg_and_no_partial(served, sample_set, ops_root):
    out = ops_root / "cancel-out"
    run_id = _trigger("deliver/deliver", {
        "master": str(sample_set.master), "mixes": [str(sample_set.mixes["5.1"]), str(sample_set.mixes["2.0"])],
        "spec": "demo", "title": "SLOW", "out": str(out)})
    package = out / "SLOW_v1"
    deadline = time.monotonic() + 180
    while True:  # a deliverable transcode (throttled by the wrapper) is running and writing
        pids = [p for p in _ffmpeg_pids_writing_under(package)] if package.exists() else []
        if pids and list(package.rglob("*.partial*")):
            break
        assert time.monotonic() < deadline, served["log"].read_text()[-3000:]
        time.sleep(0.3)
    from prefect.states import Cancelling

    with _client() as c:
        c.set_flow_run_state(run_id, Cancelling(), force=True)
    fr = _wait_final(run_id, 120)
    assert fr.state.is_cancelled(), fr.state
    deadline = time.monotonic() + 15
    while _ffmpeg_pids_writing_under(out) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _ffmpeg_pids_writing_under(out) == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert not list(out.rglob("*.partial*"))
    assert not (package / "SLOW_v1_mezzanine.mov").exists() or not list(package.glob("*.partial*"))
