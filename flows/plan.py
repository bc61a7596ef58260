"""The deliver-plan flow: every distributor of a title from one run, each step done once.

Orchestration only. One :class:`~flows.deployments.PlanRequest` in (``deliver run --plan FILE``, repeated
``--spec``, or the deliver-plan deployment), one :class:`~tasks.report.RunResult` out whose report lists
every distributor (``distributors``: verdict, gate, package, findings, deliverables)::

    load plan ─► specs (overrides) ─► probe inputs ─► preflight per distributor ─► output lock
      ├─ layback once per distinct track mapping (tasks.layback.layback_identity)
      ├─ QC: one analysis per married master, every distributor's rules on it (qc_specs_step)
      ├─ gate per distributor: one failing does not stop the others
      ├─ deliverables: what no earlier distributor made, from one decode; the identical ones
      │  (tasks.deliverables.share.deliverable_identity) hard-linked or copied in, verified
      ├─ package (+ archive) per distributor, OUT/<distributor>/<title>_<version>/
      └─ report.json per distributor and OUT/report.json with the distributors list
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from flows.deliver import publish_report, refuse
from flows.deployments import PlanRequest, QCFailed, bind_run_logging, cores, on_cancel, request_field, threads
from specs.errors import DeliverError, OutputLockedError, VerificationError
from specs.model import Spec
from specs.plan import Distributor, Plan, distributor_spec
from tasks.dcp.plan import check_dcp_deliverables
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
    fingerprint_step,
    layback_step,
    package_step,
    probe_step,
    qc_specs_step,
    share_step,
    transcode_all_step,
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
    made: dict[str, str] = {}  # deliverable identity -> path of the file made for an earlier distributor
    extras_made: dict[str, list[str]] = {}
    for i, (d, spec, f) in enumerate(zip(plan.distributors, specs, fields, strict=True)):
        qc = qcs[i]
        key, info = keys[i], married[keys[i]]
        rep = build_report(spec=spec.name, findings=qc.findings, title=plan.title, version=plan.version,
                           inputs=fingerprints, measurements=qc.measurements,
                           layback=layback_summary(laybacks[key]), flow_run_id=_run_id())
        entry = DistributorEntry(name=names[i], spec=spec.name, verdict=rep.verdict, findings=rep.findings,
                                 counts=rep.counts, layback=info.path, recipient=d.recipient, territory=d.territory,
                                 lang=f.lang)
        if rep.verdict == "fail" and not request.force:
            log.error("%s: QC failed with %d error findings; its delivery stopped, the others go on", names[i],
                      rep.counts.get("error", 0))
        else:
            rep.forced = entry.forced = rep.verdict == "fail"
            _deliver_one(plan, spec, f, info, packages[i], out, made, extras_made, rep, entry)
        entry.report = str(write_report(rep, out / names[i] / "report.json"))
        write_html_report(rep, out / names[i] / "report.html", master=info.path,
                          severity_names={k.value if hasattr(k, "value") else str(k): v
                                          for k, v in (spec.severity_names or {}).items()})
        entries.append(entry)
        reports.append(rep)

    first = reports[0]
    top = Report(verdict="fail" if any(e.verdict == "fail" for e in entries) else "pass",
                 spec=",".join(s.name for s in specs), findings=[], measurements=first.measurements,
                 layback=first.layback, deliverables=[x for r in reports for x in r.deliverables],
                 archive=[a for r in reports for a in r.archive], title=plan.title, version=plan.version,
                 inputs=fingerprints, forced=any(e.forced for e in entries),
                 delivered=all(e.delivered for e in entries),
                 counts={k: sum(e.counts.get(k, 0) for e in entries) for k in ("error", "warning", "info")},
                 created=first.created, host=first.host, flow_run_id=_run_id(), distributors=entries)
    result = publish_report(top, out / "report.json", specs[0], married[keys[0]].path)
    archive_errors = [f"{e.name}: {e.archive_error}" for e in entries if e.archive_error]
    if archive_errors:
        raise VerificationError("; ".join(archive_errors))
    return result


def _deliver_one(plan: Plan, spec: Spec, fields: RunFields, info: MediaInfo, package: Path, out: Path,
                 made: dict[str, str], extras_made: dict[str, list[str]], rep: Report,
                 entry: DistributorEntry) -> None:
    """One distributor's deliverables (shared ones linked in), package and archive copies."""
    log = get_run_logger()
    idents = {d.id: deliverable_identity(d, spec, info, fields) for d in spec.deliverables}
    todo = [d for d in spec.deliverables if idents[d.id] is None or idents[d.id] not in made]
    ex_key = extras_identity(spec, info, fields)
    files: list[tuple[str, str]] = []
    if todo or ex_key not in extras_made:
        res = transcode_all_step(todo, spec, info, str(package), fields,
                                 None if ex_key in extras_made else str(package / "extras"), str(out))
        for r in res.deliverables:
            if idents[r.id] is not None:
                made.setdefault(str(idents[r.id]), r.path)
            files.append((r.path, r.kind))
        if ex_key not in extras_made:
            extras_made[ex_key] = res.extras
            files += [(p, "extra") for p in res.extras]
    for d in spec.deliverables:
        ident = idents[d.id]
        if d in todo or ident is None:
            continue
        target = deliverable_path(d, spec, package, fields)
        linked, _digest = share_step(made[ident], str(target), out_root=str(out))
        log.info("%s: %s %s from %s", entry.name, "linked" if linked else "copied", target.name, made[ident])
        entry.shared.append(target.name)
        files.append((str(target), d.kind))
    if ex_key in extras_made and not any(k == "extra" for _p, k in files):
        for p in extras_made[ex_key]:
            target = package / "extras" / Path(p).name
            share_step(p, str(target), out_root=str(out))
            files.append((str(target), "extra"))
    order = {str(deliverable_path(d, spec, package, fields)): n for n, d in enumerate(spec.deliverables)}
    files.sort(key=lambda pk: order.get(pk[0], len(order)))
    rep.deliverables = package_step(str(package), files, plan.title, plan.version, out_root=str(out))
    if plan.archive:
        try:
            copies = archive_step(str(package), plan.archive, plan.title)
            rep.archive = [ArchiveEntry(target=c.target, uri=c.uri, verified=c.verified, verified_at=c.verified_at)
                           for c in copies]
            bad = [a.uri for a in rep.archive if not a.verified]
            if bad:
                raise VerificationError(f"archive copies failed verification: {', '.join(bad)}")
        except DeliverError as exc:
            rep.archive_error = entry.archive_error = str(exc)
    rep.delivered = entry.delivered = rep.archive_error is None
    entry.package, entry.deliverables, entry.archive = str(package), rep.deliverables, rep.archive
