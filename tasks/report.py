"""report.json (the contract in the README), what a deliver or qc run returns, and the human summaries
built from a report (markdown for Prefect artifacts and the terminal)."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tasks import __version__
from tasks.costs import RunCosts
from tasks.media.files import atomic_output
from tasks.qc.findings import Finding, count_by_severity, verdict_of

__all__ = ["InputFingerprint", "AudioTrackFormat", "DeliverableFormat", "DeliverableEntry", "ArchiveEntry",
           "human_bytes", "Report", "RunResult", "build_report",
           "write_report", "DistributorEntry", "findings_markdown", "summary_markdown", "loudness_markdown",
           "links_markdown",
           "report_markdown", "refused_markdown", "cancelled_markdown", "outcome_line", "artifact_key", "sparkline"]


class InputFingerprint(BaseModel):
    """An input of a run: resolved path, size in bytes, xxh128."""

    path: str
    size: int
    xxh128: str


# -- deliverables and archive copies as report.json records them --------------------------------------
# Every field added after the first release is optional, so older report.json files still load.

class AudioTrackFormat(BaseModel):
    """One audio stream of a deliverable, as probed."""

    codec: str
    channels: int
    sample_rate_hz: int
    channel_layout: str | None = None


class DeliverableFormat(BaseModel):
    """What a deliverable is, as probed after it was written: container, picture, audio tracks."""

    container: str  # ffprobe's format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    video_codec: str | None = None
    video_profile: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None  # rational as text: "25", "24000/1001"
    pix_fmt: str | None = None
    audio: list[AudioTrackFormat] = Field(default_factory=list)


class DeliverableEntry(BaseModel):
    name: str
    path: str
    size: int
    xxh128: str
    kind: str | None = None
    format: DeliverableFormat | None = None  # None for files that are not media (or older reports)
    duration_s: float | None = None
    start_timecode: str | None = None  # SMPTE ST 12-1 timecode of the first frame, when the file carries one
    md5: str | None = None  # RFC 1321, hashed in the same read as xxh128 (what many distributors' forms ask for)


class ArchiveEntry(BaseModel):
    target: str
    uri: str
    verified: bool
    verified_at: str | None = None  # ISO 8601 UTC time the copy was read back and matched the source
    bytes: int | None = None  # the package's files stored in this copy (not its few-KB ASC MHL history)
    storage_class: str | None = None


def human_bytes(n: float) -> str:
    """A size for people, in binary units (IEC 80000-13): ``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


# -- end of the deliverables and archive block ---------------------------------------------------------


class DistributorEntry(BaseModel):
    """One distributor of a delivery plan: its own verdict and gate, what its package holds. The schedule
    (catalog states) and the delivery documents read this list to say who got what."""

    name: str  # the package folder under --out
    spec: str
    verdict: Literal["pass", "fail"]
    delivered: bool = False
    forced: bool = False
    package: str | None = None  # the package folder, when delivered
    report: str | None = None  # this distributor's own report.json
    findings: list[Finding] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    deliverables: list[DeliverableEntry] = Field(default_factory=list)
    shared: list[str] = Field(default_factory=list)  # deliverable names placed from another package (linked/copied)
    layback: str | None = None  # the married master its QC and deliverables came from
    recipient: str | None = None
    territory: str | None = None
    lang: str | None = None
    archive: list[ArchiveEntry] = Field(default_factory=list)
    archive_error: str | None = None


class Report(BaseModel):
    """What a run found and made. Serialised as report.json."""

    verdict: Literal["pass", "fail"]
    spec: str
    findings: list[Finding]
    measurements: dict[str, Any] = Field(default_factory=dict)
    layback: dict[str, Any] | None = None  # offsets found, alignment, 2-pop per track (tasks.layback.layback_summary)
    deliverables: list[DeliverableEntry] = Field(default_factory=list)
    archive: list[ArchiveEntry] = Field(default_factory=list)
    title: str | None = None
    version: str | None = None
    inputs: list[InputFingerprint] = Field(default_factory=list)
    forced: bool = False
    delivered: bool = False
    archive_error: str | None = None  # why the package is not (fully, verifiably) archived
    counts: dict[str, int] = Field(default_factory=dict)
    created: str = ""
    host: str = ""
    tool: str = f"deliver {__version__}"
    flow_run_id: str | None = None
    documents: list[str] = Field(default_factory=list)  # delivery documents (HTML, PDF) made for this run
    costs: RunCosts | None = None  # CPU and wall time per step, bytes made and archived, priced (tasks.costs)
    distributors: list[DistributorEntry] = Field(default_factory=list)  # a plan run: one entry per distributor


