"""The deliver flow: spec -> inputs -> layback -> QC -> gate -> deliverables -> package -> archive -> report.

Orchestration only: order, gating, retries and artifacts. The work is in :mod:`tasks`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from specs.errors import DeliverError, VerificationError
from specs.loader import load_spec
from specs.model import Spec
from tasks.archive.targets import archive_package
from tasks.layback import layback_summary, parse_mix_arg, plan_layback
from tasks.media.ffmpeg import kill_all_children
from tasks.media.files import atomic_output
from tasks.media.probe import MediaInfo
from tasks.package import hash_file_xxh128, write_mhl_generation
from tasks.qc.engine import QCResult, qc_master
from tasks.report import ArchiveEntry, DeliverableEntry, Report, build_report, summary_markdown, write_report
from tasks.report_html import write_html_report
from tasks.steps import ProgressReporter, infra_only, layback_step, probe_step, transcode_all_step
from tasks.transcode import RunFields, language_tag

__all__ = ["deliver_flow", "qc_step", "publish_report", "fingerprint_step"]


@task(name="fingerprint")
def fingerprint_step(path: str) -> dict[str, Any]:
    """xxh128 and size of an input, for the report (and the archive catalog later)."""
    p = Path(path)
    return {"path": str(p.resolve()), "size": p.stat().st_size, "xxh128": hash_file_xxh128(p)}


@task(name="qc", tags=["ffmpeg"], timeout_seconds=6 * 3600)
def qc_step(info: MediaInfo, spec: Spec) -> QCResult:
    progress = ProgressReporter("qc-analysis", f"Picture and audio analysis of {Path(info.path).name}")
    return qc_master(info, spec, progress=progress)


@task(name="package")
def package_step(package_dir: str, deliverables: list[dict[str, Any]], title: str,
                 version: str) -> list[DeliverableEntry]:
    """Hash every deliverable, write manifest.json and the first ASC MHL generation (in-place)."""
    root = Path(package_dir)
    entries = []
    hashes: dict[str, str] = {}
    for d in deliverables:
        path = Path(d["path"])
        digest = hash_file_xxh128(path)
        rel = path.relative_to(root).as_posix()
        hashes[rel] = digest
        entries.append(DeliverableEntry(name=rel, path=str(path), size=path.stat().st_size, xxh128=digest,
                                        kind=d["kind"]))
    manifest = root / "manifest.json"
    with atomic_output(manifest, overwrite=True) as tmp:  # a rerun rewrites it; never half-written
        tmp.write_text(json.dumps({"title": title, "version": version,
                                   "files": [e.model_dump(mode="json") for e in entries]}, indent=2) + "\n")
    hashes["manifest.json"] = hash_file_xxh128(manifest)
    write_mhl_generation(root, process="in-place", location=str(root), comment=f"{title} {version} delivery package",
                         hashes=hashes)
    return entries


@task(name="archive", retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=infra_only)
def archive_step(package_dir: str, targets: list[str], title: str) -> list[ArchiveEntry]:
    progress = ProgressReporter("archive-bytes", f"Archive of {Path(package_dir).name}")
    copies = archive_package(Path(package_dir), targets, title=title, progress=progress)
    return [ArchiveEntry(target=c.target, uri=c.uri, verified=c.verified) for c in copies]


def publish_report(report: Report, report_path: Path, spec: Spec, master: str | None = None) -> Path:
    """Write report.json (atomically), the HTML report next to it, and the Prefect artifacts: verdict
    markdown, findings table, links. Returns the report.json path."""
    report_path = write_report(report, report_path)
    names: dict[str, str] = {k: v for k, v in (spec.severity_names or {}).items()}
    html_path = write_html_report(report, report_path.with_suffix(".html"), master=master, severity_names=names)
    summary = summary_markdown(report, names) + (
        f"\n\nReports: [{html_path.name}]({html_path.resolve().as_uri()}) · "
        f"[{report_path.name}]({report_path.resolve().as_uri()})")
    create_markdown_artifact(markdown=summary, key="qc-summary",
                             description=f"QC verdict for {report.title or report.spec}")
    rows = [{"severity": names.get(f.severity.value, f.severity.value), "check": f.check, "status": f.status,
             "track": f.track or "", "in": f.timecode_in or "", "out": f.timecode_out or "", "message": f.message,
             "expected": f.expected or "", "actual": f.actual or ""}
            for f in report.findings]
    empty = {"severity": "", "check": "no findings", "status": "", "track": "", "in": "", "out": "", "message": "",
             "expected": "", "actual": ""}
    create_table_artifact(table=rows or [empty], key="qc-findings", description="QC findings with timecodes")
    create_link_artifact(link=report_path.resolve().as_uri(), link_text="report.json", key="qc-report",
                         description="Machine-readable report")
    create_link_artifact(link=html_path.resolve().as_uri(), link_text=html_path.name, key="qc-report-html",
                         description="QC report to read: findings with thumbnails, loudness and luma plots")
    return report_path


@flow(name="deliver", flow_run_name="deliver-{title}-{version}", log_prints=True)
def deliver_flow(master: str, mixes: list[str], spec: str, title: str, out: str, version: str = "v1",
                 archive: list[str] | None = None, force: bool = False, recipient: str | None = None,
                 date: str | None = None, lang: str = "und") -> dict[str, Any]:
    """Lay back, QC, gate, transcode, package, archive and report one title.

    Returns ``{"report": path, "verdict": "pass"|"fail", "delivered": bool}``. QC failure is a
    result, not an exception: the report is written either way.
    """
    log = get_run_logger()
    try:
        return _deliver(master, mixes, spec, title, out, version, archive or [], force, log, recipient, date, lang)
    finally:
        # Threads of a task runner are not interrupted on cancellation; kill ffmpeg ourselves.
        kill_all_children()


def _deliver(master: str, mixes: list[str], spec_name: str, title: str, out: str, version: str,
             archive: list[str], force: bool, log: Any, recipient: str | None = None,
             date: str | None = None, lang: str = "und") -> dict[str, Any]:
    language_tag(lang)  # before any work: runs from the UI skip the CLI's checks
    spec = load_spec(spec_name)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    work.mkdir(exist_ok=True)
    parsed = [parse_mix_arg(m) for m in mixes]
    inputs = [master, *(p.path for p in parsed)]
    fingerprints = [f.result() for f in fingerprint_step.map(inputs)]
    infos = [f.result() for f in probe_step.map(inputs, ["picture master"] + ["mix"] * len(mixes))]
    plan = plan_layback(infos[0], list(zip(parsed, infos[1:], strict=True)), spec)
    for note in plan.notes:
        log.warning(note)
    married = work / f"{title}_{version}_layback.mov"
    lb = layback_step(plan, spec, str(married))
    if not Path(lb.path).exists():
        lb = layback_step.with_options(refresh_cache=True)(plan, spec, str(married))
    married_info = probe_step(lb.path, "layback master")
    qc = qc_step(married_info, spec)
    report_path = out_dir / "report.json"
    extra: dict[str, Any] = {"title": title, "version": version, "inputs": fingerprints, "forced": False,
                             "measurements": qc.measurements, "layback": layback_summary(lb),
                             "flow_run_id": str(flow_run.get_id() or "") or None}
    report = build_report(spec=spec.name, findings=qc.findings, **extra)
    if report.verdict == "fail" and not force:
        log.error(f"QC failed with {report.counts['error']} error findings; delivery stopped "
                  "(use --force to deliver anyway)")
        publish_report(report, report_path, spec, married_info.path)
        return {"report": str(report_path), "verdict": report.verdict, "delivered": False}
    if report.verdict == "fail":
        log.warning("QC failed but --force was given: delivering anyway, recorded in the report")
        report.forced = True

    package_dir = out_dir / f"{title}_{version}"
    fields = RunFields(title=title, version=version, recipient=recipient, lang=lang, **({"date": date} if date else {}))
    made_all = transcode_all_step(spec.deliverables, spec, married_info, str(package_dir), fields,
                                  str(package_dir / "extras"))
    made = [{"path": r.path, "kind": r.kind} for r in made_all.deliverables]
    made += [{"path": p, "kind": "extra"} for p in made_all.extras]
    report.deliverables = package_step(str(package_dir), made, title, version)
    if archive:
        try:
            report.archive = archive_step(str(package_dir), archive, title)
            bad = [a for a in report.archive if not a.verified]
            if bad:
                raise VerificationError(f"archive copies failed verification: {', '.join(a.uri for a in bad)}")
        except DeliverError as exc:
            # The package exists but is not safely archived: say so in the report, then fail the run.
            report.archive_error = str(exc)
            publish_report(report, report_path, spec, married_info.path)
            raise
    report.delivered = True
    publish_report(report, report_path, spec, married_info.path)
    return {"report": str(report_path), "verdict": report.verdict, "delivered": True}
