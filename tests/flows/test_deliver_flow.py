"""End-to-end: the deliver flow on tiny generated media, through the CLI, on a real Prefect API."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app, register_commands
from specs.timecode import Timecode
from tasks.archive.hashing import hash_file_xxh128
from tasks.archive.mhl import verify_mhl
from tasks.layback import video_packet_hash
from tasks.media.synth import BlackDefect, make_sample_set

register_commands()
RATE = Fraction(25)


def _run(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory):
    return make_sample_set(tmp_path_factory.mktemp("clean") / "media", layout="5.1", stereo=True)


def test_clean_master_is_delivered_packaged_and_archived(clean_set, tmp_path):
    out, vault = tmp_path / "out", tmp_path / "vault"
    result = _run(["run", "--master", str(clean_set.master), "--mix", str(clean_set.mixes["5.1"]),
                   "--mix", str(clean_set.mixes["2.0"]), "--spec", "demo", "--title", "CLEAN", "--out", str(out),
                   "--archive", str(vault), "--recipient", "ACME Screening", "--date", "2026-11-21"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "pass"
    assert report["delivered"] is True
    assert not [f for f in report["findings"] if f["severity"] == "error"]
    # loudness measured over the programme: the generator made it -24 LUFS
    loud = {t["track"]: t for t in report["measurements"]["loudness"]}
    for track in loud.values():
        assert track["integrated_lufs"] == pytest.approx(-24.0, abs=0.2)
        assert track["true_peak_dbtp"] < -1.0
    # the layback as the engineer reads it: both mixes on time, 2-pops on the picture's, picture packets copied
    lb = report["layback"]
    assert [(t["track"], t["offset_samples"], t["alignment"]) for t in lb["tracks"]] == [
        ("main-51", 0, "aligned as delivered"), ("stereo-20", 0, "aligned as delivered")]
    assert all(abs(t["two_pop_offset_frames"]) <= 0.05 for t in lb["tracks"])
    assert lb["start_timecode"] == "00:59:56:00" and lb["picture_packets_md5"] == video_packet_hash(clean_set.master)
    names = {d["name"] for d in report["deliverables"]}
    assert {"CLEAN_v1_mezzanine.mov", "CLEAN_v1_screener.mp4"} <= names
    package = out / "CLEAN_v1"
    for d in report["deliverables"]:
        assert hash_file_xxh128(Path(d["path"])) == d["xxh128"]
        assert Path(d["path"]).stat().st_size == d["size"]
    assert (package / "ascmhl" / "ascmhl_chain.xml").is_file()
    assert verify_mhl(package) == []
    assert report["archive"] and all(a["verified"] for a in report["archive"])
    copy = vault / "CLEAN_v1"
    for d in report["deliverables"]:
        assert hash_file_xxh128(copy / d["name"]) == d["xxh128"]
    assert verify_mhl(copy) == []
    assert not list(out.rglob("*.partial*"))


def test_injected_black_stops_delivery_with_finding_at_its_timecode(tmp_path):
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            defects=[BlackDefect(at_s=1.0, duration_s=1.2)])
    injected = media.master_manifest.defect("black")
    out = tmp_path / "out"
    result = _run(["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]),
                   "--mix", str(media.mixes["2.0"]), "--spec", "demo", "--title", "BLACK", "--out", str(out)])
    assert result.exit_code == 1, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "fail" and report["delivered"] is False
    black = [f for f in report["findings"] if f["check"] == "picture.black"]
    assert len(black) == 1 and black[0]["severity"] == "error"
    for key, want in (("timecode_in", injected.timecode_in), ("timecode_out", injected.timecode_out)):
        got = Timecode.parse(black[0][key], RATE).frames
        assert abs(got - Timecode.parse(want, RATE).frames) <= 1, (key, black[0][key], want)
    assert not (out / "BLACK_v1").exists()  # gate: no deliverables after an error finding


def test_force_delivers_despite_errors_and_records_it(tmp_path):
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            defects=[BlackDefect(at_s=1.0, duration_s=1.0)])
    out = tmp_path / "out"
    result = _run(["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]),
                   "--mix", str(media.mixes["2.0"]), "--spec", "demo", "--title", "FORCED", "--out", str(out),
                   "--force"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "fail" and report["forced"] is True and report["delivered"] is True
    assert len(report["deliverables"]) >= 2


def test_qc_command_passes_a_clean_master(clean_set, tmp_path):
    # QC of the picture master alone: the demo spec wants the married tracks, so we QC the
    # layback of the clean run's inputs through `deliver qc` on a married master.
    out = tmp_path / "out"
    assert _run(["run", "--master", str(clean_set.master), "--mix", str(clean_set.mixes["5.1"]),
                 "--mix", str(clean_set.mixes["2.0"]), "--spec", "demo", "--title", "QC",
                 "--out", str(out)]).exit_code == 0
    married = out / "work" / "QC_v1_layback.mov"
    report = tmp_path / "qc.json"
    result = _run(["qc", str(married), "--spec", "demo", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert json.loads(report.read_text())["verdict"] == "pass"


def test_failed_archive_is_reported_not_hidden(clean_set, tmp_path, monkeypatch):
    import flows.deliver as deliver_flows

    # An unwritable target is an infrastructure error: retried with backoff, then reported (no
    # waiting between the retries here).
    monkeypatch.setattr(deliver_flows, "archive_step", deliver_flows.archive_step.with_options(retry_delay_seconds=0))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the vault folder should be\n")
    # Preflight refuses a target under a file before any work (tests/test_preflight.py); let this one through
    # to stand for a target that breaks after the package is made.
    import tasks.preflight

    monkeypatch.setattr(tasks.preflight, "check_archive_targets", lambda targets, option="--archive": None)
    out = tmp_path / "out"
    result = _run(["run", "--master", str(clean_set.master), "--mix", str(clean_set.mixes["5.1"]),
                   "--mix", str(clean_set.mixes["2.0"]), "--spec", "demo", "--title", "ARCH", "--out", str(out),
                   "--archive", str(blocker / "vault")])
    assert result.exit_code in (2, 3), result.output
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "pass" and report["delivered"] is False
    assert report["archive_error"] and "not-a-folder" in report["archive_error"]
    assert report["deliverables"]  # the package itself was made and hashed
