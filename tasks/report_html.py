"""A self-contained HTML report for the people who receive a delivery and for QC.

Header (title, version, spec, verdict, date), the deliverables (name, format, duration, start
timecode, size, xxh128), the verified archive copies, the programme's poster and thumbnails, the QC
findings with timecodes and frames, the layback, loudness and luma plots. Print-friendly (A4
landscape, no cut rows).

One file, no external resources (opens from a file share or an e-mail attachment): finding frames
are small JPEGs grabbed by timecode from the master after the analysis, the poster and thumbnails
are the package's extras downscaled; all embedded as base64 ``data:`` URIs (RFC 2397). The
loudness-over-time and luma plots are inline SVG drawn here (no plotting library).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from specs.errors import DeliverError
from specs.timecode import Timecode
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.files import atomic_output
from tasks.qc.findings import Finding
from tasks.report import DeliverableEntry, Report, human_bytes

__all__ = ["render_html_report", "write_html_report", "grab_thumbnails", "svg_series", "EmbeddedPicture",
           "programme_pictures", "findings_html", "loudness_html", "luma_html", "deliverables_html", "archive_html",
           "pictures_html", "format_text", "duration_text", "rate_text", "date_text", "esc", "REPORT_CSS"]

MAX_THUMBNAILS = 40
THUMB_WIDTH_PX = 240
POSTER_WIDTH_PX = 480  # the package's poster and thumbnails are embedded at most this wide (never upscaled)
PROGRAMME_THUMB_WIDTH_PX = 240
_COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
_TRACK_COLOURS = ("#1565c0", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457")


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _frame_of(tc: str, start: Timecode) -> int:
    return Timecode.parse(tc, start.rate, drop_frame=start.drop_frame).frames - start.frames


def grab_thumbnails(master: str, findings: Sequence[Finding], start_timecode: str, rate: Fraction,
                    *, limit: int = MAX_THUMBNAILS) -> dict[str, str]:
    """``{timecode_in: data URI}`` of the first frame of each finding (a JPEG per distinct timecode).

    Whole-file metadata findings are skipped (their "frame" is every frame). A frame that cannot be
    grabbed is left out; the report still lists the finding.
    """
    start = Timecode.parse(start_timecode, rate)
    out: dict[str, str] = {}
    for f in findings:
        tc = f.timecode_in
        if not tc or tc in out or f.check.startswith("metadata.") or len(out) >= limit:
            continue
        frame = _frame_of(tc, start)
        if frame < 0:
            continue
        # Seek to the middle of the frame so rounding cannot land on its neighbour.
        at_s = (Fraction(frame) + Fraction(1, 2)) / rate
        try:
            res = run_ffmpeg(["-ss", f"{float(at_s):.6f}", "-i", master, "-map", "0:v:0", "-frames:v", "1",
                              "-vf", f"scale={THUMB_WIDTH_PX}:-2:flags=bilinear,format=yuvj420p", "-c:v", "mjpeg",
                              "-q:v", "5", "-f", "image2pipe", "pipe:1"], capture_stdout=True,
                             what=f"thumbnail at {tc}", timeout_s=60)
        except DeliverError:
            continue
        if res.stdout:
            out[tc] = "data:image/jpeg;base64," + base64.b64encode(res.stdout).decode("ascii")
    return out


def svg_speech_timeline(tracks: Sequence[tuple[str, Sequence[dict[str, Any]]]], *, total_s: float,
                        width: int = 960) -> str:
    """One lane per track with its speech segments (``start_s``/``end_s``), on the time axis of
    :func:`svg_series` (same width and margins) so it lines up under the loudness plot."""
    left, right, lane = 56, 12, 18
    pw = width - left - right
    height = lane * len(tracks) + 6
    span = max(total_s, 1e-9)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="speech segments">']
    for i, (name, segments) in enumerate(tracks):
        y0 = 3 + i * lane
        colour = _TRACK_COLOURS[i % len(_TRACK_COLOURS)]
        parts.append(f'<rect x="{left}" y="{y0}" width="{pw}" height="{lane - 4}" fill="#fafafa" stroke="#bbb"/>'
                     f'<text x="{left - 4}" y="{y0 + lane - 8}" font-size="9" text-anchor="end">{esc(name)}</text>')
        for seg in segments:
            a = left + pw * min(max(float(seg["start_s"]) / span, 0.0), 1.0)
            b = left + pw * min(max(float(seg["end_s"]) / span, 0.0), 1.0)
            tip = f"{seg.get('timecode_in', '')}-{seg.get('timecode_out', '')}"
            parts.append(f'<rect x="{a:.1f}" y="{y0 + 1}" width="{max(b - a, 1.0):.1f}" height="{lane - 6}" '
                         f'fill="{colour}" fill-opacity="0.6"><title>{esc(tip)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def svg_series(series: Sequence[Sequence[float | None]], *, x_step_s: float, y_min: float, y_max: float,
               y_label: str, labels: Sequence[str] = (), guides: Sequence[tuple[float, str]] = (),
               spans: Sequence[tuple[float, float, str]] = (), x0_label: str = "", width: int = 960,
               height: int = 220) -> str:
    """A line plot as inline SVG: one polyline per series (``None`` breaks a line), horizontal guides
    ``(value, label)``, shaded x ``spans`` ``(from_s, to_s, colour)`` and a time axis in seconds."""
    left, right, top, bottom = 56, 12, 10, 30
    pw, ph = width - left - right, height - top - bottom
    n = max((len(s) for s in series), default=0)
    total_s = max(n * x_step_s, 1e-9)

    def x(t: float) -> float:
        return left + pw * min(max(t / total_s, 0.0), 1.0)

    def y(v: float) -> float:
        return top + ph * (1 - (min(max(v, y_min), y_max) - y_min) / (y_max - y_min))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(y_label)}">',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/>']
    for a, b, colour in spans:
        parts.append(f'<rect x="{x(a):.1f}" y="{top}" width="{max(x(b) - x(a), 1.5):.1f}" height="{ph}" '
                     f'fill="{colour}" fill-opacity="0.18"/>')
    step = _nice_step((y_max - y_min) / 4)
    v = math.ceil(y_min / step) * step
    while v <= y_max + 1e-9:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e0e0e0"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>')
        v += step
    t_step = _nice_step(total_s / 8)
    t = 0.0
    while t <= total_s + 1e-9:
        parts.append(f'<text x="{x(t):.1f}" y="{height - 10}" font-size="11" text-anchor="middle">{t:g} s</text>')
        t += t_step
    for value, label in guides:
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#c62828" '
                     f'stroke-dasharray="5,4"/><text x="{left + pw - 4}" y="{y(value) - 4:.1f}" font-size="11" '
                     f'text-anchor="end" fill="#c62828">{esc(label)}</text>')
    for i, s in enumerate(series):
        colour = _TRACK_COLOURS[i % len(_TRACK_COLOURS)]
        line: list[str] = []
        stride = max(1, len(s) // (pw * 2))  # at most two points per pixel
        for j in range(0, len(s), stride):
            val = s[j]
            if val is None or not math.isfinite(val):
                if len(line) > 1:
                    parts.append(_polyline(line, colour))
                line = []
                continue
            line.append(f"{x(j * x_step_s):.1f},{y(val):.1f}")
        if len(line) > 1:
            parts.append(_polyline(line, colour))
        if i < len(labels):
            parts.append(f'<text x="{left + 8}" y="{top + 16 + 14 * i}" font-size="12" fill="{colour}">'
                         f'{esc(labels[i])}</text>')
    parts.append(f'<text x="14" y="{top + ph / 2:.0f}" font-size="11" transform="rotate(-90 14 {top + ph / 2:.0f})" '
                 f'text-anchor="middle">{esc(y_label)}</text>')
    if x0_label:
        parts.append(f'<text x="{left}" y="{height - 1}" font-size="10" fill="#666">0 s = {esc(x0_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _polyline(points: list[str], colour: str) -> str:
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.4" points="{" ".join(points)}"/>'


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


REPORT_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin:0 0 4px}.verdict{display:inline-block;padding:4px 14px;border-radius:4px;color:#fff;font-weight:700}
.pass{background:#2e7d32}.fail{background:#c62828}.meta{color:#555;margin:6px 0 18px}
table{border-collapse:collapse;width:100%;margin:8px 0 18px}th,td{border-bottom:1px solid #ddd;padding:5px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.tc{font-family:ui-monospace,monospace;white-space:nowrap}
.sev{font-weight:700;white-space:nowrap}img.thumb{width:160px;border:1px solid #ccc;display:block}
.counts span{margin-right:14px}.small{color:#666;font-size:12px}
header.head{border-bottom:2px solid #222;padding-bottom:10px;margin-bottom:14px}
dl.facts{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:2px 14px;margin:8px 0 0}
dl.facts dt{color:#555}dl.facts dd{margin:0;font-weight:600}
nav.toc a{margin-right:14px;color:#1565c0;text-decoration:none}
code.hash,td.hash,td.xxh{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all}
td.xxh{white-space:nowrap;word-break:normal}
td.num{text-align:right;white-space:nowrap}.bad{color:#c62828;font-weight:700}.ok{color:#2e7d32;font-weight:700}
tr.group td{background:#fafafa;color:#555;font-weight:600}
figure{margin:0 12px 12px 0;display:inline-block;vertical-align:top}figure img{border:1px solid #ccc;display:block}
figcaption{font-size:12px;color:#555}
@page{size:A4 landscape;margin:12mm}
@media print{body{margin:0;max-width:none;font-size:11px}nav.toc{display:none}h2,h3{break-after:avoid}
tr,figure,img,svg{break-inside:avoid}.verdict,th,tr.group td{-webkit-print-color-adjust:exact;print-color-adjust:exact}
svg{max-width:100%;height:auto}}
"""


