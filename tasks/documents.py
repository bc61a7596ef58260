"""Delivery documents the producer signs: one per distributor, as HTML and PDF.

Each document holds a cover sheet (title, version, distributor and spec, date, facility, verdict), the
technical sheet of every file (format, codec, size, duration, start timecode, frame rate, tracks and
channel layout, loudness per track, xxh128 and MD5), the QC report (findings, frames, plots: the HTML
report's own pieces from :mod:`tasks.report_html`), a loudness certificate (measured values against the
spec's targets, judged by :func:`tasks.qc.loudness.evaluate_loudness_rule`, with method and meter), the
checksum manifest, the archive copies with their verification dates, and a sign-off block.

Built from a run's report (report.json), so ``deliver documents REPORT.json`` remakes them later. One
document per :class:`Distributor`; :func:`distributors_of` turns a report into that list (a plan run writes one
document per distributor, each from that distributor's own report).

PDF: headless Chromium's print-to-PDF. It is already what renders the HTML report in the tests, so the PDF
is the same HTML, CSS (``@page``, print media) and inline SVG plots as on screen, with no second layout
engine to keep in step; WeasyPrint (the maintained Python alternative) would add a Python dependency plus
Pango system libraries and renders SVG and grid layout differently. Without Chromium the HTML is written
and the PDF skipped with a warning (:attr:`WrittenDocument.warning`), not an error.

Files are written under the package's ``documents/`` folder, named ``<distributor>_delivery_<UTC
time>.html/.pdf``: a document is the record of one sitting, so a remake adds a new pair beside the old
ones instead of changing a file the package's ASC MHL history already lists
(:func:`record_in_package` adds them to that history as an in-place generation, after the archive copies
were made: they are an addition to the package, not part of what was archived).
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from specs.model import LoudnessSpec, Spec
from tasks import __version__
from tasks.archive.hashing import hash_file_xxh128
from tasks.audio.loudness import DialogueLoudness, LoudnessResult
from tasks.media.files import atomic_output, has_read_record, recorded_digests
from tasks.qc.loudness import DIALOGUE_LABEL, RuleOutcome, evaluate_loudness_rule
from tasks.report import DeliverableEntry, Report, human_bytes
from tasks.report_html import (
    REPORT_CSS,
    EmbeddedPicture,
    archive_html,
    date_text,
    duration_text,
    esc,
    findings_html,
    format_text,
    grab_thumbnails,
    loudness_html,
    luma_html,
    pictures_html,
    programme_pictures,
    rate_text,
)

__all__ = ["Distributor", "Signatory", "WrittenDocument", "DEFAULT_SIGNATORIES", "distributors_of",
           "render_delivery_document", "write_delivery_documents", "print_pdf", "chromium_binary",
           "chromium_command", "loudness_certificate_rows", "meter_text", "record_in_package", "DOCUMENTS_FOLDER"]

DOCUMENTS_FOLDER = "documents"
PDF_TIMEOUT_S = 180.0


class Distributor(NamedTuple):
    """Who a document is for: a name (today the spec's), the report of what was delivered to them, their spec
    (None when it cannot be loaded any more: the certificate then says the targets are unknown)."""

    name: str
    report: Report
    spec: Spec | None


class Signatory(NamedTuple):
    role: str
    name: str = ""


DEFAULT_SIGNATORIES = (Signatory("Post-production supervisor"), Signatory("Producer"),
                       Signatory("Received for the distributor"))


class WrittenDocument(NamedTuple):
    distributor: str
    html: Path
    pdf: Path | None
    warning: str | None = None  # why the PDF was not written


def distributors_of(report: Report, spec: Spec | None, name: str | None = None) -> list[Distributor]:
    """The distributor a report was delivered to, one document: ``name`` (a plan's distributor, whose own report
    this is), else the run's spec."""
    return [Distributor(name or report.spec, report, spec)]


def meter_text() -> str:
    """The loudness meter that measured the report's values, with its version."""
    try:
        ref = f"; checked against pyloudnorm {importlib.metadata.version('pyloudnorm')} in its tests"
    except importlib.metadata.PackageNotFoundError:
        ref = ""
    return (f"deliver {__version__} streaming meter (tasks.audio.loudness: ITU-R BS.1770-4, EBU Tech 3341 "
            f"and 3342){ref}")


# -- the loudness certificate -----------------------------------------------------------------------------

def _result_of(measured: dict[str, Any]) -> LoudnessResult:
    """The meter's result back from report.json's loudness entry (the values the rules judge; no series)."""
    d = None
    if measured.get("dialogue_method"):
        d = DialogueLoudness(dialogue_lufs=measured.get("dialogue_lufs"),
                             speech_percent=float(measured.get("speech_percent") or 0.0),
                             loudness_to_dialogue_lu=measured.get("loudness_to_dialogue_lu"), speech_segments=[],
                             method=measured["dialogue_method"])
    return LoudnessResult(
        integrated_lufs=measured.get("integrated_lufs"), loudness_range_lu=measured.get("loudness_range_lu"),
        true_peak_dbtp=measured.get("true_peak_dbtp"), sample_peak_dbfs=measured.get("sample_peak_dbfs"),
        max_momentary_lufs=measured.get("max_momentary_lufs"), max_short_term_lufs=measured.get("max_short_term_lufs"),
        duration_s=float(measured.get("duration_s") or 0.0), channels=[], short_term_series_lufs=[],
        layout="", sample_rate_hz=0, dialogue=d)


def _method_text(rule: LoudnessSpec) -> str:
    if rule.method == "dialogue-gated":
        return f"dialogue-gated loudness ({DIALOGUE_LABEL})"
    return "ITU-R BS.1770-4 gated programme loudness"


def loudness_certificate_rows(report: Report, spec: Spec | None) -> list[tuple[str, str, RuleOutcome]]:
    """``(track, method, outcome)`` for every constraint of every spec track's loudness rule, judged on the
    report's measured values by the QC's own rule (a rule's fallback too, when its method could not judge)."""
    rows: list[tuple[str, str, RuleOutcome]] = []
    if spec is None:
        return rows
    measured = {str(t.get("track")): t for t in report.measurements.get("loudness") or []}
    for track in spec.audio.tracks:
        rule, m = track.loudness, measured.get(track.id)
        if rule is None or m is None:
            continue
        result = _result_of(m)
        outcomes = evaluate_loudness_rule(result, rule)
        rows += [(track.id, _method_text(rule), o) for o in outcomes]
        if rule.fallback is not None and any(o.status == "not_measured" for o in outcomes):
            rows += [(track.id, f"fallback: {_method_text(rule.fallback)}", o)
                     for o in evaluate_loudness_rule(result, rule.fallback)]
    return rows


def _certificate_html(d: Distributor) -> str:
    rows = loudness_certificate_rows(d.report, d.spec)
    status = {"pass": ("ok", "PASS"), "fail": ("bad", "FAIL"), "not_measured": ("bad", "NOT MEASURED")}
    body = "".join(
        f'<tr class="loudness-check" data-track="{esc(t)}" data-check="{esc(o.check)}" data-status="{o.status}">'
        f"<td>{esc(t)}</td><td>{esc(o.check.rsplit('.', 1)[-1].replace('_', ' '))}</td>"
        f"<td class=num>{esc(o.actual)}</td><td class=num>{esc(o.expected)}</td>"
        f"<td class={status[o.status][0]}>{status[o.status][1]}</td><td class=small>{esc(method)}</td></tr>"
        for t, method, o in rows)
    if not rows:
        why = ("the spec could not be loaded, so its targets are unknown" if d.spec is None
               else "the spec sets no loudness target for the measured tracks")
        table = f"<p>No loudness rule to certify: {why}.</p>"
    else:
        table = ("<table id=loudness-certificate><thead><tr><th>track</th><th>quantity</th><th>measured</th>"
                 f"<th>target</th><th>result</th><th>method</th></tr></thead><tbody>{body}</tbody></table>")
    loud = d.report.measurements.get("loudness") or []
    origin = next((t.get("measured_from") for t in loud if t.get("measured_from")), None)
    verdict = "PASS" if rows and all(o.status == "pass" for _, _, o in rows) else "NOT CERTIFIED" if rows else "—"
    return (f"<section class=page id=certificate><h2>Loudness certificate</h2><p>Spec <b>{esc(d.report.spec)}</b>; "
            f"measured on the married master{' from ' + esc(origin) if origin else ''} (programme from the first "
            f"frame of action). Result: <b id=certificate-verdict>{verdict}</b></p>{table}"
            f"<p class=small>Meter: <span id=meter>{esc(meter_text())}</span>. Dialogue-gated values are an "
            f"{esc(DIALOGUE_LABEL)}. Values compared unrounded, shown to 0.1.</p></section>")


# -- the technical sheet ----------------------------------------------------------------------------------

def _spec_deliverable_tracks(d: DeliverableEntry, spec: Spec | None) -> list[str] | None:
    """The master track id each audio track of ``d`` was made from, when the spec's deliverable is known
    (matched by its id in the file name, as the naming templates put it)."""
    if spec is None:
        return None
    stem = Path(d.name).stem
    for sd in spec.deliverables:
        if sd.id and (stem.endswith(f"_{sd.id}") or f"_{sd.id}_" in stem) and not any(m.mono_tracks for m in sd.audio):
            return [m.from_track for m in sd.audio]
    return None


def _tech_sheet_html(d: Distributor) -> str:
    loud = {str(t.get("track")): t for t in d.report.measurements.get("loudness") or []}
    blocks = []
    for e in d.report.deliverables:
        f = e.format
        facts: list[tuple[str, str]] = [("size", f"{human_bytes(e.size)} ({e.size:,} bytes)"),
                                        ("duration", duration_text(e.duration_s)),
                                        ("start timecode", e.start_timecode or "—")]
        if f is not None and f.video_codec:
            facts += [("video codec", f"{f.video_codec}{' (' + f.video_profile + ')' if f.video_profile else ''}, "
                       f"{f.width}×{f.height}{', ' + f.pix_fmt if f.pix_fmt else ''}"),
                      ("frame rate", f"{rate_text(f.frame_rate)} fps ({f.frame_rate})")]
        sources = _spec_deliverable_tracks(e, d.spec)
        for i, a in enumerate(f.audio if f is not None else []):
            src = sources[i] if sources is not None and i < len(sources) else None
            m = loud.get(src) if src else None
            level = (f"; source track {src}: {_lufs(m.get('integrated_lufs'))} integrated, "
                     f"{_db(m.get('true_peak_dbtp'))} dBTP true peak (measured on the master)") if m else ""
            facts.append((f"audio track {i + 1}", f"{a.codec}, {a.channels} ch"
                          f"{' (' + a.channel_layout + ')' if a.channel_layout else ''}, "
                          f"{a.sample_rate_hz / 1000:g} kHz{level}"))
        facts += [("xxh128", e.xxh128), ("MD5", e.md5 or "— (not recorded by this run)")]
        rows = f"<tr><th>format</th><td>{format_text(e)}</td></tr>" + "".join(  # format_text escapes its own
            f"<tr><th>{esc(k)}</th><td{' class=hash' if k in ('xxh128', 'MD5') else ''}>{esc(v)}</td></tr>"
            for k, v in facts)
        blocks.append(f'<div class="file" data-name="{esc(e.name)}"><h3>{esc(e.name)}'
                      f"{' <span class=small>' + esc(e.kind) + '</span>' if e.kind else ''}</h3>"
                      f"<table class=sheet>{rows}</table></div>")
    body = "".join(blocks) or "<p>No file was delivered.</p>"
    return f"<section class=page id=technical><h2>Technical sheet</h2>{body}</section>"


def _lufs(v: Any) -> str:
    return "—" if v is None else f"{v:.1f} LUFS"


def _db(v: Any) -> str:
    return "—" if v is None else f"{v:.1f}"


# -- the other parts --------------------------------------------------------------------------------------

def _cover_html(d: Distributor, facility: str, made_at: str) -> str:
    r = d.report
    spec_name = d.spec.name if d.spec is not None else r.spec
    facts = [("Title", r.title or "—"), ("Version", r.version or "—"), ("Distributor", d.name),
             ("Spec", spec_name), ("Date", made_at), ("Facility", facility),
             ("QC verdict", r.verdict.upper() + (" (delivered with --force)" if r.forced else "")),
             ("Delivered", "yes" if r.delivered else "no"),
             ("Files", str(len(r.deliverables))),
             ("Run", f"{date_text(r.created)} on {r.host or '—'}, {r.tool}")]
    parts = ["Technical sheet", "QC report", "Loudness certificate", "Checksum manifest", "Archive copies",
             "Sign-off"]
    return (f"<section class='page cover' id=cover><h1>Delivery document</h1><p class=sub>{esc(r.title or '')} "
            f"{esc(r.version or '')} for {esc(d.name)} <span class='verdict {r.verdict}' id=verdict>"
            f"{r.verdict.upper()}</span></p><dl class=facts>"
            + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts)
            + "</dl><h3>Contents</h3><ol>" + "".join(f"<li>{p}</li>" for p in parts) + "</ol></section>")


