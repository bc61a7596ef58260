"""Layback places what it can place: a mix 2 frames after the programme start is laid back where its BWF time
reference says, and QC reports the gap with the spec's severity, so the gate and --force decide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specs.loader import load_spec
from specs.model import CheckSpec
from tasks.layback import layback, plan_layback
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, MixSpec, make_master, make_mix
from tasks.qc.engine import qc_master
from tasks.qc.sync import check_layback
from tests.deliverables.helpers import LABELS_51, SR, read_track, tones, write_bwf

DELIVER = str(Path(sys.executable).parent / "deliver")
TIMING = dict(head_s=4.0, programme_s=2.0)
FRAME = SR // 25  # samples per frame at 25 fps
LATE = 4 * SR + 2 * FRAME  # the mix begins 2 frames after the FFOA (01:00:00:00; the master starts 00:59:56:00)


@pytest.fixture(scope="module")
def late_set(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("coverage")
    (root / "media").mkdir()
    make_master(root / "media" / "master.mov", MasterSpec(**TIMING))
    full = make_mix(root / "full.wav", MixSpec(**TIMING, layout="5.1"))
    ints, _ = sf.read(str(full.path), dtype="int32", always_2d=True)
    late = write_bwf(root / "media" / "late51.wav", ints[LATE:].astype(np.float64) / 2**31,
                     full.time_reference_samples + LATE)
    stereo = make_mix(root / "media" / "st.wav", MixSpec(**TIMING, layout="2.0")).path
    return {"root": root, "master": root / "media" / "master.mov", "late": late, "stereo": Path(stereo)}


def _coverage(findings: list) -> list:
    return [f for f in findings if f.check == "audio.layback_coverage"]


def test_late_mix_is_placed_and_its_gap_has_the_specs_severity(late_set: dict[str, Path], tmp_path: Path) -> None:
    spec = load_spec("demo")
    plan = plan_layback(probe(late_set["master"]), [probe(late_set["late"]), probe(late_set["stereo"])], spec)
    track = plan.tracks[0]
    assert (track.offset_samples, track.head_gap_samples, track.tail_gap_samples) == (LATE, 2 * FRAME, 0)
    married = layback(plan, spec, tmp_path / "lb.mov")
    x = read_track(Path(married.path), 0)
    assert not x[:LATE].any() and np.abs(x[LATE:LATE + FRAME]).max() > 0.01  # silence, then the mix, sample-exact
    info = probe(married.path)
    for severity in ("error", "warning"):  # the spec decides how bad a gap is
        checks = {**spec.checks, "audio.layback_coverage": CheckSpec(severity=severity)}
        found = _coverage(qc_master(info, spec.model_copy(update={"checks": checks}), layback=plan).findings)
        assert [(f.severity.value, f.track, f.timecode_in, f.timecode_out) for f in found] == [
            (severity, "main-51", "01:00:00:00", "01:00:00:02")]
        assert "starts 2.0 frames after the programme start 01:00:00:00" in found[0].message
    off = {**spec.checks, "audio.layback_coverage": CheckSpec(severity="off")}
    assert _coverage(qc_master(info, spec.model_copy(update={"checks": off}), layback=plan).findings) == []


def test_mix_much_longer_than_the_picture_is_trimmed_and_reported(late_set: dict[str, Path], tmp_path: Path) -> None:
    spec = load_spec("demo")
    picture = probe(late_set["master"])
    n = 6 * SR  # the picture: 00:59:56:00 .. 01:00:02:00
    long_mix = write_bwf(tmp_path / "long51.wav", tones(LABELS_51, n + 3 * SR), 3596 * SR)
    assert long_mix.exists()
    plan = plan_layback(picture, [probe(long_mix), probe(late_set["stereo"])], spec)
    assert (plan.tracks[0].tail_trim_samples, plan.tracks[0].head_gap_samples) == (3 * SR, 0)
    assert any("144000 samples after the picture's last frame; trimmed" in n for n in plan.notes)
    found = [f for f in check_layback(spec, plan) if f.track == "main-51"]
    assert [(f.check, f.severity.value, f.timecode_in) for f in found] == [
        ("audio.layback_trim", "warning", "01:00:02:00")]
    assert "75.0 frames (3.00 s) of the mix long51.wav lie after the picture's last frame" in found[0].message
    married = layback(plan, spec, tmp_path / "lb.mov")
    assert read_track(Path(married.path), 0).shape[0] == n  # exactly the picture's length


def _run(late_set: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DELIVER, "run", "--master", str(late_set["master"]), "--mix", str(late_set["late"]),
                           "--mix", str(late_set["stereo"]), "--spec", "demo", "--title", "LATE", "--out", str(out),
                           "--archive", str(out.parent / f"{out.name}-vault"), *extra],
                          capture_output=True, text=True, timeout=600, cwd=out.parent)


def _gap(report: dict) -> list[tuple[str, str, str, str]]:
    return [(f["severity"], f["track"], f["timecode_in"], f["timecode_out"]) for f in report["findings"]
            if f["check"] == "audio.layback_coverage"]


def test_cli_late_mix_fails_the_gate_and_is_delivered_with_force(late_set: dict[str, Path], tmp_path: Path) -> None:
    gated = _run(late_set, tmp_path / "gated")
    assert gated.returncode == 1, gated.stderr
    assert "Traceback" not in gated.stderr + gated.stdout
    report = json.loads((tmp_path / "gated" / "report.json").read_text())
    assert report["verdict"] == "fail" and report["delivered"] is False
    assert _gap(report) == [("error", "main-51", "01:00:00:00", "01:00:00:02")]
    assert report["layback"]["tracks"][0]["head_gap_frames"] == 2.0
    assert not (tmp_path / "gated" / "LATE_v1").exists()

    forced = _run(late_set, tmp_path / "forced", "--force")
    assert forced.returncode == 0, forced.stderr
    report = json.loads((tmp_path / "forced" / "report.json").read_text())
    assert report["delivered"] is True and report["forced"] is True
    assert _gap(report) == [("error", "main-51", "01:00:00:00", "01:00:00:02")]
    names = {d["name"] for d in report["deliverables"]}
    assert "LATE_v1_mezzanine.mov" in names
    mezzanine = tmp_path / "forced" / "LATE_v1" / "LATE_v1_mezzanine.mov"
    x = read_track(mezzanine, 0)  # the mezzanine has no head: it starts at the FFOA, 2 frames of silence first
    assert not x[:2 * FRAME].any() and x[2 * FRAME:3 * FRAME].any()