def render_html_report(report: Report, *, thumbnails: dict[str, str] | None = None,
                       severity_names: dict[str, str] | None = None,
                       pictures: Sequence[EmbeddedPicture] = ()) -> str:
    """The report as one HTML document (no external resources); ``pictures`` are the programme's
    poster and thumbnails (:func:`programme_pictures`)."""
    names = severity_names or {}
    thumbs = thumbnails or {}
    m = report.measurements
    title = f"{report.title or 'QC report'} — {report.verdict.upper()}"
    sections = []
    if report.deliverables:
        sections.append(deliverables_html(report.deliverables))
    if report.archive or report.archive_error:
        sections.append(archive_html(report))
    if pictures:
        sections.append(pictures_html(pictures))
    sections.append(findings_html(report, thumbs, names))
    if report.layback:
        sections.append(_layback_html(report.layback))
    sections += [loudness_html(report), luma_html(report)]
    for tp in m.get("two_pop") or []:
        sections.append(f"<p>2-pop, track {esc(tp.get('track'))}: flash frame {esc(tp.get('flash_frame_tc'))}, "
                        f"beep offset {esc(tp.get('offset_frames'))} frames.</p>")
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{REPORT_CSS}</style></head><body>" + _header_html(report, names, pictures)
            + "".join(sections) + "</body></html>")


