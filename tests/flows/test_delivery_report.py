"""The HTML report for the people who receive a delivery: a deliver run on tiny generated media, through the
CLI on a real Prefect API, then the report checked against report.json, ffprobe, the package's pictures and
headless Chromium (Debian's chromium package): deliverables table, archive copy with its verification time,
embedded poster and thumbnails."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from flows.cli import app, register_commands
from tasks.media.synth import make_sample_set
from tasks.report import Report, human_bytes
from tasks.report_html import POSTER_WIDTH_PX, PROGRAMME_THUMB_WIDTH_PX
from tests.browser import CHROMIUM, chromium

register_commands()


def _ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("delivery-report")
    media = make_sample_set(tmp / "media", layout="5.1", stereo=True)
    out, vault = tmp / "out", tmp / "vault"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    result = CliRunner().invoke(app, ["run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]),
                                      "--mix", str(media.mixes["2.0"]), "--spec", "demo", "--title", "REPORTED",
                                      "--version", "v2", "--out", str(out), "--archive", str(vault)],
                                catch_exceptions=False)
    after = dt.datetime.now(dt.UTC)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    text = (out / "report.html").read_text()
    return out, report, text, (before, after)


def _rows(text: str, cls: str) -> list[str]:
    return re.findall(rf'<tr class="{cls}"(.*?)</tr>', text, re.S)


def test_deliverables_table_matches_report_json_and_the_files(delivered):
    out, report, text, _ = delivered
    rows = re.findall(r'<tr class="deliverable" data-name="([^"]+)" data-size="(\d+)" data-xxh128="(\w+)">(.*?)</tr>',
                      text, re.S)
    assert [(n, int(s), h) for n, s, h, _ in rows] == [(d["name"], d["size"], d["xxh128"])
                                                     for d in report["deliverables"]]
    media = [d for d in report["deliverables"] if d["kind"] != "extra"]
    assert {d["name"] for d in media} >= {"REPORTED_v2_mezzanine.mov", "REPORTED_v2_screener.mp4"}
    cells = {n: body for n, _, _, body in rows}
    for d in report["deliverables"]:  # visible cells, not only attributes
        body = html.unescape(cells[d["name"]])
        assert d["name"] in body and d["xxh128"] in body
        assert f"{d['size']:,} bytes" in body and human_bytes(d["size"]) in body
    # format, duration and start timecode: what ffprobe reads from each file, in report.json and the table
    for d in media:
        probed = _ffprobe(Path(d["path"]))
        video = [s for s in probed["streams"] if s["codec_type"] == "video"]
        audio = [s for s in probed["streams"] if s["codec_type"] == "audio"]
        fmt = d["format"]
        assert fmt["container"] == probed["format"]["format_name"]
        assert d["duration_s"] == pytest.approx(float(probed["format"]["duration"]), abs=1e-3)
        assert 3.9 < d["duration_s"] < 8.1  # the generated programme, a few seconds
        assert [(a["codec"], a["channels"]) for a in fmt["audio"]] == [(s["codec_name"], s["channels"]) for s in audio]
        body = html.unescape(cells[d["name"]])
        if video:
            assert (fmt["video_codec"], fmt["width"], fmt["height"]) == (
                video[0]["codec_name"], video[0]["width"], video[0]["height"])
            assert f"{fmt['width']}×{fmt['height']}" in body and fmt["video_codec"] in body
            tc = probed["format"].get("tags", {}).get("timecode") or video[0].get("tags", {}).get("timecode")
            assert d["start_timecode"] == tc and tc and tc in body
        assert f"{len(audio)} audio track" in body
    mezz = next(d for d in media if d["name"].endswith("_mezzanine.mov"))
    assert mezz["format"]["video_codec"] == "prores" and "MOV · prores" in html.unescape(cells[mezz["name"]])
    # report.json stays loadable by the model (new fields are optional additions)
    assert Report.model_validate(report).deliverables[0].format is not None


def test_archive_copy_with_its_verification_time(delivered):
    out, report, text, (before, after) = delivered
    (copy,) = report["archive"]
    assert copy["verified"] is True
    verified_at = dt.datetime.fromisoformat(copy["verified_at"])
    assert before <= verified_at <= after
    (row,) = _rows(text, "archive-copy")
    assert 'data-verified="true"' in row and "verified" in row
    assert copy["verified_at"].replace("T", " ").replace("+00:00", " UTC") in row
    assert html.escape(copy["uri"]) in row


def _jpeg_info(data: bytes, tmp: Path) -> dict:
    path = tmp / "embedded.jpg"
    path.write_bytes(data)
    (stream,) = _ffprobe(path)["streams"]
    return stream


def test_poster_and_thumbnails_are_embedded_downscaled(delivered, tmp_path):
    out, report, text, _ = delivered
    figures = re.findall(r'<figure class="(poster|thumbnail)"><img src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)" '
                         r'width="(\d+)" height="(\d+)" alt="[^"]*"><figcaption>([^<]+)</figcaption>', text)
    extras = {d["name"]: d for d in report["deliverables"] if d["kind"] == "extra"}
    assert [f[0] for f in figures] == ["poster"] + ["thumbnail"] * (len(extras) - 1)
    assert len(figures) == 7  # the poster and six thumbnails of the programme
    for role, b64, width, height, name in figures:
        data = base64.b64decode(b64)
        assert data[:3] == b"\xff\xd8\xff"  # a JPEG (ITU-T T.81 SOI marker)
        source = _jpeg_info(Path(extras[name]["path"]).read_bytes(), tmp_path)
        embedded = _jpeg_info(data, tmp_path)
        want_w = min(POSTER_WIDTH_PX if role == "poster" else PROGRAMME_THUMB_WIDTH_PX, source["width"])
        assert (embedded["width"], embedded["height"]) == (int(width), int(height))
        assert embedded["width"] == want_w
        assert abs(embedded["height"] - want_w * source["height"] / source["width"]) <= 2  # aspect kept
        assert len(data) < Path(extras[name]["path"]).stat().st_size or embedded["width"] == source["width"]
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)  # still self-contained




@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (apt-get install chromium)")
def test_chromium_renders_the_tables_as_visible_text_and_a_screenshot(delivered, tmp_path):
    out, report, text, _ = delivered
    # Visible text: the page as rendered (innerText follows layout and CSS, hidden parts are left out), copied
    # into the DOM by a script appended to a copy of the report, then dumped.
    probe_page = tmp_path / "visible.html"
    probe_page.write_text(text.replace("</body>", "<script>const t=document.body.innerText;"
                                       "const p=document.createElement('pre');p.id='visible-text';p.textContent=t;"
                                       "document.documentElement.appendChild(p);</script></body>"))
    dom = chromium("--dump-dom", probe_page.resolve().as_uri(), tmp=tmp_path).stdout
    found = re.search(r'<pre id="visible-text">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    visible = html.unescape(found.group(1))
    assert "Deliverables" in visible and "Archive copies" in visible and "Poster and thumbnails" in visible
    for d in report["deliverables"]:
        assert d["name"] in visible and d["xxh128"] in visible and f"{d['size']:,} bytes" in visible
    assert "REPORTED v2" in visible and "PASS" in visible and "demo" in visible
    assert "verified" in visible and report["archive"][0]["verified_at"][:10] in visible
    # A screenshot with ink, and the images decoded by the browser (naturalWidth > 0 for every picture).
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1800", (out / "report.html").resolve().as_uri(),
              tmp=tmp_path)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(shot), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, timeout=60).stdout
    pixels = np.frombuffer(raw, np.uint8)
    assert pixels.size == 1200 * 1800
    assert (pixels < 128).mean() > 0.005 and pixels.std() > 10
    images = tmp_path / "images.html"
    images.write_text(text.replace("</body>", "<script>const bad=[...document.querySelectorAll('figure img')]"
                                   ".filter(i=>!i.complete||i.naturalWidth===0).length;const n=document"
                                   ".querySelectorAll('figure img').length;const p=document.createElement('pre');"
                                   "p.id='images';p.textContent=n+' '+bad;document.documentElement.appendChild(p);"
                                   "</script></body>"))
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", images.resolve().as_uri(), tmp=tmp_path).stdout
    assert re.search(r'<pre id="images">7 0</pre>', dom), dom[-500:]
    # Print: a PDF comes out (A4 landscape from the report's @page rule)
    pdf = tmp_path / "report.pdf"
    chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", (out / "report.html").resolve().as_uri(),
              tmp=tmp_path)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert box and float(box.group(1)) > float(box.group(2))  # landscape
