"""What a person sees of deliver: a summary, no Prefect log line, no third-party warning, no traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.cli.conftest import deliver

PREFECT_LINE = re.compile(r"\d\d:\d\d:\d\d\.\d{3} \| (INFO|WARNING|ERROR|DEBUG)")


def _quiet(text: str) -> None:
    assert "Traceback" not in text, text
    assert not PREFECT_LINE.search(text), text
    assert "Matplotlib" not in text and "Starting temporary server" not in text, text


def test_passing_qc_shows_a_summary_and_nothing_else(clip: Path, tmp_path: Path) -> None:
    report = tmp_path / "out" / "clip.qc.json"
    proc = deliver("qc", str(clip), "--spec", "demo", "--json", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _quiet(proc.stdout + proc.stderr)
    assert "QC PASS against demo" in proc.stdout
    assert "severity" not in proc.stdout  # no (empty) findings table for a passing master
    assert f"Report: {report}" in proc.stdout
    assert re.search(r"Run: +http://127\.0\.0\.1:\d+/runs/flow-run/[0-9a-f-]{36}", proc.stdout), proc.stdout
    log = report.with_suffix(".log")
    text = log.read_text()
    assert "Beginning flow run" in text and "deliver.ffmpeg" in text  # Prefect's and ffmpeg's lines: in the log
    assert json.loads(report.read_text())["verdict"] == "pass"


def test_failing_qc_shows_the_findings_table(tmp_path: Path) -> None:
    from tasks.media.synth import MasterSpec, make_sample_set

    # a picture master without the spec's audio tracks fails the demo spec
    media = make_sample_set(tmp_path / "m", layout="2.0", master=MasterSpec(programme_s=2, head_s=3))
    proc = deliver("qc", str(media.master), "--spec", "demo", "--json", str(tmp_path / "q.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    _quiet(proc.stdout + proc.stderr)
    assert "QC FAIL against demo" in proc.stdout
    assert "severity" in proc.stdout and "metadata.audio_t" in proc.stdout  # the table (its cells may wrap)


def test_qc_json_dash_prints_the_report_object(clip: Path, tmp_path: Path) -> None:
    proc = deliver("qc", str(clip), "--spec", "demo", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is the report object only; the summary went to stderr
    assert doc["verdict"] == "pass" and doc["spec"] == "demo"
    assert "QC PASS" in proc.stderr
    assert (tmp_path / f"{clip.name}.qc.json").exists()


def test_qc_report_folder_that_cannot_be_made_is_one_line(clip: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a folder\n")
    proc = deliver("qc", str(clip), "--spec", "demo", "--json", str(blocker / "sub" / "q.json"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _quiet(proc.stdout + proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deliver: error:"), proc.stderr
    assert str(blocker) in lines[0]


def test_an_error_raised_inside_the_flow_is_one_line_with_the_traceback_in_the_log(sample, tmp_path: Path) -> None:
    """The package folder OUT/DEMO_v1 is a regular file: only the flow meets it (at the deliverables
    stage, after layback and QC), and Prefect logs the exception with its traceback."""
    out = tmp_path / "delivery"
    out.mkdir()
    (out / "DEMO_v1").write_text("a file where the package folder goes\n")
    proc = deliver("run", "--master", str(sample.master), "--mix", str(sample.mixes["5.1"]),
                   "--mix", str(sample.mixes["2.0"]), "--spec", "demo", "--title", "DEMO",
                   "--out", str(out), "--archive", str(tmp_path / "vault"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _quiet(proc.stdout + proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deliver: error:"), proc.stderr
    assert str(out / "DEMO_v1") in lines[0]
    log = out / "work" / "deliver.log"
    assert f"(log: {log})" in lines[0]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    assert "Finished in state Failed" in text


def test_local_server_status_and_stop(clip: Path, tmp_path: Path) -> None:
    assert deliver("qc", str(clip), "--spec", "demo", "--json", str(tmp_path / "q.json")).returncode == 0
    status = deliver("server", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert re.search(r"running: UI http://127\.0\.0\.1:\d+", status.stdout)
    stop = deliver("server", "stop")
    assert stop.returncode == 0 and "stopped the local server" in stop.stdout
    after = deliver("server", "status")
    assert after.returncode == 1 and "no local server running" in after.stdout
    again = deliver("qc", str(clip), "--spec", "demo", "--json", str(tmp_path / "q2.json"))
    assert again.returncode == 0, again.stderr
    assert "started a local Prefect server" in again.stderr  # the UI address, printed once when it starts
    third = deliver("qc", str(clip), "--spec", "demo", "--json", str(tmp_path / "q3.json"))
    assert "started a local Prefect server" not in third.stderr  # reused, not announced again


def test_verbose_prints_prefect_and_ffmpeg_logs(clip: Path, tmp_path: Path) -> None:
    proc = deliver("qc", str(clip), "--spec", "demo", "--json", str(tmp_path / "q.json"), "--verbose")
    assert proc.returncode == 0, proc.stderr
    assert "Beginning flow run" in proc.stderr and "deliver.ffmpeg" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Beginning flow run" in (tmp_path / "q.log").read_text()  # and still in the log


def test_stage_view_draws_every_stage_with_bars_and_archive_speed() -> None:
    """The live view, fed as the steps feed it, on a (forced) terminal."""
    import io

    from rich.console import Console

    from flows.cli.terminal import RUN_STAGES, _StageView

    buf = io.StringIO()
    view = _StageView(RUN_STAGES, Console(file=buf, force_terminal=True, width=120, color_system=None))
    with view.progress:
        view.on_stage("probe", "start", "master.mov")
        view.on_stage("probe", "finish", "master.mov")
        view.on_progress("layback-demo", "Layback", 5.0, 10.0)
        view.on_progress("layback-demo", "Layback", 10.0, 10.0)
        view.on_progress("qc-analysis", "QC", 4.0, 4.0)
        view.on_progress("deliverables", "3 deliverables", 2.0, 8.0)
        view.on_stage("package", "start", "DEMO_v1")
        view.on_stage("package", "finish", "DEMO_v1")
        view.on_progress("archive-progress-demo-v1", "archive", 50e6, 100e6)
        view.close(stopped_at_gate=False)
    text = buf.getvalue()
    for stage in RUN_STAGES:
        assert f"✓ {stage}" in text, (stage, text[-2000:])
    assert "100%" in text and "B/s" in text


def test_archive_rate_stays_in_bytes_after_the_step_marks_itself_done() -> None:
    """The archive step ends with ``progress.done()``, i.e. (1, 1): the row keeps the measured byte rate
    instead of turning into "1 B/s"."""
    import io
    import re

    from rich.console import Console

    from flows.cli.terminal import _StageView

    buf = io.StringIO()
    view = _StageView(("archive",), Console(file=buf, force_terminal=True, width=120, color_system=None))
    with view.progress:
        view.on_progress("archive-progress-demo-v1", "archive", 100e6, 100e6)
        view.on_progress("archive-progress-demo-v1", "archive", 1.0, 1.0)
        view.close(stopped_at_gate=False)
    last = [ln for ln in buf.getvalue().replace("\r", "\n").splitlines() if "archive" in ln][-1]
    rate = re.search(r"([\d.]+) (B|KiB|MiB|GiB|TiB)/s", last)
    assert rate and rate.group(2) in ("MiB", "GiB", "TiB"), last  # 100 MB in well under 100 s