def findings_html(report: Report, thumbnails: dict[str, str], names: dict[str, str]) -> str:
    """The QC findings: severity (the spec's names), check, in/out timecodes, message, expected, actual,
    the frame at the finding (``thumbnails``: :func:`grab_thumbnails`)."""
    rows = []
    for f in report.findings:
        colour = _COLOURS.get(f.severity.value, "#333")
        img = thumbnails.get(f.timecode_in or "")
        rows.append(
            f'<tr class="finding" data-check="{esc(f.check)}" data-severity="{f.severity.value}">'
            f'<td class="sev" style="color:{colour}">{esc(names.get(f.severity.value, f.severity.value))}</td>'
            f"<td><code>{esc(f.check)}</code>"
            f"{' <span class=small>(not measured)</span>' if f.status == 'not_measured' else ''}"
            f"{f'<br><span class=small>track {esc(f.track)}</span>' if f.track else ''}</td>"
            f'<td class="tc">{esc(f.timecode_in)}</td><td class="tc">{esc(f.timecode_out)}</td>'
            f"<td>{esc(f.message)}</td><td>{esc(f.expected)}</td><td>{esc(f.actual)}</td>"
            f"<td>{_img(img, f.timecode_in)}</td></tr>")
    table = ("<table><thead><tr><th>severity</th><th>check</th><th>in</th><th>out</th><th>message</th>"
             "<th>expected</th><th>actual</th><th>frame</th></tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>") if rows else "<p>No findings.</p>"
    return f"<h2 id=findings>Findings ({len(report.findings)})</h2>{table}"


