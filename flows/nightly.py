"""The nightly QC flow: re-QC new or changed masters in the watch folders, fixity of a share of the archive.

Stages: config -> scan the watch folders (:func:`tasks.nightly.scan_watch_folders`) and pick tonight's
fixity share (:func:`tasks.nightly.fixity_share`) -> every item at once (QC with the qc flow's steps,
fixity with the verify step), as tasks on a bounded thread pool or a Dask cluster, or as runs of the
``qc-item`` deployment spread over a work pool -> state file, summary table and report. The task runner
is the one of the run's own config (``request.config`` included), started inside the run. One failure
never stops the others: every item runs, then one summary lists them all and the run fails if any
item did. The domain (config, state, scan, rotation, summary) is in :mod:`tasks.nightly`.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.deployments import (
    NightlyRequest,
    QCRequest,
    bind_run_logging,
    cores,
    request_field,
    spec_fields,
    threads,
)
from flows.events import emit_archive_mismatch, emit_qc_failed
from specs.errors import DeliverError
from tasks.media.ffmpeg import kill_all_children
from tasks.nightly import (
    NightlyConfig,
    NightlyState,
    NightlySummary,
    QCItemOutcome,
    SummaryRow,
    archived_copies,
    error_row,
    fixity_row,
    fixity_share,
    load_nightly_config,
    night_of,
    qc_row,
    report_path,
    scan_watch_folders,
    skipped_row,
    state_path,
    summary_markdown,
    where,
    worker_lost,
)
from tasks.steps import nightly_qc_step, schedule_digest_step, verify_step

__all__ = ["nightly_qc_flow", "qc_item_flow", "nightly_schedule", "make_task_runner"]


def nightly_schedule(cfg: NightlyConfig | None = None) -> Any:
    """The ``prefect.schedules.Cron`` of the nightly deployment, from the config's cron and timezone."""
    from prefect.schedules import Cron

    cfg = cfg or load_nightly_config()
    return Cron(cfg.schedule.cron, timezone=cfg.schedule.timezone)