class RunResult(BaseModel):
    """What the deliver and qc flows return: the report itself and where it was written."""

    report: Report
    report_path: str
    html_path: str

    @property
    def verdict(self) -> Literal["pass", "fail"]:
        return self.report.verdict

    @property
    def delivered(self) -> bool:
        return self.report.delivered


def artifact_key(*parts: str | None) -> str:
    """A Prefect artifact key from ``parts`` (e.g. ``qc-summary``, title, version): lowercase letters,
    digits and dashes only (what Prefect accepts), so each title and version keeps its own artifacts."""
    text = "-".join(p for p in parts if p)
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in text.lower())
    return "-".join(w for w in slug.split("-") if w)[:200] or "deliver"


def outcome_line(report: Report) -> str:
    """One line saying how a run ended: the Prefect state message and the notification's first line."""
    if report.distributors:
        return "; ".join(f"{d.name}: {'delivered' if d.delivered else 'QC ' + d.verdict}"
                         f" ({d.counts.get('error', 0)} error(s))" for d in report.distributors)
    errors, warnings = report.counts.get("error", 0), report.counts.get("warning", 0)
    if report.archive_error:
        return f"archive failed: {report.archive_error}"
    if report.verdict == "fail" and not report.delivered:
        first = next((f for f in report.findings if f.severity.value == "error"), None)
        where = f" at {first.timecode_in}" if first is not None and first.timecode_in else ""
        lead = f" (first: {first.check}{where}: {first.message})" if first is not None else ""
        return f"QC failed: {errors} error{'s' * (errors != 1)}{lead}"
    made = f", {len(report.deliverables)} deliverable(s)" if report.deliverables else ""
    kept = f", {sum(a.verified for a in report.archive)} archive cop(ies) verified" if report.archive else ""
    forced = " despite QC errors (--force)" if report.forced else ""
    if report.delivered:
        return f"delivered{forced}{made}{kept}; {errors} error(s), {warnings} warning(s)"
    return f"QC {report.verdict}: {errors} error(s), {warnings} warning(s)"


def build_report(*, spec: str, findings: list[Finding], **extra: Any) -> Report:
    return Report(verdict=verdict_of(findings), spec=spec, findings=findings, counts=count_by_severity(findings),
                  created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), host=platform.node(),
                  **extra)


def write_report(report: Report, path: str | Path) -> Path:
    """Write report.json atomically; an existing report is replaced (it describes the latest run)."""
    path = Path(path)
    with atomic_output(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(report.model_dump(mode="json"), indent=2) + "\n")
    return path


