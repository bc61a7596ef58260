"""A self-contained HTML QC report: verdict, findings with timecodes and thumbnails, plots.

One file, no external resources (opens from a file share or an e-mail attachment): thumbnails are
small JPEGs grabbed by timecode from the master after the analysis and embedded as base64; the
loudness-over-time and luma plots are inline SVG drawn here (no plotting library).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from specs.errors import DeliverError
from specs.timecode import Timecode
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.files import atomic_output
from tasks.qc.findings import Finding
from tasks.report import Report

__all__ = ["render_html_report", "write_html_report", "grab_thumbnails", "svg_series"]

MAX_THUMBNAILS = 40
THUMB_WIDTH_PX = 240
_COLOURS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
_TRACK_COLOURS = ("#1565c0", "#2e7d32", "#6a1b9a", "#00838f", "#ad1457")


def _esc(x: Any) -> str:
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
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(y_label)}">',
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
                     f'text-anchor="end" fill="#c62828">{_esc(label)}</text>')
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
                         f'{_esc(labels[i])}</text>')
    parts.append(f'<text x="14" y="{top + ph / 2:.0f}" font-size="11" transform="rotate(-90 14 {top + ph / 2:.0f})" '
                 f'text-anchor="middle">{_esc(y_label)}</text>')
    if x0_label:
        parts.append(f'<text x="{left}" y="{height - 1}" font-size="10" fill="#666">0 s = {_esc(x0_label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _polyline(points: list[str], colour: str) -> str:
    return f'<polyline fill="none" stroke="{colour}" stroke-width="1.4" points="{" ".join(points)}"/>'


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin:0 0 4px}.verdict{display:inline-block;padding:4px 14px;border-radius:4px;color:#fff;font-weight:700}
.pass{background:#2e7d32}.fail{background:#c62828}.meta{color:#555;margin:6px 0 18px}
table{border-collapse:collapse;width:100%;margin:8px 0 18px}th,td{border-bottom:1px solid #ddd;padding:5px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.tc{font-family:ui-monospace,monospace;white-space:nowrap}
.sev{font-weight:700;white-space:nowrap}img.thumb{width:160px;border:1px solid #ccc;display:block}
.counts span{margin-right:14px}.small{color:#666;font-size:12px}
"""


