"""The delivery documents the producer signs: one tiny deliver run (CLI, real Prefect API, archive to a
folder) shared by the module, then its PDF read back with pdftotext (Debian poppler-utils), its HTML
rendered by headless Chromium (screenshot and DOM), the loudness certificate checked against report.json and
the spec's targets, the package's ASC MHL history checked to list the documents, and ``deliver documents``
remaking them from report.json."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app, register_commands
from specs.loader import load_spec
from tasks.archive.hashing import digest_file
from tasks.archive.mhl import mhl_records, verify_mhl
from tasks.media.synth import make_sample_set
from tasks.report import Report
from tasks.report_html import date_text, duration_text
from tests.browser import CHROMIUM, chromium

register_commands()

PDFTOTEXT = shutil.which("pdftotext")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                    "(apt-get install -y chromium)")
needs_pdftotext = pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext is not installed "
                                     "(apt-get install -y poppler-utils)")


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("documents")
    media = make_sample_set(tmp / "media", layout="5.1", stereo=True)
    out, vault = tmp / "out", tmp / "vault"
    result = CliRunner().invoke(app, ["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]),
                                      "--mix", str(media.mixes["2.0"]), "--spec", "demo", "--title", "SIGNED",
                                      "--version", "v3", "--out", str(out), "--archive", str(vault)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = Report.model_validate(json.loads((out / "report.json").read_text()))
    return out, report


def _docs(report: Report, suffix: str) -> list[Path]:
    return [Path(p) for p in report.documents if p.endswith(suffix)]


def _pdf_text(pdf: Path) -> str:
    text = subprocess.run([PDFTOTEXT, "-layout", str(pdf), "-"], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    return re.sub(r"[ \t]+", " ", text)


def test_run_writes_html_and_pdf_in_the_package_listed_in_the_report_and_the_mhl(delivered):
    out, report = delivered
    package = out / "SIGNED_v3"
    (html,) = _docs(report, ".html")
    assert html.parent == package / "documents" and re.fullmatch(r"demo_delivery_\d{8}T\d{6}Z\.html", html.name)
    if CHROMIUM is not None:
        (pdf,) = _docs(report, ".pdf")
        assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000
    records = mhl_records(package)
    for p in map(Path, report.documents):
        rel = p.relative_to(package).as_posix()
        assert records[rel].hash == digest_file(p).xxh128
    assert verify_mhl(package) == []  # the whole package, documents included, matches its history
    # MD5 came from the package step's one read: it matches an independent MD5 of each file
    for d in report.deliverables:
        assert d.md5 == digest_file(d.path, formats=("md5",)).others["md5"]


@needs_pdftotext
@needs_chromium
def test_pdf_lists_every_deliverable_with_duration_start_timecode_and_xxh128(delivered):
    _, report = delivered
    (pdf,) = _docs(report, ".pdf")
    text = _pdf_text(pdf)
    media = [d for d in report.deliverables if d.kind != "extra"]
    assert len(media) >= 2
    for d in report.deliverables:
        assert d.name in text, d.name
        assert d.xxh128 in text, d.xxh128
        assert d.md5 is not None and d.md5 in text
    for d in media:
        assert d.duration_s is not None and d.start_timecode is not None
        assert duration_text(d.duration_s) in text and d.start_timecode in text
    for part in ("Delivery document", "Technical sheet", "QC report", "Loudness certificate", "Checksum manifest",
                 "Archive copies", "Sign-off", "Post-production supervisor", "Producer"):
        assert part in text, part
    assert "SIGNED v3 for demo" in text and "PASS" in text
    # the archive copy with its verification date (a long URI wraps inside its table cell)
    (copy,) = report.archive
    assert copy.verified and copy.verified_at is not None
    assert date_text(copy.verified_at) in text and "verified" in text


@needs_chromium
def test_html_renders_in_a_screenshot_with_the_key_facts_in_the_dom(delivered, tmp_path):
    _, report = delivered
    (html,) = _docs(report, ".html")
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1600", html.resolve().as_uri(), tmp=tmp_path)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(shot), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, timeout=60).stdout
    pixels = np.frombuffer(raw, np.uint8)
    assert pixels.size > 1000 and (pixels < 128).mean() > 0.005 and pixels.std() > 10
    dom = chromium("--dump-dom", html.resolve().as_uri(), tmp=tmp_path).stdout
    assert 'id="verdict">PASS' in dom
    files = re.findall(r'<div class="file" data-name="([^"]+)">', dom)
    assert files == [d.name for d in report.deliverables]
    assert all(d.xxh128 in dom for d in report.deliverables)
    assert len(re.findall(r'<tr class="signatory">', dom)) == 3


def test_loudness_certificate_shows_measured_against_the_spec_targets(delivered):
    _, report = delivered
    (html,) = _docs(report, ".html")
    text = html.read_text()
    spec = load_spec("demo")
    rows = re.findall(r'<tr class="loudness-check" data-track="([^"]+)" data-check="([^"]+)" data-status="(\w+)">'
                      r"(.*?)</tr>", text, re.S)
    measured = {t["track"]: t for t in report.measurements["loudness"]}
    ruled = [t for t in spec.audio.tracks if t.loudness is not None]
    assert ruled and {r[0] for r in rows} == {t.id for t in ruled}
    for track in ruled:
        rule = track.loudness
        assert rule is not None
        (row,) = [r for r in rows if r[0] == track.id and r[1] == "audio.loudness.integrated"]
        assert rule.method == "bs1770-4"  # the demo spec's rules: programme loudness
        value = measured[track.id]["integrated_lufs"]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row[3])
        assert cells[2] == f"{value:.1f} LUFS"
        assert rule.target_lufs is not None
        assert cells[3] == (f"{rule.target_lufs:.1f} LUFS -{rule.tolerance_lu.minus:.1f}/"
                            f"+{rule.tolerance_lu.plus:.1f} LU")
        within = rule.target_lufs - rule.tolerance_lu.minus <= value <= rule.target_lufs + rule.tolerance_lu.plus
        assert row[2] == ("pass" if within else "fail")
        if rule.max_true_peak_dbtp is not None:
            (tp,) = [r for r in rows if r[0] == track.id and r[1] == "audio.loudness.true_peak"]
            tp_cells = re.findall(r"<td[^>]*>(.*?)</td>", tp[3])
            assert tp_cells[2] == f"{measured[track.id]['true_peak_dbtp']:.1f} dBTP"
            assert tp_cells[3] == f"&lt;= {rule.max_true_peak_dbtp:.1f} dBTP"
    assert "ITU-R BS.1770-4" in text and re.search(r'id=meter>deliver \S+ streaming meter', text)


def test_documents_command_remakes_them_from_report_json(delivered, tmp_path):
    out, report = delivered
    result = CliRunner().invoke(app, ["documents", str(out / "report.json"), "--out", str(tmp_path / "docs"),
                                      "--facility", "Stage 4, Example Post", "--signatory", "Producer=A. Example",
                                      "--signatory", "Distributor QC"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    made = sorted((tmp_path / "docs").iterdir())
    assert [p.suffix for p in made] == ([".html", ".pdf"] if CHROMIUM else [".html"])
    text = made[0].read_text()
    assert "Stage 4, Example Post" in text
    assert re.findall(r'<tr class="signatory"><td>([^<]*)</td><td[^>]*>([^<]*)</td>', text) == [
        ("Producer", "A. Example"), ("Distributor QC", "")]
    assert all(d.xxh128 in text and d.name in text for d in report.deliverables)


def test_documents_command_refuses_what_is_not_a_report(tmp_path):
    bad = tmp_path / "report.json"
    bad.write_text("{\"hello\": 1}")
    result = CliRunner().invoke(app, ["documents", str(bad)])
    assert result.exit_code == 2
    assert "not a deliver report.json" in result.output
    assert not (tmp_path / "documents").exists()
    gone = CliRunner().invoke(app, ["documents", str(tmp_path / "nope.json")])
    assert gone.exit_code == 2 and "no such report" in gone.output


def test_without_chromium_the_html_is_written_and_the_pdf_skipped_with_a_reason(delivered, tmp_path, monkeypatch):
    from tasks.documents import distributors_of, write_delivery_documents

    _, report = delivered
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no chromium on PATH: as on a machine without it
    (doc,) = write_delivery_documents(distributors_of(report, load_spec("demo")), tmp_path / "docs")
    assert doc.html.is_file() and doc.pdf is None
    assert doc.warning is not None and "Chromium is not installed" in doc.warning and "PDF skipped" in doc.warning
    assert [p.name for p in (tmp_path / "docs").iterdir()] == [doc.html.name]  # no partial, no empty PDF