def findings_markdown(findings: list[Finding], severity_names: dict[str, str] | None = None) -> str:
    """A markdown table of findings (for Prefect artifacts and the terminal)."""
    if not findings:
        return "_No findings._"
    names = severity_names or {}
    rows = ["| severity | check | in | out | message | expected | actual |", "|---|---|---|---|---|---|---|"]
    for f in findings:
        cells = [names.get(f.severity.value, f.severity.value), f.check, f.timecode_in or "", f.timecode_out or "",
                 f.message, f.expected or "", f.actual or ""]
        rows.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def summary_markdown(report: Report, severity_names: dict[str, str] | None = None) -> str:
    verdict = "PASS" if report.verdict == "pass" else "FAIL"
    head = [f"# {report.title or 'QC'} — {verdict}", "",
            f"Spec **{report.spec}** · errors {report.counts.get('error', 0)} · warnings "
            f"{report.counts.get('warning', 0)} · info {report.counts.get('info', 0)}"]
    if report.forced:
        head.append("\n**Delivered with --force despite error findings.**")
    loud = report.measurements.get("loudness") or []
    if loud:
        head += ["", "## Loudness", "", "| track | integrated LUFS | LRA LU | true peak dBTP | max short-term LUFS | "
                 "short-term over time |", "|---|---|---|---|---|---|"]
        for t in loud:
            head.append(f"| {t.get('track')} | {_num(t.get('integrated_lufs'))} | {_num(t.get('loudness_range_lu'))} | "
                        f"{_num(t.get('true_peak_dbtp'))} | {_num(t.get('max_short_term_lufs'))} | "
                        f"`{sparkline(t.get('short_term_series_lufs') or [])}` |")
    head += ["", "## Findings", "", findings_markdown(report.findings, severity_names)]
    if report.deliverables:
        head += ["", "## Deliverables", "", "| name | kind | size | xxh128 |", "|---|---|---|---|"]
        head += [f"| {d.name} | {d.kind or Path(d.name).suffix.lstrip('.')} | {human_bytes(d.size)} | `{d.xxh128}` |"
                 for d in report.deliverables]
    if report.archive_error:
        head += ["", f"**Archive failed:** {report.archive_error}"]
    if report.archive:
        head += ["", "## Archive", "", "| target | uri | verified |", "|---|---|---|"]
        head += [f"| {a.target} | {a.uri} | {'yes' if a.verified else 'NO'} |" for a in report.archive]
    return "\n".join(head)


def loudness_markdown(report: Report) -> str | None:
    """A markdown table of every track's loudness, or None when nothing was measured."""
    tracks = report.measurements.get("loudness") or []
    if not tracks:
        return None

    def f(v: Any, unit: str) -> str:
        return "—" if v is None else f"{v:.1f} {unit}"

    dialogue = any(t.get("speech_segments") is not None for t in tracks)  # measured for a dialogue-gated rule
    extra_head, extra_rule = (" dialogue | speech |", "---|---|") if dialogue else ("", "")
    lines = ["# Loudness", "", f"| track | integrated | LRA | true peak | max momentary | max short-term |{extra_head}",
             f"|---|---|---|---|---|---|{extra_rule}"]
    for t in tracks:
        row = (f"| {t.get('track', '')} | {f(t.get('integrated_lufs'), 'LUFS')} | "
               f"{f(t.get('loudness_range_lu'), 'LU')} | {f(t.get('true_peak_dbtp'), 'dBTP')} | "
               f"{f(t.get('max_momentary_lufs'), 'LUFS')} | {f(t.get('max_short_term_lufs'), 'LUFS')} |")
        if dialogue:
            row += f" {f(t.get('dialogue_lufs'), 'LKFS')} | {f(t.get('speech_percent'), '%')} |"
        lines.append(row)
    if dialogue:
        method = next((t.get("dialogue_method") for t in tracks if t.get("dialogue_method")), "")
        lines += ["", f"Dialogue: {method}."]
    return "\n".join(lines)


def links_markdown(report: Report, report_path: Path, html_path: Path | None, schedule_key: str | None = None) -> str:
    """Links to report.json, the HTML report, the delivery schedule (its artifact ``schedule_key``, and the
    command), every deliverable (size, xxh128), delivery document and archive copy."""
    lines = [f"# Deliverables of {report.title or ''} {report.version or ''}", "",
             f"- Report: [report.json]({report_path.resolve().as_uri()})"]
    if html_path is not None and html_path.exists():
        lines.append(f"- HTML report: [{html_path.name}]({html_path.resolve().as_uri()})")
    if schedule_key:
        lines.append(f"- Delivery schedule: artifact `{schedule_key}` · `deliver status {report.title or ''}`")
    for doc in report.documents:
        lines.append(f"- delivery document: [{Path(doc).name}]({Path(doc).resolve().as_uri()})")
    for d in report.deliverables:
        lines.append(f"- [{d.name}]({Path(d.path).resolve().as_uri()}) — {d.size} bytes, xxh128 `{d.xxh128}`")
    for a in report.archive:
        lines.append(f"- archive copy: `{a.uri}` ({'verified' if a.verified else 'NOT VERIFIED'})")
    return "\n".join(lines)