def render_html_report(report: Report, *, thumbnails: dict[str, str] | None = None,
                       severity_names: dict[str, str] | None = None) -> str:
    """The report as one HTML document (no external resources)."""
    names = severity_names or {}
    thumbs = thumbnails or {}
    m = report.measurements
    pic = m.get("picture") or {}
    title = f"{report.title or 'QC report'} — {report.verdict.upper()}"
    rows = []
    for f in report.findings:
        colour = _COLOURS.get(f.severity.value, "#333")
        img = thumbs.get(f.timecode_in or "")
        rows.append(
            f'<tr class="finding" data-check="{_esc(f.check)}" data-severity="{f.severity.value}">'
            f'<td class="sev" style="color:{colour}">{_esc(names.get(f.severity.value, f.severity.value))}</td>'
            f"<td><code>{_esc(f.check)}</code>"
            f"{' <span class=small>(not measured)</span>' if f.status == 'not_measured' else ''}"
            f"{f'<br><span class=small>track {_esc(f.track)}</span>' if f.track else ''}</td>"
            f'<td class="tc">{_esc(f.timecode_in)}</td><td class="tc">{_esc(f.timecode_out)}</td>'
            f"<td>{_esc(f.message)}</td><td>{_esc(f.expected)}</td><td>{_esc(f.actual)}</td>"
            f"<td>{_img(img, f.timecode_in)}</td></tr>")
    findings_html = ("<table><thead><tr><th>severity</th><th>check</th><th>in</th><th>out</th><th>message</th>"
                     "<th>expected</th><th>actual</th><th>frame</th></tr></thead><tbody>" + "".join(rows)
                     + "</tbody></table>") if rows else "<p>No findings.</p>"

    sections = [f"<h2>Findings ({len(report.findings)})</h2>", findings_html]
    if report.layback:
        sections.append(_layback_html(report.layback))
    loud = m.get("loudness") or []
    if loud:
        sections.append("<h2>Loudness</h2><table><thead><tr><th>track</th><th>integrated LUFS</th><th>LRA LU</th>"
                        "<th>true peak dBTP</th><th>max short-term LUFS</th><th>measured from</th></tr></thead><tbody>")
        for t in loud:
            sections.append(f"<tr><td>{_esc(t.get('track'))}</td><td>{_num(t.get('integrated_lufs'))}</td>"
                            f"<td>{_num(t.get('loudness_range_lu'))}</td><td>{_num(t.get('true_peak_dbtp'))}</td>"
                            f"<td>{_num(t.get('max_short_term_lufs'))}</td>"
                            f"<td class=tc>{_esc(t.get('measured_from'))}</td></tr>")
        sections.append("</tbody></table>")
        series = [t.get("short_term_series_lufs") or [] for t in loud]
        rate_hz = float(loud[0].get("series_rate_hz") or 10.0)
        finite = [v for s in series for v in s if v is not None and math.isfinite(v)]
        lo = min([-40.0, *finite]) if finite else -40.0
        hi = max([-10.0, *finite]) if finite else -10.0
        guides = [(t["integrated_lufs"], f"{t['track']} integrated {t['integrated_lufs']:.1f}")
                  for t in loud[:1] if t.get("integrated_lufs") is not None]
        sections.append("<h3>Short-term loudness over the programme</h3>" + svg_series(
            series, x_step_s=1.0 / rate_hz, y_min=math.floor(lo / 5) * 5, y_max=math.ceil(hi / 5) * 5,
            y_label="LUFS (3 s)", labels=[str(t.get("track")) for t in loud], guides=guides,
            x0_label=str(loud[0].get("measured_from") or "")))
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
    for tp in m.get("two_pop") or []:
        sections.append(f"<p>2-pop, track {_esc(tp.get('track'))}: flash frame {_esc(tp.get('flash_frame_tc'))}, "
                        f"beep offset {_esc(tp.get('offset_frames'))} frames.</p>")
    counts = "".join(f"<span>{_esc(names.get(k, k))}: <b>{v}</b></span>" for k, v in report.counts.items())
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>"
            f"<h1>{_esc(report.title or 'QC report')} <span class='verdict {report.verdict}' id=verdict>"
            f"{report.verdict.upper()}</span></h1>"
            f"<div class=meta>spec <b>{_esc(report.spec)}</b> · {_esc(report.created)} · {_esc(report.tool)}"
            f"{' · <b>delivered with --force</b>' if report.forced else ''}</div><div class=counts>{counts}</div>"
            + "".join(sections) + "</body></html>")


def _layback_html(lb: dict[str, Any]) -> str:
    """Mixes married to the picture: the offset found per track, what was done, the 2-pop check."""
    rows = []
    for t in lb.get("tracks") or []:
        mixes = "<br>".join(_esc(Path(p).name) for p in t.get("mixes") or [])
        pop = t.get("two_pop_offset_frames")
        rows.append(f'<tr class="layback"><td>{_esc(t.get("track"))}</td><td class=small>{mixes}</td>'
                    f'<td>{t.get("offset_frames", 0):+.2f} ({t.get("offset_samples", 0):+d} samples)</td>'
                    f'<td>{_esc(t.get("alignment"))}</td><td>{"not found" if pop is None else f"{pop:+.2f}"}</td></tr>')
    notes = "".join(f"<li>{_esc(n)}</li>" for n in lb.get("notes") or [])
    return (f"<h2>Layback</h2><p class=small>picture stream-copied from {_esc(lb.get('start_timecode'))}; "
            f"picture packets md5 <code>{_esc(lb.get('picture_packets_md5'))}</code></p><table><thead><tr>"
            "<th>track</th><th>mix</th><th>offset found (frames)</th><th>alignment</th><th>2-pop offset (frames)</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>" + (f"<ul class=small>{notes}</ul>" if notes else ""))


def write_html_report(report: Report, path: str | Path, *, master: str | None = None,
                      severity_names: dict[str, str] | None = None) -> Path:
    """Render (with thumbnails from ``master`` when given) and write atomically; replaces an old one."""
    pic = report.measurements.get("picture") or {}
    thumbs: dict[str, str] = {}
    if master and pic.get("start_timecode") and report.findings:
        thumbs = grab_thumbnails(master, report.findings, pic["start_timecode"], Fraction(pic.get("rate") or "25"))
    text = render_html_report(report, thumbnails=thumbs, severity_names=severity_names)
    path = Path(path)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _img(src: str | None, tc: str | None) -> str:
    return f'<img class="thumb" alt="frame at {_esc(tc)}" src="{src}">' if src else ""


def _num(x: Any) -> str:
    return "—" if x is None else f"{x:.1f}"