def _qc_html(d: Distributor, thumbnails: dict[str, str], pictures: Sequence[EmbeddedPicture]) -> str:
    names: dict[str, str] = {str(k.value): v for k, v in (d.spec.severity_names or {}).items()} if d.spec else {}
    counts = ", ".join(f"{names.get(k, k)} {v}" for k, v in d.report.counts.items()) or "no findings"
    return (f"<section class=page id=qc><h2>QC report</h2><p>Verdict <b>{d.report.verdict.upper()}</b> against "
            f"{esc(d.report.spec)}: {esc(counts)}.</p>" + (pictures_html(pictures) if pictures else "")
            + findings_html(d.report, thumbnails, names) + loudness_html(d.report) + luma_html(d.report)
            + "</section>")


def _checksums_html(d: Distributor) -> str:
    rows = "".join(f'<tr class="checksum"><td>{esc(e.name)}</td><td class=num>{e.size:,}</td>'
                   f"<td class=xxh>{esc(e.xxh128)}</td><td class=xxh>{esc(e.md5 or '—')}</td></tr>"
                   for e in d.report.deliverables)
    total = sum(e.size for e in d.report.deliverables)
    return ("<section class=page id=checksums><h2>Checksum manifest</h2><table><thead><tr><th>file</th>"
            f"<th>bytes</th><th>xxh128</th><th>MD5</th></tr></thead><tbody>{rows}</tbody></table>"
            f"<p class=small>{len(d.report.deliverables)} files, {total:,} bytes. xxh128 (XXH3-128) as in the "
            "package's manifest.json and ASC MHL history; MD5 (RFC 1321) from the same read.</p></section>")