def report_markdown(report: Report, severity_names: dict[str, str] | None = None) -> str:
    """The whole report as markdown (a Prefect artifact readable from any machine, where the HTML report's
    file:// link does not open): outcome, findings with timecodes, loudness, layback, deliverables with
    format, size and xxh128, archive copies, inputs."""
    head, _, rest = summary_markdown(report, severity_names).partition("\n\n")
    lines = [head, "", f"**Outcome:** {outcome_line(report)}", "", rest]
    lb = report.layback or {}
    if lb.get("tracks"):
        lines += ["", "## Layback", "", f"Picture start {lb.get('start_timecode', '')} · picture packets md5 "
                  f"`{lb.get('picture_packets_md5', '')}`", "",
                  "| track | channels | offset (frames) | done | 2-pop offset (frames) |", "|---|---|---|---|---|"]
        for t in lb["tracks"]:
            pop = t.get("two_pop_offset_frames")
            lines.append(f"| {t.get('track')} | {t.get('channels', '')} | {t.get('offset_frames', '')} | "
                         f"{t.get('alignment', '')} | {'—' if pop is None else pop} |")
        lines += [""] + [f"- {n}" for n in lb["notes"]] if lb.get("notes") else []
    if report.inputs:
        lines += ["", "## Inputs", "", "| file | size | xxh128 |", "|---|---|---|"]
        lines += [f"| {Path(i.path).name} | {human_bytes(i.size)} | `{i.xxh128}` |" for i in report.inputs]
    lines += ["", f"_{report.tool} on {report.host or 'unknown host'}, {report.created}_"]
    return "\n".join(lines)


def refused_markdown(title: str, reason: str, kind: str = "Bad input") -> str:
    """Why a run was refused before any work (markdown artifact): the one-line reason and what to do."""
    return "\n".join([f"# {title}: {kind.lower()}", "", f"**{kind}:** {reason}", "",
                      "Nothing was delivered. Fix the parameter and start the run again."])


def cancelled_markdown(title: str, out: str, cleaned: dict[str, list[str]]) -> str:
    """What a cancelled run cleaned up under its output folder ``out``: ffmpeg processes killed, partial
    files removed, empty folders removed (``cleaned``: ``killed``, ``removed``, ``folders``)."""
    killed, removed, folders = cleaned.get("killed", []), cleaned.get("removed", []), cleaned.get("folders", [])
    lines = [f"# {title}: cancelled", "",
             f"Killed {len(killed)} ffmpeg process(es), removed {len(removed)} partial file(s) and "
             f"{len(folders)} empty folder(s) under {out}. Finished files were kept; a new run resumes from them."]
    lines += [""] + [f"- removed `{Path(p).relative_to(out) if Path(p).is_relative_to(out) else p}`"
                     for p in [*removed, *folders]] if removed or folders else []
    return "\n".join(lines)


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(series_lufs: list[float | None], width: int = 60, range_lu: float = 24.0) -> str:
    """A text plot of a loudness series (renders in any markdown viewer, the Prefect UI included).

    The series is reduced to ``width`` cells by taking each cell's maximum; the scale covers the
    ``range_lu`` below the series maximum (what a loudness meter's display shows). Silence (None)
    and anything below the scale is a blank.
    """
    if not series_lufs:
        return ""
    step = max(1, -(-len(series_lufs) // width))
    cells = []
    for i in range(0, len(series_lufs), step):
        vals = [v for v in series_lufs[i:i + step] if v is not None]
        cells.append(max(vals) if vals else None)
    top = max((c for c in cells if c is not None), default=None)
    if top is None:
        return " " * len(cells)
    floor_lufs = top - range_lu
    span = range_lu
    return "".join(" " if c is None or c < floor_lufs else _BARS[min(7, int((c - floor_lufs) / span * 7.999))]
                   for c in cells)


def _num(x: Any) -> str:
    return "—" if x is None else f"{x:.1f}"
