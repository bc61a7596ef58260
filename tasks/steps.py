"""Prefect ``@task`` wrappers around the plain functions of :mod:`tasks`: every step of every flow.

What lives here and nowhere else: retries (one condition, :func:`retry_on_infrastructure`:
infrastructure only, never bad input or a mismatch), the identity of a step's inputs for resuming
(:func:`step_identity`: options + path, size and mtime of every file read, never the bare path; the
outputs' records built on it, :class:`tasks.media.files.Provenance`, make a rerun resume from the files
alone, with or without Prefect's database), concurrency tags, timeouts, and the one progress reporter
(:class:`ProgressReporter`: a Prefect progress artifact, plus in-process listeners for the terminal).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from prefect import Task, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from specs.errors import InfrastructureError
from specs.loader import load_spec
from specs.model import Deliverable, Spec
from tasks.costs import RunCosts, measure_step, run_costs, take_step_costs
from tasks.deliverables.naming import RunFields
from tasks.layback import LaybackPlan, LaybackResult, layback
from tasks.media.files import Provenance
from tasks.media.probe import MediaInfo, probe
from tasks.package import fingerprint_file, write_package
from tasks.qc.engine import QCResult, qc_master, qc_masters
from tasks.report import DeliverableEntry, InputFingerprint, Report, artifact_key, build_report, write_report

if TYPE_CHECKING:  # the archive (boto3, SQLAlchemy), transcode and nightly stacks load in their steps only,
    # so that `deliver qc` starts without them
    from tasks.archive.targets import ArchiveCopy
    from tasks.archive.verify import VerifyReport
    from tasks.deliverables.make import DeliverableSet, TranscodeAllResult
    from tasks.documents import WrittenDocument
    from tasks.nightly import QCItemOutcome
    from tasks.schedule import ScheduleDigest

__all__ = ["probe_step", "fingerprint_step", "layback_step", "qc_step", "qc_specs_step", "share_step",
    "transcode_all_step", "transcode_sets_step", "deliverables_task", "deliverables_timeout_s", "package_step",
           "documents_step", "archive_step", "verify_step",
           "nightly_qc_step", "record_schedule_step", "schedule_digest_step", "costed", "file_identity",
           "step_identity", "step_provenance", "ProgressReporter", "PROGRESS_LISTENERS", "STAGE_LISTENERS",
           "stage_event", "retry_on_infrastructure", "FFMPEG_TAG",
           "ARCHIVE_RETRIES", "ARCHIVE_BACKOFF_S"]

FFMPEG_TAG = "ffmpeg"  # tag concurrency limit: `prefect concurrency-limit create ffmpeg <cores>`
#: Retries of the archive and fixity steps and the base of their exponential backoff (seconds).
ARCHIVE_RETRIES = int(os.environ.get("DELIVER_ARCHIVE_RETRIES", "4"))
ARCHIVE_BACKOFF_S = float(os.environ.get("DELIVER_ARCHIVE_BACKOFF_S", "10"))


def file_identity(path: str | os.PathLike[str]) -> str:
    """Cheap content identity of a file: resolved path, size and mtime in ns."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return f"{p}|missing"
    return f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def step_identity(step: str, parameters: dict[str, Any]) -> str:
    """The identity of a step's inputs: its name, its non-file parameters and the identity of every file it
    reads (:func:`file_identity`). Outputs (``out*`` parameters) are not part of it: they are what it makes."""
    doc = {"task": step, "params": _jsonable(parameters)}
    files = sorted({str(v) for v in _paths_in(parameters)})
    doc["files"] = [file_identity(f) for f in files]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def step_provenance(step: str, parameters: dict[str, Any], out_root: str | None) -> Provenance | None:
    """Where a step's outputs record what made them (None: no run folder, nothing recorded)."""
    return Provenance(step_identity(step, parameters), Path(out_root)) if out_root else None


