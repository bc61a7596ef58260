"""Deployments served by ``deliver serve`` on a real Prefect server: forms, a run triggered through the
API with its artifacts and ffmpeg logs, and cancellation of a running transcode."""

from __future__ import annotations

import re
import time
from pathlib import Path
from uuid import UUID

import pytest

from tasks.media.ffmpeg import ffmpeg_pids_writing_under
from tests.postgres import wait_flow_run_final


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _trigger(name: str, request: dict) -> UUID:
    with _client() as c:
        dep = c.read_deployment_by_name(name)
        return c.create_flow_run_from_deployment(dep.id, parameters={"request": request}).id


def _wait_final(run_id: UUID, timeout_s: float = 180):
    with _client() as c:
        return wait_flow_run_final(c, run_id, timeout_s)


def _artifacts(run_id: UUID):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with _client() as c:
        return c.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))


def _logs(run_id: UUID) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    out: list[str] = []
    with _client() as c:
        while True:  # every page (the API returns at most 200 at a time)
            page = c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200,
                               offset=len(out))
            out += [log.message for log in page]
            if len(page) < 200:
                return out


def _final_logs(run_id: UUID, timeout_s: float = 30) -> list[str]:
    """The run's logs once its engine's last line ("Finished in state …") has arrived (logs are batched)."""
    deadline = time.monotonic() + timeout_s
    while True:
        logs = _logs(run_id)
        if any(m.startswith("Finished in state") for m in logs):
            return logs
        assert time.monotonic() < deadline, logs
        time.sleep(1)


def test_deployments_render_typed_forms_and_nightly_schedule(served):
    with _client() as c:
        names = {f"{c.read_flow(d.flow_id).name}/{d.name}" for d in c.read_deployments()}
        assert {"deliver/deliver", "qc/qc", "archive/archive", "verify-archive/verify", "nightly-qc/nightly-qc",
                "qc-item/qc-item"} <= names
        dep = c.read_deployment_by_name("deliver/deliver")
        schema = dep.parameter_openapi_schema
        defs = schema["definitions"] if "definitions" in schema else schema["$defs"]
        form = defs["DeliverRequest"]
        # the spec: ONE required field, a drop-down of the built-ins or a path (no "SpecName | None" toggle)
        spec = form["properties"]["spec"]
        builtin, path = spec["anyOf"]
        assert {"netflix", "demo"} <= set(builtin["enum"]) and path["type"] == "string"
        assert (builtin["title"], path["title"]) == ("Built-in spec", "Spec file (YAML path)")
        assert "spec" in form["required"] and "spec_path" not in form["properties"]
        assert "SpecName" not in defs
        nightly = c.read_deployment_by_name("nightly-qc/nightly-qc")
        cron = nightly.schedules[0].schedule
        assert (cron.cron, cron.timezone) == ("30 3 * * *", "Asia/Tokyo")  # from DELIVER_NIGHTLY_CONFIG
        assert c.read_concurrency_limit_by_tag("ffmpeg").concurrency_limit >= 1


def test_finished_deliverables_progress_reads_100_percent(delivered):
    run_id, _ = delivered
    done = {a.key: float(a.data) for a in _artifacts(run_id) if a.type == "progress"}
    assert all(v == pytest.approx(100.0) for k, v in done.items() if k.startswith(("transcode", "deliverables"))), done


@pytest.fixture(scope="module")
def delivered(served, sample_set, ops_root):
    """One deliver run triggered through the API (as the UI's Run button does)."""
    out = ops_root / "deliver-out"
    run_id = _trigger("deliver/deliver", {
        "master": str(sample_set.master), "mixes": [str(sample_set.mixes["5.1"]), str(sample_set.mixes["2.0"])],
        "spec": "demo", "title": "OPS", "out": str(out)})
    fr = _wait_final(run_id, 240)
    assert fr.state.is_completed(), f"{fr.state}\n{served['log'].read_text()[-4000:]}"
    return run_id, out