def _archive_section(d: Distributor) -> str:
    inner = archive_html(d.report) if d.report.archive or d.report.archive_error else (
        "<h2 id=archive>Archive copies</h2><p>No archive copy was requested for this run.</p>")
    return f"<section class=page id=archive-copies>{inner}</section>"


def _signoff_html(signatories: Sequence[Signatory]) -> str:
    rows = "".join(f'<tr class="signatory"><td>{esc(s.role)}</td><td{"" if s.name else " class=line"}>'
                   f"{esc(s.name)}</td><td class=line></td><td class=line></td></tr>" for s in signatories)
    return ("<section id=signoff><h2>Sign-off</h2><p>The undersigned accept the files listed in this document, "
            "with the checksums, QC findings and loudness values above.</p><table class=signoff><thead><tr>"
            f"<th>role</th><th>name</th><th>signature</th><th>date</th></tr></thead><tbody>{rows}</tbody></table>"
            "</section>")


_DOC_CSS = """
@page{size:A4;margin:14mm}
section.page{break-after:page}.cover h1{font-size:30px;margin-top:40px}.sub{font-size:18px}
table.sheet th{width:150px;background:#f7f7f7}table.sheet{margin:2px 0 12px}div.file{break-inside:avoid}
table.signoff td{height:42px}td.line{border-bottom:1px solid #222;min-width:140px}
@media print{table.sheet th,table.sheet td{padding:2px 6px}}
"""