def loudness_html(report: Report) -> str:
    """Every track's loudness (table), the short-term loudness plot and the dialogue gate's speech lanes;
    empty when nothing was measured."""
    loud = report.measurements.get("loudness") or []
    sections: list[str] = []
    if loud:
        sections.append("<h2 id=loudness>Loudness</h2><table><thead><tr><th>track</th><th>integrated LUFS</th>"
                        "<th>LRA LU</th><th>true peak dBTP</th><th>max short-term LUFS</th>"
                        "<th>dialogue LKFS</th><th>speech %</th><th>LDR LU</th><th>measured from</th>"
                        "</tr></thead><tbody>")
        for t in loud:
            sections.append(f"<tr><td>{esc(t.get('track'))}</td><td>{_num(t.get('integrated_lufs'))}</td>"
                            f"<td>{_num(t.get('loudness_range_lu'))}</td><td>{_num(t.get('true_peak_dbtp'))}</td>"
                            f"<td>{_num(t.get('max_short_term_lufs'))}</td><td>{_num(t.get('dialogue_lufs'))}</td>"
                            f"<td>{_num(t.get('speech_percent'))}</td><td>{_num(t.get('loudness_to_dialogue_lu'))}</td>"
                            f"<td class=tc>{esc(t.get('measured_from'))}</td></tr>")
        sections.append("</tbody></table>")
        method = next((t.get("dialogue_method") for t in loud if t.get("dialogue_method")), None)
        if method:
            sections.append(f"<p>Dialogue loudness: {esc(method)}.</p>")
        series = [t.get("short_term_series_lufs") or [] for t in loud]
        rate_hz = float(loud[0].get("series_rate_hz") or 10.0)
        finite = [v for s in series for v in s if v is not None and math.isfinite(v)]
        lo = min([-40.0, *finite]) if finite else -40.0
        hi = max([-10.0, *finite]) if finite else -10.0
        guides = [(t["integrated_lufs"], f"{t['track']} integrated {t['integrated_lufs']:.1f}")
                  for t in loud[:1] if t.get("integrated_lufs") is not None]
        if finite:  # a report without the series (older, or silence throughout) has nothing to plot
            sections.append("<h3>Short-term loudness over the programme</h3>" + svg_series(
                series, x_step_s=1.0 / rate_hz, y_min=math.floor(lo / 5) * 5, y_max=math.ceil(hi / 5) * 5,
                y_label="LUFS (3 s)", labels=[str(t.get("track")) for t in loud], guides=guides,
                x0_label=str(loud[0].get("measured_from") or "")))
        if any(t.get("speech_segments") is not None for t in loud):
            total_s = max((len(sr) for sr in series), default=0) / rate_hz
            sections.append("<h3>Speech detected (dialogue gate)</h3>" + svg_speech_timeline(
                [(str(t.get("track")), t.get("speech_segments") or []) for t in loud
                 if t.get("speech_segments") is not None], total_s=total_s))
    return "".join(sections)


def luma_html(report: Report) -> str:
    """Mean luma per frame of the whole master, picture findings shaded; empty without a picture analysis."""
    pic = report.measurements.get("picture") or {}
    sections: list[str] = []
    luma = pic.get("luma_mean_series") or []
    if luma:
        rate = Fraction(pic.get("rate") or "25")
        start = Timecode.parse(pic["start_timecode"], rate) if pic.get("start_timecode") else None
        spans = []
        for f in report.findings:
            if start is not None and f.timecode_in and f.timecode_out and f.check.startswith("picture."):
                spans.append((_frame_of(f.timecode_in, start) / float(rate),
                              _frame_of(f.timecode_out, start) / float(rate), _COLOURS.get(f.severity.value, "#999")))
        ffoa_s = (pic.get("ffoa_frame") or 0) / float(rate)
        sections.append("<h3>Mean luma per frame (whole master; shaded: picture findings)</h3>" + svg_series(
            [luma], x_step_s=1.0 / float(rate), y_min=0.0, y_max=1.0, y_label="mean luma (0..1)",
            labels=["luma"], guides=[(0.0625, "black (code 64/1023)")], spans=spans,
            x0_label=f"{pic.get('start_timecode', '')}; programme from {ffoa_s:g} s"))
        sections.append(f"<p class=small>{pic.get('frames')} frames at {rate} fps; max R 103 level excursions "
                        f"{pic.get('max_illegal_share_percent')} % of samples; max outside R'G'B' gamut "
                        f"{pic.get('max_gamut_share_percent')} % of the analysis grid "
                        f"(every {pic.get('analysis_grid_step_px', 1)} px).</p>")
    return "".join(sections)


