"""The deliver-plan flow: every distributor of a title from one run, each step done once.

Orchestration only. One :class:`~flows.deployments.PlanRequest` in (``deliver run --plan FILE``, repeated
``--spec``, or the deliver-plan deployment), one :class:`~tasks.report.RunResult` out whose report lists
every distributor (``distributors``: verdict, gate, package, findings, deliverables)::

    load plan ─► specs (overrides) ─► probe inputs ─► preflight per distributor ─► output lock
      ├─ layback once per distinct track mapping (tasks.layback.layback_identity)
      ├─ QC: one analysis per married master, every distributor's rules on it (qc_specs_step)
      ├─ gate per distributor: one failing does not stop the others
      ├─ deliverables: every distributor's from ONE decode per married master (transcode_sets_step), each
      │  identical one (tasks.deliverables.share.deliverable_identity) made once, hard-linked or copied
      │  into the other packages, verified
      ├─ package, archive, delivery documents per distributor, OUT/<distributor>/<title>_<version>/
      ├─ record-schedule: costs, every distributor's items in the catalog's delivery schedule
      └─ report.json per distributor and OUT/report.json with the distributors list; artifacts with the
         schedule
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from flows.deliver import finish_run, refuse
from flows.deployments import PlanRequest, QCFailed, bind_run_logging, cores, on_cancel, request_field, threads
from specs.errors import DeliverError, OutputLockedError, VerificationError
from specs.model import Spec
from specs.plan import Distributor, Plan, distributor_spec
from tasks.dcp.plan import check_dcp_deliverables
from tasks.deliverables.make import DeliverableSet
from tasks.deliverables.naming import RunFields, deliverable_path
from tasks.deliverables.share import deliverable_identity, extras_identity
from tasks.layback import MixInput, layback_identity, layback_summary, parse_mix_arg, plan_layback
from tasks.media.ffmpeg import kill_all_children
from tasks.media.files import folders_under, output_lock, prune_empty_folders, remove_partials
from tasks.media.probe import MediaInfo
from tasks.preflight import preflight_run
from tasks.qc.engine import QCResult
from tasks.report import ArchiveEntry, DistributorEntry, Report, RunResult, build_report, outcome_line, write_report
from tasks.report_html import write_html_report
from tasks.steps import (
    archive_step,
    documents_step,
    fingerprint_step,
    layback_step,
    package_step,
    probe_step,
    qc_specs_step,
    share_step,
    transcode_sets_step,
)

__all__ = ["plan_flow"]


def _run_name() -> str:
    return f"deliver-plan-{request_field('title', 'plan')}-{request_field('version', 'v1')}"


def _run_id() -> str | None:
    return str(flow_run.get_id() or "") or None


@flow(name="deliver-plan", flow_run_name=_run_name, log_prints=True, task_runner=threads(cores()),
      on_cancellation=[on_cancel])
def plan_flow(request: PlanRequest) -> State[RunResult]:
    """Every distributor of a title: one layback per track mapping, one QC analysis, a gate per distributor,
    shared deliverables made once. Completed when every distributor was delivered; Failed "QC failed" when
    any was stopped by its QC (the others are delivered and the report says who got what)."""
    bind_run_logging(_run_id())
    existed = folders_under(request.out)
    ours = True
    try:
        result = _plan(request)
    except OutputLockedError as exc:
        ours = False
        return refuse(exc, request.title or "plan", request.version, request.plan or ",".join(request.specs))
    except DeliverError as exc:
        prune_empty_folders(request.out, existed)
        return refuse(exc, request.title or "plan", request.version, request.plan or ",".join(request.specs))
    finally:
        kill_all_children()
        if ours:
            prune_empty_folders(request.out, existed)
    message = outcome_line(result.report)
    if not result.report.delivered:
        return Failed(name="QC failed", message=message, data=QCFailed(message, result))
    return Completed(message=message, data=result)


def _plan(request: PlanRequest) -> RunResult:
    log = get_run_logger()
    plan: Plan = request.resolved_plan()
    log.info("deliver %s %s to %d distributor(s): %s", plan.title, plan.version, len(plan.distributors),
             ", ".join(plan.names()))
    specs = [distributor_spec(d) for d in plan.distributors]
    mixes = [parse_mix_arg(m) for m in plan.mixes]
    inputs = [plan.master, *(m.path for m in mixes)]
    probes = probe_step.map(inputs, ["picture master"] + ["mix"] * len(mixes))
    probes.wait()
    infos = probes.result()
    out = Path(request.out)
    fields = [_fields(plan, d, spec, mixes, out, request) for d, spec in zip(plan.distributors, specs, strict=True)]
    with output_lock(out):
        return _plan_locked(request, plan, specs, fields, mixes, infos, inputs)


def _fields(plan: Plan, d: Distributor, spec: Spec, mixes: list[MixInput], out: Path, request: PlanRequest
            ) -> RunFields:
    assert d.name is not None
    return preflight_run(spec=spec, master=plan.master, mixes=[m.path for m in mixes], out=str(out / d.name),
                         archive=plan.archive, title=plan.title, version=plan.version, recipient=d.recipient,
                         date=request.date or None, lang=d.lang or (plan.languages or ["und"])[0])


def _plan_locked(request: PlanRequest, plan: Plan, specs: list[Spec], fields: list[RunFields],
                 mixes: list[MixInput], infos: list[MediaInfo], inputs: list[str]) -> RunResult:
    log = get_run_logger()
    out = Path(request.out)
    names = plan.names()
    packages = [out / n / f"{plan.title}_{plan.version}" for n in names]
    for folder, recursive in ((out, False), (out / "work", True), *((p, True) for p in packages)):
        for p in remove_partials(folder, recursive=recursive):
            log.info("removed %s, left by an interrupted run", p)
    fingerprints = [f.result() for f in fingerprint_step.map(inputs)]
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)

    # layback: once per distinct track mapping
    lplans = [plan_layback(infos[0], list(zip(mixes, infos[1:], strict=True)), spec) for spec in specs]
    for spec, lp in zip(specs, lplans, strict=True):
        check_dcp_deliverables(spec, infos[0], lp, plan.title)
    keys = [layback_identity(lp, spec) for lp, spec in zip(lplans, specs, strict=True)]
    distinct = list(dict.fromkeys(keys))
    laybacks, married = {}, {}
    for n, key in enumerate(distinct):
        i = keys.index(key)
        suffix = "" if n == 0 else f"-{n + 1}"
        path = work / f"{plan.title}_{plan.version}_layback{suffix}.mov"
        laybacks[key] = layback_step(lplans[i], specs[i], str(path), str(out))
        married[key] = probe_step(laybacks[key].path, "layback master")
    log.info("%d layback(s) for %d distributor(s)", len(distinct), len(specs))

    # QC: one analysis per married master, every distributor's rules evaluated on it
    qcs: dict[int, QCResult] = {}
    for key in distinct:
        members = [i for i, k in enumerate(keys) if k == key]
        results = qc_specs_step(married[key], [specs[i] for i in members], laybacks[key].plan)
        qcs.update(zip(members, results, strict=True))

    entries: list[DistributorEntry] = []
    reports: list[Report] = []
    for i, (d, spec, f) in enumerate(zip(plan.distributors, specs, fields, strict=True)):
        qc = qcs[i]
        rep = build_report(spec=spec.name, findings=qc.findings, title=plan.title, version=plan.version,
                           inputs=fingerprints, measurements=qc.measurements,
                           layback=layback_summary(laybacks[keys[i]]), flow_run_id=_run_id())
        entries.append(DistributorEntry(name=names[i], spec=spec.name, verdict=rep.verdict, findings=rep.findings,
                                        counts=rep.counts, layback=married[keys[i]].path, recipient=d.recipient,
                                        territory=d.territory, lang=f.lang))
        reports.append(rep)
        if rep.verdict == "fail" and not request.force:
            log.error("%s: QC failed with %d error findings; its delivery stopped, the others go on", names[i],
                      rep.counts.get("error", 0))
        else:
            rep.forced = entries[i].forced = rep.verdict == "fail"
    delivering = [i for i, r in enumerate(reports) if r.verdict == "pass" or r.forced]

    # deliverables: every delivering distributor's from ONE decode per married master, identical ones made once
    files = _make_deliverables(specs, fields, keys, married, packages, out, delivering, entries)
    for i in delivering:
        _package_one(plan, specs[i], files[i], married[keys[i]], packages[i], reports[i], entries[i], out)
    for i, (spec, rep) in enumerate(zip(specs, reports, strict=True)):
        entries[i].report = str(write_report(rep, out / names[i] / "report.json"))
        write_html_report(rep, out / names[i] / "report.html", master=married[keys[i]].path,
                          severity_names={k.value if hasattr(k, "value") else str(k): v
                                          for k, v in (spec.severity_names or {}).items()})

    first = reports[0]
    top = Report(verdict="fail" if any(e.verdict == "fail" for e in entries) else "pass",
                 spec=",".join(s.name for s in specs), findings=[], measurements=first.measurements,
                 layback=first.layback, deliverables=[x for r in reports for x in r.deliverables],
                 archive=[a for r in reports for a in r.archive], title=plan.title, version=plan.version,
                 inputs=fingerprints, forced=any(e.forced for e in entries),
                 delivered=all(e.delivered for e in entries),
                 counts={k: sum(e.counts.get(k, 0) for e in entries) for k in ("error", "warning", "info")},
                 created=first.created, host=first.host, flow_run_id=_run_id(), distributors=entries,
                 documents=[p for r in reports for p in r.documents])
    # costs and every distributor's items into the schedule, report, artifacts (with the schedule's)
    result = finish_run(top, out / "report.json", specs, married[keys[0]].path, source=plan.master,
                        spec_ref=request.plan or ",".join(request.specs))
    archive_errors = [f"{e.name}: {e.archive_error}" for e in entries if e.archive_error]
    if archive_errors:
        raise VerificationError("; ".join(archive_errors))
    return result


def _make_deliverables(specs: list[Spec], fields: list[RunFields], keys: list[str], married: dict[str, MediaInfo],
                       packages: list[Path], out: Path, delivering: list[int], entries: list[DistributorEntry]
                       ) -> dict[int, list[tuple[str, str]]]:
    """Every delivering distributor's files ``(path, kind)``: per married master ONE transcode step (one decode)
    making what no earlier distributor of it makes, then the identical deliverables
    (:func:`tasks.deliverables.share.deliverable_identity`) and extras placed in the others' packages, verified."""
    log = get_run_logger()
    files: dict[int, list[tuple[str, str]]] = {i: [] for i in delivering}
    for key in dict.fromkeys(keys[i] for i in delivering):
        info = married[key]
        members = [i for i in delivering if keys[i] == key]
        owner: dict[str, tuple[int, str]] = {}  # deliverable identity -> (distributor, deliverable id) making it
        extras_owner: dict[str, int] = {}
        idents: dict[int, dict[str, str | None]] = {}
        sets = []
        for i in members:
            idents[i] = {d.id: deliverable_identity(d, specs[i], info, fields[i]) for d in specs[i].deliverables}
            todo = []
            for d in specs[i].deliverables:
                ident = idents[i][d.id]
                if ident is None or owner.setdefault(ident, (i, d.id)) == (i, d.id):
                    todo.append(d)
            ex = extras_identity(specs[i], info, fields[i])
            mine = extras_owner.setdefault(ex, i) == i
            sets.append(DeliverableSet(deliverables=todo, spec=specs[i], out_dir=str(packages[i]), fields=fields[i],
                                       extras_dir=str(packages[i] / "extras") if mine else None))
        results = dict(zip(members, transcode_sets_step(sets, info, str(out)), strict=True))
        made = {(i, r.id): r.path for i, res in results.items() for r in res.deliverables}
        for i in members:
            for d in specs[i].deliverables:
                ident = idents[i][d.id]
                src = owner[ident] if ident is not None else (i, d.id)
                if src == (i, d.id):
                    files[i].append((made[src], d.kind))
                    continue
                target = deliverable_path(d, specs[i], packages[i], fields[i])
                linked, _digest = share_step(made[src], str(target), out_root=str(out))
                log.info("%s: %s %s from %s", entries[i].name, "linked" if linked else "copied", target.name, made[src])
                entries[i].shared.append(target.name)
                files[i].append((str(target), d.kind))
            ex_src = extras_owner[extras_identity(specs[i], info, fields[i])]
            for x in results[ex_src].extras:
                target = packages[i] / "extras" / Path(x).name
                if ex_src != i:
                    share_step(x, str(target), out_root=str(out))
                files[i].append((str(target), "extra"))
    return files