def test_deliver_run_through_the_api_publishes_artifacts_and_ffmpeg_logs(delivered):
    run_id, out = delivered
    arts = {a.key: a for a in _artifacts(run_id) if a.key}
    # keys per title and version (qc-summary-ops-v1 …): another title never replaces these
    assert arts["qc-summary-ops-v1"].type == "markdown" and "PASS" in arts["qc-summary-ops-v1"].data
    assert arts["qc-findings-ops-v1"].type == "table"
    assert arts["loudness-summary-ops-v1"].type == "markdown" and "LUFS" in arts["loudness-summary-ops-v1"].data
    assert "OPS_v1_screener.mp4" in arts["deliverable-links-ops-v1"].data
    # the report itself, readable from any machine (file:// links do not open from the UI)
    report_md = arts["report-ops-v1"].data
    assert "PASS" in report_md and "## Deliverables" in report_md and "OPS_v1_mezzanine.mov" in report_md
    assert "## Loudness" in report_md and "## Archive" not in report_md and "**Outcome:** delivered" in report_md
    progress = [a for a in _artifacts(run_id) if a.type == "progress"]
    kinds = {a.key.split("-")[0] for a in progress}
    assert {"layback", "qc"} <= kinds and kinds & {"transcode", "deliverables"}, kinds  # analysis + transcodes
    done = {a.key: float(a.data) for a in progress}
    assert all(v > 0 for v in done.values()), done  # every long step reported progress
    assert done["qc-analysis-ops-v1-layback"] == pytest.approx(100.0)
    assert done["deliverables-ops-v1"] == pytest.approx(100.0)
    logs = _logs(run_id)
    assert any(m.startswith("$ ") and "ffmpeg" in m and "-progress" in m for m in logs), logs[:20]
    # every ffmpeg command, from any thread: the QC analysis decodes its audio in a worker thread
    assert any(m.startswith("$ ") and "OPS_v1_layback.mov" in m and "-f f32le pipe:1" in m for m in logs), \
        [m[:120] for m in logs if m.startswith("$ ")]
    assert any(m.startswith("$ ") and "OPS_v1_layback.mov" in m and "-f rawvideo" in m for m in logs)
    with _client() as c:
        assert c.read_flow_run(run_id).state.message.startswith("delivered, ")
    assert (out / "report.json").is_file() and not list(out.rglob("*.partial*"))