def _header_html(report: Report, names: dict[str, str], pictures: Sequence[EmbeddedPicture]) -> str:
    """Title, verdict, and the facts a producer looks for first; a table of contents on screen."""
    counts = "".join(f"<span>{esc(names.get(k, k))}: <b>{v}</b></span>" for k, v in report.counts.items())
    if report.delivered:
        delivered = "yes, with --force despite error findings" if report.forced else "yes"
    elif report.deliverables:
        delivered = "made, but not archived" if report.archive_error else "not yet"
    else:
        delivered = "no" if report.verdict == "fail" else "—"
    facts = [("Title", report.title or "—"), ("Spec", report.spec), ("Verdict", report.verdict.upper()),
             ("Date", date_text(report.created))]
    if report.version is not None:  # a deliver run (a QC-only report has no version and delivers nothing)
        facts[1:1] = [("Version", report.version)]
        facts += [("Delivered", delivered),
                  ("Deliverables", str(sum(1 for d in report.deliverables if d.kind != "extra"))),
                  ("Archive copies", f"{sum(1 for a in report.archive if a.verified)} verified of "
                   f"{len(report.archive)}" if report.archive else "none requested")]
    toc = [("deliverables", "Deliverables", bool(report.deliverables)),
           ("archive", "Archive copies", bool(report.archive or report.archive_error)),
           ("programme", "Poster and thumbnails", bool(pictures)), ("findings", "Findings", True),
           ("layback", "Layback", bool(report.layback)),
           ("loudness", "Loudness", bool(report.measurements.get("loudness")))]
    return (f"<header class=head><h1>{esc(report.title or 'QC report')} {esc(report.version or '')} "
            f"<span class='verdict {report.verdict}' id=verdict>{report.verdict.upper()}</span></h1>"
            f"<dl class=facts>{''.join(f'<dt>{k}</dt><dd>{esc(v)}</dd>' for k, v in facts)}</dl>"
            f"<div class=meta>made by {esc(report.tool)}{' on ' + esc(report.host) if report.host else ''}"
            f"{' · <b>delivered with --force</b>' if report.forced else ''}</div><div class=counts>{counts}</div>"
            f"<nav class=toc>{''.join(f'<a href=#{a}>{t}</a>' for a, t, on in toc if on)}</nav></header>")


def deliverables_html(entries: Sequence[DeliverableEntry]) -> str:
    """Every file of the package: name, kind, format, duration, start timecode, size, xxh128."""
    media = [d for d in entries if d.kind != "extra"]
    extras = [d for d in entries if d.kind == "extra"]
    rows = [_deliverable_row(d) for d in media]
    if extras:
        rows.append('<tr class="group"><td colspan=6>Extras: poster and thumbnails of the programme</td></tr>')
        rows += [_deliverable_row(d) for d in extras]
    total = sum(d.size for d in entries)
    return ("<h2 id=deliverables>Deliverables</h2><table id=deliverables-table><thead><tr><th>name</th>"
            "<th>format</th><th>duration</th><th>start timecode</th><th>size</th><th>xxh128</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><p class=small>{len(entries)} files, {human_bytes(total)} "
            f"({total:,} bytes) in all; xxh128 as in the package's manifest.json and ASC MHL history.</p>")


def _deliverable_row(d: DeliverableEntry) -> str:
    kind = f'<br><span class=small>{esc(d.kind)}</span>' if d.kind and d.kind != "extra" else ""
    return (f'<tr class="deliverable" data-name="{esc(d.name)}" data-size="{d.size}" data-xxh128="{esc(d.xxh128)}">'
            f"<td><b>{esc(d.name)}</b>{kind}</td><td>{format_text(d)}</td>"
            f"<td class=tc>{duration_text(d.duration_s)}</td><td class=tc>{esc(d.start_timecode or '—')}</td>"
            f"<td class=num>{human_bytes(d.size)}<br><span class=small>{d.size:,} bytes</span></td>"
            f"<td class=xxh>{esc(d.xxh128)}</td></tr>")