def _package_one(plan: Plan, spec: Spec, files: list[tuple[str, str]], info: MediaInfo, package: Path, rep: Report,
                 entry: DistributorEntry, out: Path) -> None:
    """One distributor's package, archive copies and delivery documents."""
    log = get_run_logger()
    rep.deliverables = package_step(str(package), files, plan.title, plan.version, out_root=str(out))
    if plan.archive:
        try:
            copies = archive_step(str(package), plan.archive, plan.title)
            rep.archive = [ArchiveEntry(target=c.target, uri=c.uri, verified=c.verified, verified_at=c.verified_at,
                                        bytes=c.bytes, storage_class=c.storage_class) for c in copies]
            bad = [a.uri for a in rep.archive if not a.verified]
            if bad:
                raise VerificationError(f"archive copies failed verification: {', '.join(bad)}")
        except DeliverError as exc:
            rep.archive_error = entry.archive_error = str(exc)
    rep.delivered = entry.delivered = rep.archive_error is None
    entry.package, entry.deliverables, entry.archive = str(package), rep.deliverables, rep.archive
    if not rep.delivered:
        return
    # the documents the producer signs, after the archive (they list its verified copies); paperwork: a failure
    # is logged, the delivery stands
    try:
        docs = documents_step(rep, spec, str(package), info.path, entry.name, out_root=str(out))
    except DeliverError as exc:
        log.error("%s: delivery documents not made: %s (remake them with `deliver documents`)", entry.name, exc)
        docs = []
    rep.documents = [str(p) for d in docs for p in (d.html, d.pdf) if p is not None]
    for d in docs:
        if d.warning:
            log.warning("delivery document for %s: %s", d.distributor, d.warning)
