"""The HTML report: self-contained, shows verdict, findings with timecodes and thumbnails, plots;
rendered by headless Chromium (Debian's chromium package) to a non-blank screenshot."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from specs.loader import load_spec
from tasks.media.probe import probe
from tasks.media.synth import BlackDefect, IllegalLevelsDefect
from tasks.qc.engine import qc_master
from tasks.report import build_report
from tasks.report_html import write_html_report
from tests.browser import CHROMIUM, chromium
from tests.qc.media import married_set


@pytest.fixture(scope="module")
def html_report(tmp_path_factory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("html")
    media, married = married_set(tmp, [BlackDefect(at_s=1.0, duration_s=1.2),
                                       IllegalLevelsDefect(at_s=2.4, duration_s=0.4)])
    spec = load_spec("demo")
    qc = qc_master(probe(married), spec)
    report = build_report(spec=spec.name, findings=qc.findings, measurements=qc.measurements, title="HTML-TEST")
    return write_html_report(report, tmp / "report.html", master=str(married)), report


def test_html_is_self_contained_with_findings_thumbnails_and_plots(html_report):
    path, report = html_report
    text = path.read_text()
    assert "FAIL" in text and "HTML-TEST" in text
    assert "picture.black" in text and "01:00:01:00" in text
    assert text.count("data:image/jpeg;base64,") >= 2  # black and illegal-levels frames
    assert text.count("<svg") == 2  # loudness over time, luma
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)  # nothing external






def test_html_screenshot_not_blank_and_dom_has_findings(html_report, tmp_path):
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    path, report = html_report
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1600", path.resolve().as_uri(), tmp=tmp_path)
    assert shot.is_file()
    # Decode the PNG with ffmpeg to grey pixels: a rendered page has ink, a blank one is uniform.
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(shot), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, timeout=60).stdout
    pixels = np.frombuffer(raw, np.uint8)
    assert pixels.size > 1000
    assert (pixels < 128).mean() > 0.005 and pixels.std() > 10
    dom = chromium("--dump-dom", path.resolve().as_uri(), tmp=tmp_path).stdout
    rows = re.findall(r'<tr class="finding" data-check="([a-z_.]+)" data-severity="(\w+)"', dom)
    assert ("picture.black", "error") in rows
    assert ("picture.illegal_levels", "warning") in rows
    assert 'id="verdict">FAIL' in dom


def test_layback_section_shows_offset_alignment_and_two_pop():
    from tasks.report_html import render_html_report

    layback = {"start_timecode": "00:59:56:00", "picture_packets_md5": "0123abcd",
               "tracks": [{"track": "main-51", "mixes": ["/mix/late.wav"], "offset_samples": 3840, "offset_frames": 2.0,
                           "alignment": "padded at the head", "two_pop_offset_frames": 0.001},
                          {"track": "stereo-20", "mixes": ["/mix/st.wav"], "offset_samples": 0, "offset_frames": 0.0,
                           "alignment": "aligned as delivered", "two_pop_offset_frames": None}],
               "notes": ["late.wav: offset +3840 samples (+2.00 frames) against the picture start 00:59:56:00"]}
    html = render_html_report(build_report(spec="demo", findings=[], layback=layback, title="LB"))
    rows = re.findall(r'<tr class="layback">(.*?)</tr>', html)
    assert len(rows) == 2
    assert "main-51" in rows[0] and "late.wav" in rows[0] and "+2.00 (+3840 samples)" in rows[0]
    assert "padded at the head" in rows[0] and "<td>+0.00</td>" in rows[0]
    assert "stereo-20" in rows[1] and "not found" in rows[1]
    assert "0123abcd" in html and "+3840 samples (+2.00 frames)" in html


def test_an_older_report_json_still_loads_and_renders_its_deliverables_and_archive():
    """report.json written before the format, duration, start timecode and verified_at fields: loads, and the
    report shows what it has, with a dash where a fact is missing."""
    from tasks.report import Report
    from tasks.report_html import render_html_report

    old = {"verdict": "pass", "spec": "demo", "findings": [], "title": "OLD", "version": "v1", "delivered": True,
           "deliverables": [{"name": "OLD_v1_mezzanine.mov", "path": "/gone/OLD_v1_mezzanine.mov", "size": 1536,
                             "xxh128": "00112233445566778899aabbccddeeff", "kind": "mezzanine"}],
           "archive": [{"target": "/vault", "uri": "file:///vault/OLD_v1", "verified": True},
                       {"target": "s3://b/p", "uri": "s3://b/p/OLD_v1", "verified": False}],
           "archive_error": "archive copies failed verification: s3://b/p/OLD_v1"}
    report = Report.model_validate(old)
    assert report.deliverables[0].format is None and report.archive[0].verified_at is None
    text = render_html_report(report)
    (row,) = re.findall(r'<tr class="deliverable" data-name="OLD_v1_mezzanine.mov" data-size="1536" '
                        r'data-xxh128="00112233445566778899aabbccddeeff">(.*?)</tr>', text)
    assert "1.5 KiB" in row and "1,536 bytes" in row and row.count("<td class=tc>—</td>") == 2
    copies = re.findall(r'<tr class="archive-copy" data-verified="(\w+)">(.*?)</tr>', text)
    assert [v for v, _ in copies] == ["true", "false"]
    assert "NOT VERIFIED" in copies[1][1] and "<td class=tc>—</td>" in copies[0][1]
    assert "Archive failed: archive copies failed verification" in text
    assert "<dt>Archive copies</dt><dd>1 verified of 2</dd>" in text


def test_a_qc_only_report_has_no_delivery_facts_and_prints_cleanly():
    from tasks.report_html import render_html_report

    text = render_html_report(build_report(spec="demo", findings=[], title="master.mov"))
    facts = re.findall(r"<dt>([^<]+)</dt>", text)
    assert facts == ["Title", "Spec", "Verdict", "Date"]
    assert "id=deliverables" not in text and "id=archive" not in text and "id=programme" not in text
    assert "@media print" in text and "@page{size:A4 landscape" in text


def test_sizes_and_durations_read_as_people_write_them():
    from tasks.report import human_bytes
    from tasks.report_html import duration_text, rate_text

    assert [human_bytes(n) for n in (0, 1023, 1024, 7_698_427, 3 * 2**40)] == [
        "0 B", "1023 B", "1.0 KiB", "7.3 MiB", "3.0 TiB"]
    assert (duration_text(4.0) == "0:00:04.000" and duration_text(5405.12) == "1:30:05.120"
            and duration_text(None) == "—")
    assert rate_text("24000/1001") == "23.976" and rate_text("25") == "25"


def test_programme_pictures_downscale_a_large_poster_and_skip_what_is_gone(tmp_path):
    """A 1920x1080 poster is embedded 480 px wide (aspect kept); a missing thumbnail is left out of the
    pictures (the deliverables table still lists it)."""
    import base64
    import subprocess

    from tasks.report import DeliverableEntry
    from tasks.report_html import POSTER_WIDTH_PX, _jpeg_size, programme_pictures

    poster = tmp_path / "T_v1_poster.jpg"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=25", "-frames:v", "1",
                    str(poster)], check=True, timeout=60)
    entries = [DeliverableEntry(name=f"extras/{poster.name}", path=str(poster), size=poster.stat().st_size,
                                xxh128="0" * 32, kind="extra"),
               DeliverableEntry(name="extras/T_v1_thumb_01.jpg", path=str(tmp_path / "gone.jpg"), size=1,
                                xxh128="1" * 32, kind="extra")]
    (pic,) = programme_pictures(entries)
    assert (pic.role, pic.width_px, pic.height_px) == ("poster", POSTER_WIDTH_PX, 270)
    data = base64.b64decode(pic.data_uri.removeprefix("data:image/jpeg;base64,"))
    assert _jpeg_size(data) == (480, 270) and len(data) < poster.stat().st_size
    assert _jpeg_size(b"\x89PNG\r\n\x1a\n") is None