def format_text(d: DeliverableEntry) -> str:
    """``MOV · prores (HQ) 1920×1080 yuv422p10le @ 25 fps · 2 audio tracks: pcm_s24le 6 ch 48 kHz; …``."""
    f = d.format
    if f is None:
        return "JPEG image" if d.name.lower().endswith((".jpg", ".jpeg")) else "—"
    suffix = Path(d.name).suffix.lstrip(".").upper()
    names = f.container.split(",")
    container = suffix if suffix and (suffix.lower() in names or len(names) > 1) else names[0].upper()
    parts = [esc(container)]
    if f.video_codec:
        profile = f" ({esc(f.video_profile)})" if f.video_profile else ""
        parts.append(f"{esc(f.video_codec)}{profile} {f.width}×{f.height}"
                     f"{' ' + esc(f.pix_fmt) if f.pix_fmt else ''} @ {rate_text(f.frame_rate)} fps")
    if f.audio:
        tracks = "; ".join(f"{esc(a.codec)} {a.channels} ch"
                           f"{' (' + esc(a.channel_layout) + ')' if a.channel_layout else ''}"
                           f" {a.sample_rate_hz / 1000:g} kHz" for a in f.audio)
        parts.append(f"{len(f.audio)} audio track{'s' if len(f.audio) > 1 else ''}: {tracks}")
    return " · ".join(parts)


def archive_html(report: Report) -> str:
    rows = [f'<tr class="archive-copy" data-verified="{str(a.verified).lower()}"><td>{esc(a.target)}</td>'
            f"<td class=hash>{esc(a.uri)}</td><td class={'ok' if a.verified else 'bad'}>"
            f"{'verified' if a.verified else 'NOT VERIFIED'}</td><td class=tc>{esc(date_text(a.verified_at))}</td></tr>"
            for a in report.archive]
    table = ("<table><thead><tr><th>target</th><th>copy</th><th>check</th><th>verified at</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table><p class=small>Each copy was checked against the package file by "
             "file (a local copy read back and hashed, an S3 object by its CRC64NVME checksum and size); its "
             "ASC MHL history records the transfer.</p>") if rows else ""
    error = f"<p class=bad>Archive failed: {esc(report.archive_error)}</p>" if report.archive_error else ""
    return f"<h2 id=archive>Archive copies</h2>{error}{table}"


def pictures_html(pictures: Sequence[EmbeddedPicture]) -> str:
    figs = [f'<figure class="{p.role}"><img src="{p.data_uri}" width="{p.width_px}" height="{p.height_px}" '
            f'alt="{esc(p.role)} {esc(p.name)}"><figcaption>{esc(p.name)}</figcaption></figure>'
            for p in pictures]
    return f"<h2 id=programme>Poster and thumbnails</h2><div>{''.join(figs)}</div>"


def _layback_html(lb: dict[str, Any]) -> str:
    """Mixes married to the picture: the offset found per track, what was done, the 2-pop check."""
    rows = []
    for t in lb.get("tracks") or []:
        mixes = "<br>".join(esc(Path(p).name) for p in t.get("mixes") or [])
        pop = t.get("two_pop_offset_frames")
        rows.append(f'<tr class="layback"><td>{esc(t.get("track"))}</td><td class=small>{mixes}</td>'
                    f'<td>{t.get("offset_frames", 0):+.2f} ({t.get("offset_samples", 0):+d} samples)</td>'
                    f'<td>{esc(t.get("alignment"))}</td><td>{"not found" if pop is None else f"{pop:+.2f}"}</td></tr>')
    notes = "".join(f"<li>{esc(n)}</li>" for n in lb.get("notes") or [])
    return (f"<h2 id=layback>Layback</h2><p class=small>picture stream-copied from {esc(lb.get('start_timecode'))}; "
            f"picture packets md5 <code>{esc(lb.get('picture_packets_md5'))}</code></p><table><thead><tr>"
            "<th>track</th><th>mix</th><th>offset found (frames)</th><th>alignment</th><th>2-pop offset (frames)</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>" + (f"<ul class=small>{notes}</ul>" if notes else ""))