def _paths_in(value: Any) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("out"):
                continue  # outputs: what the step makes, not what it reads
            if k.endswith("path") and isinstance(v, str):
                out.append(v)
            elif k.endswith("paths") and isinstance(v, list) and all(isinstance(x, str) for x in v):
                out += v  # e.g. the mono files of one mix
            else:
                out += _paths_in(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            out += _paths_in(v)
    elif hasattr(value, "model_dump"):
        out += _paths_in(value.model_dump(mode="json"))
    return out


def retry_on_infrastructure(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only an unreachable/failed store, network or disk is worth another try; never bad
    input, a checksum mismatch or a bug."""
    try:
        state.result()
    except InfrastructureError as exc:  # unless the step already spent its own retry budget (S3 unreachable)
        return not getattr(exc, "retries_exhausted", False)
    except BaseException:  # noqa: BLE001 - classifies the failure: anything else is not worth a retry
        return False
    return False


#: In-process listeners ``(key, description, done, total)``: the CLI draws a Rich bar from them.
PROGRESS_LISTENERS: list[Any] = []
#: In-process listeners ``(stage, event, detail)``, event "start" or "finish": the CLI's stage view.
STAGE_LISTENERS: list[Any] = []


def stage_event(stage: str, event: str, detail: str = "") -> None:
    """Tell the in-process stage listeners that ``stage`` starts or finishes (never fails a step)."""
    for listener in list(STAGE_LISTENERS):
        try:
            listener(stage, event, detail)
        except Exception:  # noqa: BLE001 - a terminal view must never fail a step
            pass


class ProgressReporter:
    """A Prefect progress artifact updated at most every ``interval_s`` (the API is not free)."""

    def __init__(self, key: str, description: str, interval_s: float = 1.0) -> None:
        self.key, self.description = key, description
        self.interval_s = interval_s
        self._last = 0.0
        self._id: UUID | None = None
        try:
            self._id = cast(UUID, create_progress_artifact(progress=0.0, key=key, description=description))
        except Exception:  # noqa: BLE001 - progress is nice to have; never fail a transcode over it
            self._id = None

    def __call__(self, done: float, total: float) -> None:
        for listener in list(PROGRESS_LISTENERS):
            try:
                listener(self.key, self.description, done, total)
            except Exception:  # noqa: BLE001 - a terminal bar must never fail a transcode
                pass
        now = time.monotonic()
        if self._id is None or (now - self._last < self.interval_s and done < total):
            return
        self._last = now
        pct = 100.0 if total <= 0 else max(0.0, min(100.0, 100.0 * done / total))
        try:
            update_progress_artifact(artifact_id=self._id, progress=pct)
        except Exception:  # noqa: BLE001 - progress is nice to have; never fail a transcode over it
            pass

    def done(self) -> None:
        """Mark the step finished (100 %) whatever the last throttled update said."""
        self(1.0, 1.0)


F = TypeVar("F", bound=Callable[..., Any])


def _flow_run_key() -> str:
    from prefect.runtime import flow_run

    return str(flow_run.get_id() or "")


def costed(step: str) -> Callable[[F], F]:
    """Record the CPU seconds (self + children) and wall time of each call under the flow run
    (:func:`tasks.costs.measure_step`); the run's record step takes them."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with measure_step(_flow_run_key(), step):
                return fn(*args, **kwargs)
        return cast(F, inner)
    return wrap


@task(name="probe", retries=2, retry_delay_seconds=2, retry_condition_fn=retry_on_infrastructure)
@costed("probe")
def probe_step(path: str, what: str = "media file") -> MediaInfo:
    stage_event("probe", "start", Path(path).name)
    info = probe(path, what)
    stage_event("probe", "finish", Path(path).name)
    return info


@task(name="fingerprint")
@costed("fingerprint")
def fingerprint_step(path: str) -> InputFingerprint:
    """xxh128 and size of an input, for the report (and the archive catalog later)."""
    return fingerprint_file(path)


@task(name="layback", tags=[FFMPEG_TAG], timeout_seconds=6 * 3600, cache_policy=NO_CACHE, retries=1,
      retry_condition_fn=retry_on_infrastructure)
@costed("layback")
def layback_step(plan: LaybackPlan, spec: Spec, out_path: str, out_root: str | None = None) -> LaybackResult:
    """The married master; with ``out_root`` (the run's folder) a rerun reuses it by its record and hash
    (:func:`tasks.media.files.reusable`), not by a Prefect cache entry that another machine would not have."""
    progress = ProgressReporter(artifact_key("layback", Path(out_path).stem), f"Layback of {Path(out_path).name}")
    provenance = step_provenance("layback", {"plan": plan, "spec": spec}, out_root)
    return layback(plan, spec, out_path, progress=progress, provenance=provenance)


#: The deliverables step's timeout before any DCP: a ceiling for the file deliverables of a long programme.
DELIVERABLES_TIMEOUT_S = 24 * 3600


def deliverables_timeout_s(deliverables: list[Deliverable], master: MediaInfo) -> float:
    """The deliverables step's timeout: the file deliverables' ceiling plus the DCP encode's budget, which
    grows with the master's frames (tasks.dcp.plan.encode_budget_s): a two-hour 2K DCP takes about a day
    on 2 cores, so a fixed ceiling would kill a healthy feature encode."""
    from tasks.dcp.plan import encode_budget_s

    return DELIVERABLES_TIMEOUT_S + encode_budget_s(deliverables, master)


@task(name="deliverables", tags=[FFMPEG_TAG], timeout_seconds=DELIVERABLES_TIMEOUT_S, retries=1,
      retry_condition_fn=retry_on_infrastructure)
@costed("deliverables")
def _transcode_all(deliverables: list[Deliverable], spec: Spec, master: MediaInfo, out_dir: str, fields: RunFields,
                   extras_dir: str | None = None, out_root: str | None = None) -> TranscodeAllResult:
    from tasks.deliverables.make import transcode_all

    progress = ProgressReporter(artifact_key("deliverables", fields.title, fields.version),
                                f"{len(deliverables)} deliverables of {fields.title} {fields.version}, one decode")
    provenance = step_provenance("deliverables", {"deliverables": deliverables, "spec": spec, "master": master,
                                                  "fields": fields}, out_root)
    return transcode_all(deliverables, spec, master, out_dir, fields=fields, extras_dir=extras_dir, progress=progress,
                         provenance=provenance)


def deliverables_task(deliverables: list[Deliverable], master: MediaInfo) -> Task[..., TranscodeAllResult]:
    """The deliverables task with its timeout scaled to the work (:func:`deliverables_timeout_s`)."""
    return _transcode_all.with_options(timeout_seconds=deliverables_timeout_s(deliverables, master))


def transcode_all_step(deliverables: list[Deliverable], spec: Spec, master: MediaInfo, out_dir: str,
                       fields: RunFields, extras_dir: str | None = None,
                       out_root: str | None = None) -> TranscodeAllResult:
    """Every deliverable from one decode. Not cached by Prefect: transcode_all itself resumes by the
    outputs' records and hashes (with ``out_root``), which is what a retry and a rerun need."""
    return deliverables_task(deliverables, master)(deliverables, spec, master, out_dir, fields, extras_dir, out_root)


@task(name="deliverables-distributors", tags=[FFMPEG_TAG], timeout_seconds=DELIVERABLES_TIMEOUT_S, retries=1,
      retry_condition_fn=retry_on_infrastructure)
@costed("deliverables")
def _transcode_sets(sets: list[DeliverableSet], master: MediaInfo, out_root: str | None = None
                        ) -> list[TranscodeAllResult]:
    """Every distributor's deliverables of one married master from ONE decode
    (:func:`tasks.deliverables.make.transcode_sets`); each set's outputs have the identity
    :func:`transcode_all_step` gives them, so either step reuses what the other made."""
    from tasks.deliverables.make import transcode_sets

    title, version = (sets[0].fields.title, sets[0].fields.version) if sets else ("plan", "v1")
    progress = ProgressReporter(artifact_key("deliverables", title, version),
                                f"{sum(len(s.deliverables) for s in sets)} deliverables of {title} {version} for "
                                f"{len(sets)} distributor(s), one decode")
    provenances = [step_provenance("deliverables", {"deliverables": s.deliverables, "spec": s.spec, "master": master,
                                                    "fields": s.fields}, out_root) for s in sets]
    return transcode_sets(sets, master, progress=progress, provenances=provenances)


def transcode_sets_step(sets: list[DeliverableSet], master: MediaInfo, out_root: str | None = None
                        ) -> list[TranscodeAllResult]:
    """:func:`_transcode_sets` with its timeout scaled to every set's work (:func:`deliverables_timeout_s`)."""
    work = [d for s in sets for d in s.deliverables]
    task = _transcode_sets.with_options(timeout_seconds=deliverables_timeout_s(work, master))
    return task(sets, master, out_root)


@task(name="qc", tags=[FFMPEG_TAG], timeout_seconds=6 * 3600)
@costed("qc")
def qc_step(info: MediaInfo, spec: Spec, layback: LaybackPlan | None = None) -> QCResult:
    """Every QC check of the spec on one master, from one analysis decode (and the placement of its mixes when
    ``layback`` made it)."""
    progress = ProgressReporter(artifact_key("qc-analysis", Path(info.path).stem),
                                f"Picture and audio analysis of {Path(info.path).name}")
    return qc_master(info, spec, layback=layback, progress=progress)


@task(name="qc-distributors", tags=[FFMPEG_TAG], timeout_seconds=6 * 3600)
@costed("qc")
def qc_specs_step(info: MediaInfo, specs: list[Spec], layback: LaybackPlan | None = None) -> list[QCResult]:
    """Every distributor's QC of one married master from ONE analysis (:func:`tasks.qc.engine.qc_masters`)."""
    progress = ProgressReporter(artifact_key("qc-analysis", Path(info.path).stem),
                                f"Picture and audio analysis of {Path(info.path).name} for {len(specs)} spec(s)")
    return qc_masters(info, specs, layback=layback, progress=progress)


@task(name="share-deliverable", cache_policy=NO_CACHE)
@costed("share")
def share_step(source: str, target: str, *, out_root: str | None = None) -> tuple[bool, str]:
    """A deliverable made for another distributor placed in this package (:func:`tasks.deliverables.share.link_into`):
    a hard link or a copy, verified by inode or xxh128."""
    from tasks.deliverables.share import link_into

    return link_into(source, target, out_root=out_root)


@task(name="package")
@costed("package")
def package_step(package_dir: str, files: list[tuple[str, str]], title: str, version: str,
                 *, out_root: str | None = None) -> list[DeliverableEntry]:
    """manifest.json and the first ASC MHL generation of a package (:func:`tasks.package.write_package`); with
    ``out_root`` the digests the deliverables' publish read recorded are reused while the files are unchanged."""
    stage_event("package", "start", Path(package_dir).name)
    entries = write_package(Path(package_dir), [(Path(p), kind) for p, kind in files], title=title, version=version,
                            out_root=Path(out_root) if out_root else None)
    stage_event("package", "finish", Path(package_dir).name)
    return entries


@task(name="documents", cache_policy=NO_CACHE, timeout_seconds=3600)
@costed("documents")
def documents_step(report: Report, spec: Spec, package_dir: str, master: str | None = None,
                   distributor: str | None = None, *, out_root: str | None = None) -> list[WrittenDocument]:
    """The delivery documents of the package's distributor (HTML, PDF; named ``distributor``, else the spec) in its
    documents/ folder, added to its ASC MHL history (:mod:`tasks.documents`)."""
    from tasks.documents import DOCUMENTS_FOLDER, distributors_of, record_in_package, write_delivery_documents

    docs = write_delivery_documents(distributors_of(report, spec, distributor), Path(package_dir) / DOCUMENTS_FOLDER,
                                    master=master)
    record_in_package(Path(package_dir), docs, report, out_root=Path(out_root) if out_root else None)
    return docs


def archive_package(package_dir: Path, targets: list[str], *, title: str, progress: Any) -> list[ArchiveCopy]:
    """:func:`tasks.archive.copy.archive_package`, imported on first use (boto3 and SQLAlchemy are slow to
    import); a module-level name so a test can stand in for the store."""
    from tasks.archive.copy import archive_package as copy_and_verify

    return copy_and_verify(package_dir, targets, title=title, progress=progress)


@task(name="archive-package", retries=ARCHIVE_RETRIES,
      retry_delay_seconds=exponential_backoff(backoff_factor=ARCHIVE_BACKOFF_S), retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_infrastructure, cache_policy=NO_CACHE)
@costed("archive")
def archive_step(package_dir: str, targets: list[str], title: str) -> list[ArchiveCopy]:
    """Copy + verify + MHL + catalog (:func:`tasks.archive.copy.archive_package`), progress by bytes read.

    A retry resumes: interrupted multipart uploads continue from their uploaded parts, finished
    objects and files are kept and re-checked. A checksum mismatch is never retried."""
    name = Path(package_dir).name
    progress = ProgressReporter(artifact_key("archive-progress", name), f"Bytes read for the archive of {name}")
    copies = archive_package(Path(package_dir), targets, title=title, progress=progress)
    progress.done()
    return copies


@task(name="verify-copies", retries=ARCHIVE_RETRIES,
      retry_delay_seconds=exponential_backoff(backoff_factor=ARCHIVE_BACKOFF_S), retry_jitter_factor=0.5,
      retry_condition_fn=retry_on_infrastructure, cache_policy=NO_CACHE)
def verify_step(uri: str) -> VerifyReport:
    """Fixity of a copy or of every package under a target (:func:`tasks.archive.verify.verify_uri`)."""
    from tasks.archive.verify import verify_uri

    return verify_uri(uri)


# No ffmpeg tag here: the qc step inside takes the slot. A tag limit slot is held per task run, so an outer
# run holding one while its inner qc waits for another deadlocks once every slot is held by an outer run.
@task(name="nightly-qc-master", cache_policy=NO_CACHE, timeout_seconds=6 * 3600, task_run_name="qc-{path}")
def nightly_qc_step(path: str, spec_ref: str, report: str) -> QCItemOutcome:
    """One nightly QC item: the qc flow's probe and QC steps, report.json written, the outcome returned."""
    from tasks.nightly import qc_item_outcome

    spec = load_spec(spec_ref)
    info = probe_step(path, "master")
    qc = qc_step(info, spec)
    rep = build_report(spec=spec.name, findings=qc.findings, measurements=qc.measurements, title=Path(path).name)
    return qc_item_outcome(rep, write_report(rep, report))



@task(name="record-schedule", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_on_infrastructure)
def record_schedule_step(report: Report, specs: list[Spec]) -> tuple[RunCosts, str]:
    """The run's costs (its steps' measurements, bytes made and archived, priced) and its state in the delivery
    schedule of the catalog, per distributor; returns the costs and the schedule as markdown."""
    from tasks.archive.catalog import Catalog
    from tasks.archive.targets import load_storage_config
    from tasks.schedule import distributors_of, record_run, status, status_markdown

    runs = distributors_of(report, specs)
    made: dict[str, int] = {}
    seen: set[str] = set()  # a file shared between distributors (hard-linked) was written once
    for r in runs:
        for e in r.deliverables:
            if len(runs) == 1 or e.xxh128 not in seen:
                made[e.name if len(runs) == 1 else f"{r.distributor}/{e.name}"] = e.size
            seen.add(e.xxh128)
    copies = [(a.target, a.uri, a.storage_class, a.bytes or 0) for a in report.archive]
    run_key = _flow_run_key()
    costs = run_costs(take_step_costs(run_key, forget=False), made, copies, load_storage_config().prices)
    from sqlalchemy.exc import SQLAlchemyError

    catalog = Catalog()
    title, version = report.title or "untitled", report.version or "v1"
    try:
        record_run(catalog, title=title, version=version, distributors=runs, costs=costs)
        take_step_costs(run_key)  # stored: a retry of this step must not record them twice
        return costs, status_markdown(status(catalog, title, version=version))
    except SQLAlchemyError as exc:
        raise InfrastructureError(f"catalog: schedule not recorded ({type(exc).__name__})") from None


@task(name="schedule-digest", cache_policy=NO_CACHE, retries=2, retry_condition_fn=retry_on_infrastructure)
def schedule_digest_step() -> ScheduleDigest:
    """Overdue items and rejections since the last night (:func:`tasks.schedule.nightly_digest`)."""
    from tasks.archive.catalog import Catalog
    from tasks.schedule import nightly_digest

    return nightly_digest(Catalog())
