"""The deliver flow: spec -> inputs -> layback -> QC -> gate -> deliverables -> package -> archive -> report.

Orchestration only: order, gating and artifacts. The steps (retries, caching, progress) are in
:mod:`tasks.steps`, the work in :mod:`tasks`. The flow takes one :class:`~flows.deployments.DeliverRequest`,
built alike by ``deliver run`` and by the deployment's form in the Prefect UI, and returns a
:class:`~tasks.report.RunResult` as the data of its final state: Completed when delivered, Failed named
"QC failed" when error findings stopped the delivery (the report is written either way), Failed named
"Bad input" with the one-line reason when a parameter is wrong (no traceback in the run's logs, no
empty folder left). :func:`flows.deployments.run_flow` turns the state back into the result (or the
error) for ``deliver run``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from flows.deployments import DeliverRequest, QCFailed, bind_run_logging, cores, on_cancel, request_field, threads
from flows.events import emit_input_refused, emit_qc_failed
from specs.errors import EXIT_BAD_INPUT, DeliverError, OutputLockedError, VerificationError
from specs.loader import load_spec
from specs.model import Spec
from tasks.dcp.plan import check_dcp_deliverables
from tasks.deliverables.naming import RunFields
from tasks.layback import layback_summary, plan_layback
from tasks.media.ffmpeg import kill_all_children
from tasks.media.files import folders_under, output_lock, prune_empty_folders, remove_partials
from tasks.media.probe import MediaInfo
from tasks.preflight import preflight_run
from tasks.report import (
    ArchiveEntry,
    Report,
    RunResult,
    artifact_key,
    build_report,
    links_markdown,
    loudness_markdown,
    outcome_line,
    refused_markdown,
    report_markdown,
    summary_markdown,
    write_report,
)
from tasks.report_html import write_html_report
from tasks.steps import (
    archive_step,
    documents_step,
    fingerprint_step,
    layback_step,
    package_step,
    probe_step,
    qc_step,
    record_schedule_step,
    transcode_all_step,
)

__all__ = ["deliver_flow", "publish_report", "finish_run", "emit_if_failed", "final_state", "refuse"]


def _run_name() -> str:
    return f"deliver-{request_field('title', 'title')}-{request_field('version', 'v1')}"


def _run_id() -> str | None:
    return str(flow_run.get_id() or "") or None


@flow(name="deliver", flow_run_name=_run_name, log_prints=True, task_runner=threads(cores()),
      on_cancellation=[on_cancel])
def deliver_flow(request: DeliverRequest) -> State[RunResult]:
    """Lay back, QC, gate, transcode, package, archive and report one title.

    Ends Completed (delivered), Failed "QC failed" (error findings, nothing delivered; the report is
    written and is the state's data) or Failed "Bad input" (one line, no traceback, nothing left behind)."""
    bind_run_logging(_run_id())
    existed = folders_under(request.out)
    ours = True  # False when another run holds --out: its folders are not ours to prune
    try:
        return final_state(_deliver(request))
    except OutputLockedError as exc:
        ours = False
        return refuse(exc, request.title, request.version, request.spec_ref)
    except DeliverError as exc:
        prune_empty_folders(request.out, existed)
        return refuse(exc, request.title, request.version, request.spec_ref)
    finally:
        # Threads of a task runner are not interrupted on cancellation; kill ffmpeg ourselves.
        kill_all_children()
        if ours:
            prune_empty_folders(request.out, existed)


def final_state(result: RunResult) -> State[RunResult]:
    """Completed when delivered or QC passed; Failed named "QC failed" when error findings stopped the
    delivery (the UI shows it failed, the message says why); the result is in the state's data either way
    (for Failed, inside :class:`~flows.deployments.QCFailed`: Prefect resolves a Failed state's data into an
    exception)."""
    message = outcome_line(result.report)
    if result.report.verdict == "fail" and not result.report.delivered:
        return Failed(name="QC failed", message=message, data=QCFailed(message, result))
    return Completed(message=message, data=result)


def refuse(exc: DeliverError, title: str, version: str | None, spec: str) -> State[RunResult]:
    """A run that cannot go on (bad parameter, unreachable storage): the one-line reason as the state
    message, a log line and a markdown artifact, a ``deliver.input.refused`` event for bad input; the
    error is the state's data (``deliver run`` raises it again: its one line and exit code)."""
    kind = "Bad input" if exc.exit_code == EXIT_BAD_INPUT else "Failed"
    get_run_logger().error("%s: %s", kind.lower() if kind != "Failed" else "error", exc)
    try:
        create_markdown_artifact(markdown=refused_markdown(f"{title} {version or ''}".strip(), str(exc), kind),
                                 key=artifact_key("run-error", title, version), description=f"{kind}: {exc}"[:500])
    except Exception as art_exc:  # noqa: BLE001 - the state message still says it
        get_run_logger().warning("could not publish the error artifact: %s", art_exc)
    if exc.exit_code == EXIT_BAD_INPUT:
        emit_input_refused(title=title, version=version, reason=str(exc), spec=spec)
    return Failed(name=kind, message=str(exc), data=exc)


def _deliver(request: DeliverRequest) -> RunResult:
    log = get_run_logger()
    log.info("deliver %s %s against %s", request.title, request.version, request.spec_ref)
    title, version = request.title, request.version

    # spec and inputs
    spec = load_spec(request.spec_ref)
    inputs = [request.master, *(m.path for m in request.mixes)]
    # probed first: a missing or unreadable input is named ("picture master not found: …") before any work
    probes = probe_step.map(inputs, ["picture master"] + ["mix"] * len(request.mixes))
    probes.wait()  # every input checked (none killed half-way by the first error), then the first error raised
    infos = probes.result()
    # then paths and name fields (a UI run never met the CLI's preflight): nothing is written before
    fields = preflight_run(spec=spec, master=request.master, mixes=[m.path for m in request.mixes],
                           out=request.out, archive=request.archive, title=title, version=version,
                           recipient=request.recipient or None, date=request.date or None, lang=request.lang)
    out_dir = Path(request.out)
    # one run per output folder, for the whole run: a second one is refused at once, naming the holder
    with output_lock(out_dir):
        return _deliver_locked(request, spec, infos, fields, inputs)


def _deliver_locked(request: DeliverRequest, spec: Spec, infos: list[MediaInfo], fields: RunFields,
                    inputs: list[str]) -> RunResult:
    log = get_run_logger()
    title, version = request.title, request.version
    out_dir = Path(request.out)
    package_dir = out_dir / f"{title}_{version}"
    # partials left by a killed run: nobody else writes here while we hold the lock
    for folder, recursive in ((out_dir, False), (out_dir / "work", True), (package_dir, True)):
        for p in remove_partials(folder, recursive=recursive):
            log.info("removed %s, left by an interrupted run", p)
    fingerprints = [f.result() for f in fingerprint_step.map(inputs)]
    work = out_dir / "work"
    work.mkdir(exist_ok=True)

    # layback: the mixes married to the picture, placed by their BWF time reference
    plan = plan_layback(infos[0], list(zip(request.mixes, infos[1:], strict=True)), spec)
    for note in plan.notes:
        log.warning(note)
    # a DCP the master cannot make (rate, container, colour, sound) is refused here, before any work
    check_dcp_deliverables(spec, infos[0], plan, title)
    married = work / f"{title}_{version}_layback.mov"
    lb = layback_step(plan, spec, str(married), str(out_dir))  # reused when its record and hash match
    if lb.reused:
        log.info("reused %s: made by an earlier run from the same inputs, xxh128 checked", married)
    married_info = probe_step(lb.path, "layback master")

    # QC and the gate
    qc = qc_step(married_info, spec, lb.plan)
    report = build_report(spec=spec.name, findings=qc.findings, title=title, version=version, inputs=fingerprints,
                          forced=False, measurements=qc.measurements, layback=layback_summary(lb),
                          flow_run_id=_run_id())
    report_path = out_dir / "report.json"
    if report.verdict == "fail" and not request.force:
        log.error(f"QC failed with {report.counts['error']} error findings; delivery stopped (use --force to deliver "
                  "anyway)")
        return _finish(report, report_path, spec, married_info.path, request)
    if report.verdict == "fail":
        log.warning("QC failed but --force was given: delivering anyway, recorded in the report")
        report.forced = True

    # deliverables from one decode, then the package
    made = transcode_all_step(spec.deliverables, spec, married_info, str(package_dir), fields,
                              str(package_dir / "extras"), str(out_dir))
    for r in made.deliverables:
        if r.reused:
            log.info("reused %s: made by an earlier run from the same inputs, xxh128 checked", r.path)
    files = [(r.path, r.kind) for r in made.deliverables] + [(p, "extra") for p in made.extras]
    report.deliverables = package_step(str(package_dir), files, title, version, out_root=str(out_dir))

    # archive to every target, verified
    if request.archive:
        try:
            copies = archive_step(str(package_dir), request.archive, title)
            report.archive = [ArchiveEntry(target=c.target, uri=c.uri, verified=c.verified,
                                          verified_at=c.verified_at, bytes=c.bytes, storage_class=c.storage_class)
                              for c in copies]
            bad = [a for a in report.archive if not a.verified]
            if bad:
                raise VerificationError(f"archive copies failed verification: {', '.join(a.uri for a in bad)}")
        except DeliverError as exc:
            # The package exists but is not safely archived: say so in the report, then fail the run.
            report.archive_error = str(exc)
            _finish(report, report_path, spec, married_info.path, request)
            raise
    report.delivered = True
    # the documents the producer signs, per distributor: after the archive, so they list its verified copies
    # (paperwork: a failure here is logged, the delivery and its report stand)
    try:
        docs = documents_step(report, spec, str(package_dir), married_info.path, out_root=str(out_dir))
    except DeliverError as exc:
        log.error("delivery documents not made: %s (remake them with `deliver documents`)", exc)
        docs = []
    report.documents = [str(p) for d in docs for p in (d.html, d.pdf) if p is not None]
    for d in docs:
        if d.warning:
            log.warning("delivery document for %s: %s", d.distributor, d.warning)
    return _finish(report, report_path, spec, married_info.path, request)


def _finish(report: Report, report_path: Path, spec: Spec, master: str, request: DeliverRequest) -> RunResult:
    return finish_run(report, report_path, [spec], master, source=request.master, spec_ref=request.spec_ref)


def finish_run(report: Report, report_path: Path, specs: list[Spec], master: str, *, source: str,
               spec_ref: str) -> RunResult:
    """Costs and the delivery schedule (every distributor of ``report``), report, artifacts (verdict, findings,
    loudness, links, schedule) and the qc-failed event. ``master``: the married master; ``source``: the input."""
    schedule_md = _record_schedule(report, specs)
    result = publish_report(report, report_path, specs[0], master)
    schedule_key = artifact_key("delivery-schedule", report.title, report.version)
    if schedule_md:
        create_markdown_artifact(markdown=schedule_md, key=schedule_key,
                                 description=f"Delivery schedule of {report.title}: state of every item")
    create_markdown_artifact(markdown=links_markdown(report, report_path, Path(result.html_path),
                                                     schedule_key if schedule_md else None),
                             key=artifact_key("deliverable-links", report.title, report.version),
                             description=f"Links to the report and the deliverables of {report.title}")
    emit_if_failed(result, source, spec_ref)
    return result


def _record_schedule(report: Report, specs: list[Spec]) -> str | None:
    """The run's costs into the report, its items into the catalog's schedule; the schedule as markdown. An
    unreachable catalog is a warning: the files are made and the report says what they are."""
    try:
        report.costs, markdown = record_schedule_step(report, specs)
    except DeliverError as exc:
        get_run_logger().warning("delivery schedule not updated: %s", exc)
        return None
    return markdown


def publish_report(report: Report, report_path: Path, spec: Spec, master: str | None = None) -> RunResult:
    """Write report.json (atomically), the HTML report next to it, and the Prefect artifacts: verdict
    markdown, findings table, loudness table, links."""
    report_path = write_report(report, report_path)
    names: dict[str, str] = {k: v for k, v in (spec.severity_names or {}).items()}
    html_path = write_html_report(report, report_path.with_suffix(".html"), master=master, severity_names=names)
    summary = summary_markdown(report, names) + (
        f"\n\nReports: [{html_path.name}]({html_path.resolve().as_uri()}) · "
        f"[{report_path.name}]({report_path.resolve().as_uri()})")
    title, version = report.title or Path(master or report_path).name, report.version
    create_markdown_artifact(markdown=summary, key=artifact_key("qc-summary", title, version),
                             description=f"QC verdict for {title} {version or ''}: {outcome_line(report)}"[:500])
    create_markdown_artifact(markdown=report_markdown(report, names), key=artifact_key("report", title, version),
                             description=f"The report of {title} {version or ''} (as report.html)")
    rows = [{"severity": names.get(f.severity.value, f.severity.value), "check": f.check, "status": f.status,
             "track": f.track or "", "in": f.timecode_in or "", "out": f.timecode_out or "", "message": f.message,
             "expected": f.expected or "", "actual": f.actual or ""}
            for f in report.findings]
    empty = {"severity": "", "check": "no findings", "status": "", "track": "", "in": "", "out": "", "message": "",
             "expected": "", "actual": ""}
    create_table_artifact(table=rows or [empty], key=artifact_key("qc-findings", title, version),
                          description=f"QC findings with timecodes, {title}")
    create_link_artifact(link=report_path.resolve().as_uri(), link_text="report.json",
                         key=artifact_key("qc-report", title, version),
                         description="Machine-readable report")
    create_link_artifact(link=html_path.resolve().as_uri(), link_text=html_path.name,
                         key=artifact_key("qc-report-html", title, version),
                         description="QC report to read: findings with thumbnails, loudness and luma plots")
    loud = loudness_markdown(report)
    if loud:
        create_markdown_artifact(markdown=loud, key=artifact_key("loudness-summary", title, version),
                                 description=f"Loudness of every track, {title}")
    return RunResult(report=report, report_path=str(report_path), html_path=str(html_path))


def emit_if_failed(result: RunResult, path: str, spec: str) -> None:
    """``deliver.qc.failed`` for a run whose verdict is not pass (automations notify on it)."""
    if result.verdict == "pass":
        return
    errors = [f for f in result.report.findings if f.severity.value == "error"]
    emit_qc_failed(title=result.report.title or Path(path).name, version=result.report.version, path=path,
                   spec=spec, report=result.report_path, errors=len(errors),
                   first_error=errors[0].message if errors else "", message=outcome_line(result.report))