class EmbeddedPicture(NamedTuple):
    """A picture of the programme embedded in the report: role ``poster`` or ``thumbnail``."""

    name: str
    role: str
    data_uri: str
    width_px: int
    height_px: int


def programme_pictures(entries: Sequence[DeliverableEntry]) -> list[EmbeddedPicture]:
    """The package's poster and thumbnails (its extras), downscaled JPEGs as ``data:`` URIs.

    A picture that is gone or does not decode is left out; the deliverables table still lists it.
    """
    out: list[EmbeddedPicture] = []
    for d in entries:
        stem = Path(d.name).stem
        role = "poster" if stem.endswith("_poster") else "thumbnail" if "_thumb_" in stem else None
        if d.kind != "extra" or role is None or not Path(d.path).is_file():
            continue
        width = POSTER_WIDTH_PX if role == "poster" else PROGRAMME_THUMB_WIDTH_PX
        data = _downscaled(d, width)
        size = _jpeg_size(data or b"")
        if data is None or size is None:
            continue
        out.append(EmbeddedPicture(d.name, role, "data:image/jpeg;base64," + base64.b64encode(data).decode(), *size))
    out.sort(key=lambda p: (p.role != "poster", p.name))
    return out


# Downscaled pictures by (content hash, width): a plan run embeds the same extras (linked into every
# distributor's package) in each distributor's report and delivery document; each is scaled once per process.
_DOWNSCALED: dict[tuple[str, int], bytes | None] = {}
_DOWNSCALED_MAX = 256


def _downscaled(d: DeliverableEntry, width: int) -> bytes | None:
    """The picture of ``d`` at most ``width`` pixels wide as JPEG bytes; None when it does not decode."""
    key = (d.xxh128 or d.path, width)
    if key not in _DOWNSCALED:
        try:
            res = run_ffmpeg(["-v", "error", "-i", d.path, "-frames:v", "1", "-vf",
                              f"scale='min({width},iw)':-2:flags=bicubic,format=yuvj420p", "-c:v", "mjpeg",
                              "-q:v", "4", "-f", "image2pipe", "pipe:1"], capture_stdout=True,
                             what=f"report picture {d.name}", timeout_s=60)
        except DeliverError:
            return None  # not remembered: a file being replaced may decode next time
        if len(_DOWNSCALED) >= _DOWNSCALED_MAX:
            _DOWNSCALED.clear()
        _DOWNSCALED[key] = res.stdout or None
    return _DOWNSCALED[key]


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's start-of-frame marker (ITU-T T.81 B.2.2), None if not a JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    return None


def write_html_report(report: Report, path: str | Path, *, master: str | None = None,
                      severity_names: dict[str, str] | None = None) -> Path:
    """Render (with finding frames from ``master`` when given, and the package's poster and thumbnails)
    and write atomically; replaces an old one."""
    pic = report.measurements.get("picture") or {}
    thumbs: dict[str, str] = {}
    if master and pic.get("start_timecode") and report.findings:
        thumbs = grab_thumbnails(master, report.findings, pic["start_timecode"], Fraction(pic.get("rate") or "25"))
    text = render_html_report(report, thumbnails=thumbs, severity_names=severity_names,
                              pictures=programme_pictures(report.deliverables))
    path = Path(path)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _img(src: str | None, tc: str | None) -> str:
    return f'<img class="thumb" alt="frame at {esc(tc)}" src="{src}">' if src else ""


def _num(x: Any) -> str:
    return "—" if x is None else f"{x:.1f}"


def duration_text(seconds: float | None) -> str:
    """``h:mm:ss.mmm`` (``—`` when unknown)."""
    if seconds is None:
        return "—"
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"{h}:{m:02d}:{rest / 1000:06.3f}"


def rate_text(rate: str | None) -> str:
    """``24000/1001`` -> ``23.976``, ``25`` -> ``25``."""
    if not rate:
        return "?"
    value = float(Fraction(rate))
    return f"{value:g}" if value == int(value) else f"{value:.3f}"


def date_text(iso: str | None) -> str:
    """An ISO 8601 time as people read it: ``2026-12-07 02:15:59 UTC``."""
    if not iso:
        return "—"
    return iso.replace("T", " ").replace("+00:00", " UTC")