def render_delivery_document(d: Distributor, *, facility: str, made_at: str,
                             signatories: Sequence[Signatory] = DEFAULT_SIGNATORIES,
                             thumbnails: dict[str, str] | None = None,
                             pictures: Sequence[EmbeddedPicture] = ()) -> str:
    """The delivery document of one distributor as one self-contained HTML page (no external resources)."""
    r = d.report
    title = f"{r.title or ''} {r.version or ''} — delivery document for {d.name}".strip()
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{REPORT_CSS}{_DOC_CSS}</style></head><body>"
            + _cover_html(d, facility, made_at) + _tech_sheet_html(d)
            + _qc_html(d, thumbnails or {}, pictures) + _certificate_html(d) + _checksums_html(d)
            + _archive_section(d) + _signoff_html(signatories) + "</body></html>")


# -- PDF through headless Chromium ------------------------------------------------------------------------

def chromium_binary() -> str | None:
    """Debian's chromium (or a chromium-browser on PATH), None when absent."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_command(binary: str, *args: str, profile: Path) -> list[str]:
    """Headless Chromium with a throw-away profile: no network chatter (background networking, component
    updates, sync off), no first-run UI."""
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]


def print_pdf(html: Path, pdf: Path) -> str | None:
    """Print ``html`` to ``pdf`` (atomically) with headless Chromium; the reason when it could not (Chromium
    absent, or it failed), else None."""
    binary = chromium_binary()
    if binary is None:
        return "Chromium is not installed (Debian: apt-get install chromium), PDF skipped; the HTML is written"
    with tempfile.TemporaryDirectory(prefix="deliver-chromium-") as profile, \
            atomic_output(pdf, overwrite=True) as tmp:
        cmd = chromium_command(binary, "--no-pdf-header-footer", f"--print-to-pdf={tmp}",
                               html.resolve().as_uri(), profile=Path(profile))
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=PDF_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"Chromium could not print the PDF ({exc}); PDF skipped, the HTML is written"
        if not tmp.is_file() or tmp.stat().st_size == 0:
            tail = (res.stderr or "").strip().splitlines()[-1:] or [f"exit {res.returncode}"]
            return f"Chromium did not print the PDF ({tail[0]}); PDF skipped, the HTML is written"
    return None


def _slug(text: str) -> str:
    slug = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in text)
    return slug.strip("-.") or "distributor"


def write_delivery_documents(distributors: Sequence[Distributor], out_dir: Path, *, master: str | None = None,
                             facility: str | None = None,
                             signatories: Sequence[Signatory] = DEFAULT_SIGNATORIES,
                             now: dt.datetime | None = None) -> list[WrittenDocument]:
    """Write every distributor's document as HTML then PDF into ``out_dir`` (atomically, never over an
    existing one). Finding frames are grabbed from ``master`` when given; the poster and thumbnails from the
    package. ``facility`` defaults to ``$DELIVER_FACILITY``, else the host that ran the delivery."""
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    stamp = when.strftime("%Y%m%dT%H%M%SZ")
    out: list[WrittenDocument] = []
    for d in distributors:
        r = d.report
        pic = r.measurements.get("picture") or {}
        thumbs: dict[str, str] = {}
        if master and Path(master).is_file() and pic.get("start_timecode") and r.findings:
            thumbs = grab_thumbnails(master, r.findings, pic["start_timecode"], Fraction(pic.get("rate") or "25"))
        text = render_delivery_document(
            d, facility=facility or os.environ.get("DELIVER_FACILITY") or r.host or "—",
            made_at=date_text(when.isoformat()), signatories=signatories, thumbnails=thumbs,
            pictures=programme_pictures(r.deliverables))
        html = out_dir / f"{_slug(d.name)}_delivery_{stamp}.html"
        with atomic_output(html) as tmp:
            tmp.write_text(text, encoding="utf-8")
        pdf = html.with_suffix(".pdf")
        warning = print_pdf(html, pdf)
        out.append(WrittenDocument(d.name, html, None if warning else pdf, warning))
    return out


def record_in_package(package_dir: Path, documents: Sequence[WrittenDocument], report: Report, *,
                      same_run: bool = True, out_root: Path | None = None) -> Path:
    """Add the documents to the package's ASC MHL history (a new in-place generation). In the run that made
    the package (``same_run``) its other files are recorded with the xxh128 its package step read moments
    before (no second read of the media); otherwise (a remake from report.json, later) every file is read
    again and checked against the history. manifest.json and the documents are hashed here.

    With ``out_root`` (the run's output folder) a deliverable whose publish read was recorded is checked by
    its identity (:func:`tasks.media.files.recorded_digests`): changed since, it is read again, so the
    history records (and checks) what is on disk now."""
    from tasks.archive.mhl import write_mhl_generation  # ascmhl loads only when a package is recorded

    hashes = {e.name: e.xxh128 for e in report.deliverables} if same_run else {}
    if same_run and out_root is not None:
        for e in report.deliverables:
            known = recorded_digests(e.path, out_root)
            if known is not None:
                hashes[e.name] = known["xxh128"]
            elif has_read_record(e.path, out_root):
                hashes.pop(e.name)  # changed since it was published: write_mhl_generation reads it
    for doc in documents:
        for p in (doc.html, doc.pdf):
            if p is not None:
                hashes[p.relative_to(package_dir).as_posix()] = hash_file_xxh128(p)
    return write_mhl_generation(package_dir, process="in-place", location=str(package_dir),
                                comment=f"{report.title} {report.version} delivery documents", hashes=hashes)