def test_cancelling_a_running_transcode_leaves_no_ffmpeg_and_no_partial(served, sample_set, ops_root):
    out = ops_root / "cancel-out"
    run_id = _trigger("deliver/deliver", {
        "master": str(sample_set.master), "mixes": [str(sample_set.mixes["5.1"]), str(sample_set.mixes["2.0"])],
        "spec": "demo", "title": "SLOW", "out": str(out)})
    package = out / "SLOW_v1"
    deadline = time.monotonic() + 180
    while True:  # a deliverable transcode (throttled by the wrapper) is running and writing
        pids = [p for p in ffmpeg_pids_writing_under(package)] if package.exists() else []
        if pids and list(package.rglob("*.partial*")):
            break
        assert time.monotonic() < deadline, served["log"].read_text()[-3000:]
        time.sleep(0.3)
    # the deliverables progress moves while ffmpeg is still silent (its poster frame output starts late)
    seen: list[float] = []
    while len(set(seen)) < 3 and time.monotonic() < deadline:
        seen += [float(a.data) for a in _artifacts(run_id) if a.key == "deliverables-slow-v1"]
        time.sleep(1)
    assert len({v for v in seen if 0 < v < 95}) >= 2, seen  # intermediate values, not 0 -> 95 -> 100
    assert seen == sorted(seen), seen
    from prefect.states import Cancelling

    with _client() as c:
        c.set_flow_run_state(run_id, Cancelling(), force=True)
    fr = _wait_final(run_id, 120)
    assert fr.state.is_cancelled(), fr.state
    deadline = time.monotonic() + 15
    while ffmpeg_pids_writing_under(out) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ffmpeg_pids_writing_under(out) == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert not list(out.rglob("*.partial*"))
    assert not (package / "SLOW_v1_mezzanine.mov").exists() or not list(package.glob("*.partial*"))
    # no empty folder left (the package's extras/ and the package folder held only partial files)
    assert [d for d in out.rglob("*") if d.is_dir() and not any(d.iterdir())] == []
    assert not (package / "extras").exists()
    deadline = time.monotonic() + 30
    while "cancelled-slow-v1" not in (arts := {a.key: a for a in _artifacts(run_id) if a.key}):
        assert time.monotonic() < deadline, sorted(arts)
        time.sleep(1)
    cleaned = arts["cancelled-slow-v1"].data
    assert "# SLOW v1: cancelled" in cleaned and "partial file(s)" in cleaned and "empty folder(s)" in cleaned
    while not any(m.startswith("cancelled: Killed") for m in _logs(run_id)):  # the runner's log batches
        assert time.monotonic() < deadline + 30, [m for m in _logs(run_id) if "ancel" in m]
        time.sleep(1)
    # it reads as Cancelled all through: no task run Crashed, the interrupted deliverables step Cancelled,
    # no engine line claiming the run finished while Running, the state message says what was cleaned up
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    time.sleep(3)  # the killed process's last task-run events
    with _client() as c:
        task_runs = c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
        final = c.read_flow_run(run_id).state
    states = {tr.name: tr.state.type.value for tr in task_runs if tr.state}
    assert not [n for n, s in states.items() if s == "CRASHED"], states
    assert [s for n, s in states.items() if n.startswith("deliverables")] == ["CANCELLED"], states
    logs = _logs(run_id)
    assert not any("Finished in state Running" in m or "Crash detected" in m for m in logs), \
        [m for m in logs if "Finished in" in m or "Crash" in m]
    assert any(m.startswith("Cancelled: the run was cancelled while this step ran") for m in logs)
    assert any(m.startswith("step deliverables") and m.endswith("cancelled with the run") for m in logs)
    assert final.is_cancelled(), final


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(url: str, tmp: Path, shot: Path | None = None) -> str:
    import subprocess

    args = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=25000",
            "--window-size=1400,1000"]
    if shot is not None:
        subprocess.run(args + [f"--screenshot={shot}", url], capture_output=True, timeout=120)
    return subprocess.run(args + ["--dump-dom", url], capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_run_page_renders_the_findings_table_in_headless_chromium(delivered, served, tmp_path):
    """The Prefect UI (a JS app) renders the run's findings table: DOM after 15 s of virtual time."""
    import json

    run_id, out = delivered
    base = served["api"].rsplit("/api", 1)[0]
    table = {a.key: a for a in _artifacts(run_id) if a.key}["qc-findings-ops-v1"]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    dom = _dump_dom(f"{base}/artifacts/artifact/{table.id}", tmp_path, shot=tmp_path / "artifact.png")
    assert "<table" in dom, dom[-2000:]
    assert "deliver-OPS-v1" in dom  # the artifact page links the run
    header = dom[dom.index("<table"):dom.index("</table>")]
    for column in ("severity", "check", "in", "out", "message", "expected", "actual"):
        assert f">{column}<" in header.replace(" ", ""), column
    first = rows[0]
    assert first["check"] in header and first["severity"] in header
    run_dom = _dump_dom(f"{base}/runs/flow-run/{run_id}?tab=Artifacts", tmp_path, shot=tmp_path / "run.png")
    # The run page itself renders (name, state, the task graph); its Artifacts tab lists the table above.
    assert "deliver-OPS-v1" in run_dom, run_dom[-1500:]
    assert "Completed" in run_dom and "Artifacts" in run_dom


W, H = 320, 180  # the sample master's frame size


def _gray_frame(path: Path, t_s: float):
    import numpy as np

    from tasks.media.ffmpeg import run_ffmpeg

    raw = run_ffmpeg(["-v", "error", "-ss", str(t_s), "-i", str(path), "-frames:v", "1", "-vf", f"scale={W}:{H}",
                      "-pix_fmt", "gray", "-f", "rawvideo", "-"], capture_stdout=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(H, W).astype(np.float64)


def _watermarked_spec(folder: Path) -> Path:
    """The demo spec with a watermark on its screener and {lang} in the screener's name."""
    text = (Path(__file__).resolve().parents[2] / "specs" / "demo.yaml").read_text()
    screener = '    burn_in: {timecode: true}\n    name: "{title}_{version}_{id}.{ext}"'
    assert text.count(screener) == 1
    text = text.replace("name: demo\n", "name: demo-watermarked\n", 1).replace(
        screener, '    burn_in: {timecode: true}\n    watermark: {text: "REVIEW COPY", opacity: 0.5}\n'
                  '    name: "{title}_{version}_{id}_{lang}.{ext}"')
    path = folder / "demo-watermarked.yaml"
    path.write_text(text)
    return path


def test_deployment_run_with_recipient_date_lang_burns_the_recipient_into_the_screener(served, sample_set, ops_root):
    """The deliver deployment's form has recipient, date and lang, and a run started with them (through
    run_deployment, as the UI's Run button) burns the recipient and date under the screener's watermark."""
    from prefect.deployments import run_deployment

    from tasks.media.probe import probe

    spec = _watermarked_spec(ops_root)
    with _client() as c:
        props = c.read_deployment_by_name("deliver/deliver").parameter_openapi_schema
    defs = props["definitions"] if "definitions" in props else props["$defs"]
    assert {"recipient", "date", "lang"} <= set(defs["DeliverRequest"]["properties"])
    mixes = [{"path": str(sample_set.mixes["5.1"])}, {"path": str(sample_set.mixes["2.0"])}]
    base = {"master": str(sample_set.master), "mixes": mixes, "spec": str(spec), "lang": "de",
            "date": "2026-11-21"}
    runs = {}
    for title, extra in (("MARKED", {"recipient": "ACME Screening"}), ("PLAIN", {})):
        request = {**base, **extra, "title": title, "out": str(ops_root / f"wm-{title}")}
        runs[title] = run_deployment("deliver/deliver", parameters={"request": request}, timeout=0).id
    for title, run_id in runs.items():
        fr = _wait_final(run_id, 300)
        assert fr.state.is_completed(), f"{title}: {fr.state}\n{served['log'].read_text()[-4000:]}"
    marked = ops_root / "wm-MARKED" / "MARKED_v1" / "MARKED_v1_screener_de.mp4"  # lang reached the name
    plain = ops_root / "wm-PLAIN" / "PLAIN_v1" / "PLAIN_v1_screener_de.mp4"
    assert marked.is_file() and plain.is_file()
    duration_s = probe(str(marked)).duration_s
    a, b = _gray_frame(marked, duration_s / 2), _gray_frame(plain, duration_s / 2)
    line = (slice(int(H * 0.6), int(H * 0.66)), slice(int(W * 0.3), int(W * 0.7)))  # recipient and date
    assert abs(a[line] - b[line]).mean() > 4  # the recipient trace is burnt in
    assert abs(a[: int(H * 0.3)] - b[: int(H * 0.3)]).mean() < 2  # the rest of the picture is the same


_OPTIONS = ("master", "mixes", "spec", "title", "version", "out", "archive", "force", "recipient", "date", "lang")


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_deliver_form_has_every_run_option_and_one_spec_field_in_headless_chromium(served, ops_root, tmp_path):
    """The deliver deployment's Run form: every option of deliver run with its description and default,
    the spec as one required choice (built-in drop-down or path), no 'Property is type "None"'."""
    with _client() as c:
        dep = c.read_deployment_by_name("deliver/deliver")
    schema = dep.parameter_openapi_schema
    defs = schema["definitions"] if "definitions" in schema else schema["$defs"]
    form = defs["DeliverRequest"]
    props = form["properties"]
    assert set(_OPTIONS) <= set(props), sorted(props)
    assert all(props[k].get("description") for k in _OPTIONS)
    assert (props["version"]["default"], props["force"]["default"], props["lang"]["default"]) == ("v1", False, "und")
    assert set(form["required"]) == {"master", "mixes", "spec", "title", "out"}
    assert not [k for k, p in props.items() if any(b.get("type") == "null" for b in p.get("anyOf", []))]
    base = served["api"].rsplit("/api", 1)[0]
    shot = ops_root / "deliver-form.png"  # kept with the session's other files for a person to look at
    dom = _dump_dom(f"{base}/deployments/deployment/{dep.id}/run", tmp_path, shot=shot)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    text = re.sub(r"<[^>]+>", " ", dom)
    text = re.sub(r"\s+", " ", text)
    for label in ("Spec", "Built-in spec", "Spec file (YAML path)", "Recipient", "Date", "Lang", "Force", "Archive",
                  "Version", "Screener recipient: burnt into the watermark", "Date (ISO 8601, YYYY-MM-DD)"):
        assert label in text, (label, text[:3000])
    assert "Property is type" not in text and "SpecName" not in text


def _black_set(ops_root: Path):
    from tasks.media.synth import BlackDefect, make_sample_set

    return make_sample_set(ops_root / "media-black", layout="5.1", stereo=True,
                           defects=[BlackDefect(at_s=1.0, duration_s=1.2)])


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_bad_parameter_fails_the_run_at_once_with_one_line_and_no_traceback(served, sample_set, ops_root, tmp_path):
    out = ops_root / "typo-out"
    missing = str(sample_set.master).replace("master", "mastr")
    run_id = _trigger("deliver/deliver", {"master": missing, "mixes": [str(sample_set.mixes["5.1"])],
                                          "spec": "demo", "title": "TYPO", "out": str(out)})
    fr = _wait_final(run_id, 120)
    assert fr.state.is_failed() and fr.state.name == "Bad input", fr.state
    assert fr.state.message == f"picture master not found: {missing}. Check the path."
    assert not out.exists()  # nothing written, no empty folder
    logs = _final_logs(run_id)
    assert not [m for m in logs if "Traceback" in m], [m for m in logs if "Traceback" in m][:1]
    assert f"bad input: picture master not found: {missing}. Check the path." in logs
    arts = {a.key: a for a in _artifacts(run_id) if a.key}
    assert "**Bad input:** picture master not found" in arts["run-error-typo-v1"].data
    # an unknown spec: the spec's own message, no traceback either
    spec_run = _trigger("deliver/deliver", {"master": str(sample_set.master), "mixes": [str(sample_set.mixes["5.1"])],
                                            "spec": "netflx", "title": "TYPO2", "out": str(ops_root / "typo2")})
    fr2 = _wait_final(spec_run, 120)
    assert fr2.state.name == "Bad input" and "did you mean 'netflix'" in fr2.state.message
    assert not [m for m in _final_logs(spec_run) if "Traceback" in m]
    # the run page shows the failure and its reason
    base = served["api"].rsplit("/api", 1)[0]
    shot = ops_root / "bad-input-run.png"
    dom = _dump_dom(f"{base}/runs/flow-run/{run_id}", tmp_path, shot=shot)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))
    assert "Bad input" in text and "picture master not found" in text, text[:3000]
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_failed_qc_run_ends_failed_named_qc_failed(served, ops_root):
    media = _black_set(ops_root)
    out = ops_root / "black-out"
    run_id = _trigger("deliver/deliver", {"master": str(media.master), "mixes": [str(p) for p in media.mixes.values()],
                                          "spec": "demo", "title": "BLACK", "out": str(out)})
    fr = _wait_final(run_id, 240)
    assert fr.state.is_failed() and fr.state.name == "QC failed", fr.state
    assert fr.state.message.startswith("QC failed: 1 error (first: picture.black at "), fr.state.message
    assert (out / "report.json").is_file() and not (out / "BLACK_v1").exists()  # the report, no deliverables
    arts = {a.key: a for a in _artifacts(run_id) if a.key}
    assert "FAIL" in arts["qc-summary-black-v1"].data and "picture.black" in arts["report-black-v1"].data
    assert not [m for m in _final_logs(run_id) if "Traceback" in m]