def make_task_runner(cfg: NightlyConfig | None = None) -> Any:
    """A bounded task runner: ThreadPool(max_workers=cores) or prefect-dask's DaskTaskRunner (the cluster at
    ``dask_address``, else a LocalCluster of single-threaded processes)."""
    try:
        cfg = cfg or load_nightly_config()
    except Exception:  # noqa: BLE001 - import must not fail on a bad config; the flow reports it
        cfg = NightlyConfig()
    workers = cfg.fan_out.max_workers or cores()
    if cfg.fan_out.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if cfg.fan_out.dask_address:
            return DaskTaskRunner(address=cfg.fan_out.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    return threads(workers)


def _emit_if_failed(outcome: QCItemOutcome, path: str) -> None:
    if outcome.verdict != "pass":
        emit_qc_failed(title=Path(path).name, path=path, spec=outcome.spec, report=outcome.report,
                       errors=outcome.errors, first_error=outcome.first_error)


@flow(name="qc-item", flow_run_name=lambda: f"nightly-qc-{request_field('path', 'master')}", log_prints=True,
      persist_result=True, result_serializer="json")
def qc_item_flow(request: QCRequest) -> QCItemOutcome:
    """One nightly QC item as its own flow run, so items spread over every worker of a pool."""
    from prefect.runtime import flow_run

    bind_run_logging(str(flow_run.get_id() or "") or None)
    try:
        outcome = nightly_qc_step(request.path, request.spec_ref, request.report)
        _emit_if_failed(outcome, request.path)
        return outcome
    finally:
        kill_all_children()


def _deployment_item_result(fr: Any) -> tuple[QCItemOutcome | None, BaseException | None]:
    """Outcome of one qc-item flow run: its persisted return value."""
    state = fr.state
    if not state.is_completed():
        return None, RuntimeError(f"qc-item run {fr.name} {state.type.value}: {state.message or ''}".strip())
    try:
        res = state.result(raise_on_failure=True)
    except Exception as exc:  # noqa: BLE001 - result storage this machine cannot read
        return None, RuntimeError(f"qc-item run {fr.name} completed but its result is unreadable here ({exc}); "
                                  "give every machine the same result storage (PREFECT_LOCAL_STORAGE_PATH on "
                                  "shared storage, or PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK)")
    outcome = QCItemOutcome.model_validate(res.model_dump() if hasattr(res, "model_dump") else res)
    return outcome.model_copy(update={"flow_run": str(fr.id)}), None


def _submit_item(cfg: NightlyConfig, parameters: dict[str, Any]) -> Any:
    from prefect.deployments import run_deployment

    return run_deployment(cfg.fan_out.deployment, timeout=0, as_subflow=False, parameters=parameters)


def _lost_workers(client: Any, holders: set[tuple[str, str]], now: dt.datetime) -> dict[tuple[str, str], str]:
    """``{(pool, worker): why it is lost}`` for the ``holders`` of unfinished runs that stopped heartbeating
    or left their pool."""
    lost: dict[tuple[str, str], str] = {}
    for pool in {p for p, _ in holders}:
        seen = {w.name: w for w in client.read_workers_for_work_pool(pool)}
        for _, name in {h for h in holders if h[0] == pool}:
            w = seen.get(name)
            why = worker_lost(w.last_heartbeat_time if w else None, w.heartbeat_interval_seconds if w else None, now,
                              registered=w is not None)
            if why:
                lost[(pool, name)] = why
    return lost


def _wait_deployment_runs(runs: dict[str, Any], parameters: dict[str, dict[str, Any]], cfg: NightlyConfig,
                          poll_s: float = 3.0) -> dict[str, Any]:
    """Wait for the item flow runs; return ``{key: final flow run}``.

    An item whose run crashed (its process died under a live worker, which reports it Crashed) or whose
    worker was lost (:func:`tasks.nightly.worker_lost`: the worker named by the run's ``prefect.worker.name``
    label stopped heartbeating, so the run would stay Running or Pending for ever; it is marked Crashed) is
    submitted again, at most ``fan_out.resubmits`` times; after that its Crashed run is its outcome.
    A crash is the infrastructure's, never a QC verdict, so running the item again is safe.
    """
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    log = get_run_logger()
    done: dict[str, Any] = {}
    resubmitted: dict[str, int] = {}
    with get_client(sync_client=True) as client:
        while len(done) < len(runs):
            current = {key: client.read_flow_run(fr.id) for key, fr in runs.items() if key not in done}
            holder = {key: (str(cur.work_pool_name), str((cur.labels or {})["prefect.worker.name"]))
                      for key, cur in current.items() if cur.state is not None and not cur.state.is_final()
                      and cur.work_pool_name and (cur.labels or {}).get("prefect.worker.name")}
            lost = _lost_workers(client, set(holder.values()), dt.datetime.now(dt.UTC)) if holder else {}
            for key, cur in current.items():
                if cur.state is not None and cur.state.is_crashed():
                    what = f"Crashed ({cur.state.message or 'no message'})"
                elif cur.state is not None and cur.state.is_final():
                    done[key] = cur
                    continue
                elif key in holder and holder[key] in lost:
                    what = f"marked Crashed, its worker {holder[key][1]} was lost: {lost[holder[key]]}"
                    client.set_flow_run_state(cur.id, Crashed(message=what.removeprefix("marked Crashed, ")),
                                              force=True)
                else:
                    continue
                if resubmitted.get(key, 0) < cfg.fan_out.resubmits:
                    resubmitted[key] = resubmitted.get(key, 0) + 1
                    runs[key] = _submit_item(cfg, parameters[key])
                    log.warning("item %s: run %s %s; resubmitted as run %s (%d/%d)", key, cur.name, what,
                                runs[key].id, resubmitted[key], cfg.fan_out.resubmits)
                else:
                    log.error("item %s: run %s %s; not resubmitted (fan_out.resubmits: %d)", key, cur.name, what,
                              cfg.fan_out.resubmits)
                    done[key] = client.read_flow_run(cur.id)
            if len(done) < len(runs):
                time.sleep(poll_s)
    return done


def _nightly_run_name() -> str:
    from prefect.runtime import flow_run

    req = (flow_run.parameters or {}).get("request")
    night = req.get("night") if isinstance(req, dict) else getattr(req, "night", None)
    if not night:
        try:
            config = req.get("config") if isinstance(req, dict) else getattr(req, "config", None)
            night = night_of(None, load_nightly_config(config).schedule.timezone).isoformat()
        except Exception:  # noqa: BLE001 - a run name must never fail the run
            night = dt.date.today().isoformat()
    return f"nightly-qc-{night}"


@flow(name="nightly-qc", flow_run_name=_nightly_run_name, log_prints=True)
def nightly_qc_flow(request: NightlyRequest = NightlyRequest()) -> Any:  # noqa: B008 - the UI form's default
    """QC new/changed masters of the watch folders and verify tonight's share of the archive.

    Writes one ``nightly-summary`` table artifact (every item, pass/fail/error) and a markdown
    summary; the run fails (its data: the :class:`~tasks.nightly.NightlySummary`) if any item failed,
    after every item has run.
    """
    from prefect.runtime import flow_run
    from prefect.states import Completed, Failed

    bind_run_logging(str(flow_run.get_id() or "") or None)
    log = get_run_logger()
    cfg = load_nightly_config(request.config or None)
    night = dt.date.fromisoformat(request.night) if request.night else night_of(None, cfg.schedule.timezone)
    state = NightlyState(state_path(cfg))
    items = scan_watch_folders(cfg, state, force_all=request.force_all)
    share = fixity_share(archived_copies(cfg), night, cfg.fixity.rotation_nights)
    log.info("night %s: %d master(s) to QC, %d archived cop(ies) to verify (1/%d of the archive)",
             night, len(items), len(share), cfg.fixity.rotation_nights)
    rows: list[SummaryRow] = []
    # The fan-out runner of this night's config, not one fixed when the module was imported: a config given
    # as request.config (its dask_address, its max_workers) decides where the items run.
    runner = make_task_runner(cfg).__enter__()
    try:
        # every item at once
        qc_futures: dict[str, Any] = {}
        item_parameters: dict[str, dict[str, Any]] = {}
        for it in items:
            if not it.spec:
                rows.append(skipped_row(it))
                continue
            request_ = QCRequest(path=it.path, report=str(report_path(cfg, it, night)), **spec_fields(it.spec))
            if cfg.fan_out.mode == "deployments":
                item_parameters[it.path] = {"request": request_.model_dump(mode="json")}
                qc_futures[it.path] = _submit_item(cfg, item_parameters[it.path])
            else:
                qc_futures[it.path] = runner.submit(nightly_qc_step, {"path": it.path, "spec_ref": request_.spec_ref,
                                                                      "report": request_.report})
        fix_futures = {uri: runner.submit(verify_step, {"uri": uri}) for uri in share}

        # their outcomes
        results: dict[str, tuple[QCItemOutcome | None, BaseException | None]] = {}
        if cfg.fan_out.mode == "deployments":
            for key, fr in _wait_deployment_runs(qc_futures, item_parameters, cfg).items():
                results[key] = _deployment_item_result(fr)  # the qc-item run emitted its own event
        else:
            for key, fut in qc_futures.items():
                try:
                    results[key] = (fut.result(), None)
                    _emit_if_failed(results[key][0], key)  # type: ignore[arg-type]
                except BaseException as exc:  # noqa: BLE001 - one failure never stops the others
                    results[key] = (None, exc)
        by_path = {it.path: it for it in items}
        for key, (outcome, failure) in results.items():
            it = by_path[key]
            if outcome is None:
                rows.append(error_row("qc", key, failure or RuntimeError("no result"), spec=it.spec or ""))
                continue
            state.record(it, verdict=outcome.verdict)
            rows.append(qc_row(it, outcome))
        for uri, fut in fix_futures.items():
            try:
                report = fut.result()
            except BaseException as exc:  # noqa: BLE001
                rows.append(error_row("fixity", uri, exc))
                continue
            if not report.ok:
                emit_archive_mismatch(uri=report.uri, files=[m.path for m in report.mismatches],
                                      detail="; ".join(m.describe() for m in report.mismatches[:5]))
            rows.append(fixity_row(uri, report, where()))
    finally:
        state.save()
        runner.__exit__(None, None, None)
        kill_all_children()

    # the summary
    summary = NightlySummary(night=night.isoformat(), rows=rows,
                             problems=sum(1 for r in rows if r.result in ("fail", "error", "mismatch")))
    table = [r.model_dump() for r in rows] or [SummaryRow(kind="qc", item="nothing to do tonight", result="")
                                               .model_dump() | {"kind": ""}]
    create_table_artifact(key="nightly-summary", table=table, description=f"Nightly QC and fixity, night of {night}")
    markdown = summary_markdown(summary, cfg.fixity.rotation_nights)
    try:  # overdue deliveries and rejections since the last night; the night's QC stands without them
        from tasks.schedule import digest_markdown  # SQLAlchemy: loaded when the night runs

        digest = schedule_digest_step()
        summary.schedule = digest.model_dump(mode="json")
        markdown += "\n\n" + digest_markdown(digest)
    except DeliverError as exc:
        log.warning("delivery schedule digest skipped: %s", exc)
    create_markdown_artifact(key="nightly-report", markdown=markdown, description=f"Nightly QC {night}")
    if summary.problems:
        return Failed(message=f"nightly QC: {summary.problems} problem(s) of {len(rows)} item(s)", data=summary)
    return Completed(message=f"nightly QC: {len(rows)} item(s), all clear", data=summary)
