"""Deployments of deliver, qc, archive, verify, nightly-qc (and qc-item), and ``deliver serve``.

Each deployment's entry flow takes ONE typed pydantic parameter (:mod:`flows.params`) so the Prefect
UI renders a form (a drop-down of built-in specs, descriptions, validation), and calls the existing
flow's body in its own run (``flow.fn``), so artifacts and logs land on the run the operator started.

Entry flows use a bounded task runner (``ThreadPoolTaskRunner(max_workers=cores)``, never the
unbounded default) and ffmpeg-heavy tasks carry the ``ffmpeg`` tag, whose concurrency limit
``deliver serve`` creates (default: CPU cores) if it does not exist.

Cancelling a run: the flow body's ``finally`` kills every ffmpeg process group it started
(Prefect does not interrupt the threads of a ThreadPoolTaskRunner, nor kill their child processes:
PrefectHQ/prefect issue #20979, PR #21112 closed unmerged), outputs are written under
``*.partial`` names and removed on the way out, and an ``on_cancellation`` hook (run by the runner or
worker after the flow process is gone) removes any ``*.partial`` left under the run's output folder
and kills any ffmpeg still writing there.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.params import ArchiveRequest, DeliverRequest, NightlyRequest, QCRequest, VerifyRequest

__all__ = ["deliver_deployment", "qc_deployment", "archive_deployment", "verify_deployment", "deployments",
           "serve_all", "ensure_ffmpeg_limit", "cleanup_after_cancel", "OPS_ENV_DEFAULTS"]

FFMPEG_TAG = "ffmpeg"

#: Settings every served/worker flow run should have: ffmpeg command lines reach the Prefect logs
#: (``deliver.ffmpeg`` logger), no telemetry, a bounded default thread pool.
OPS_ENV_DEFAULTS = {
    "PREFECT_LOGGING_EXTRA_LOGGERS": "deliver",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS": str(max(1, os.cpu_count() or 1)),
}


def forward_deliver_logs() -> None:
    """Let ``deliver.*`` INFO records (ffmpeg command lines, warnings) reach the run's Prefect logs.

    ``PREFECT_LOGGING_EXTRA_LOGGERS=deliver`` attaches Prefect's API handler to the ``deliver``
    logger but leaves its level at NOTSET (root: WARNING), which would drop the ffmpeg command lines.
    """
    lg = logging.getLogger("deliver")
    if lg.level == logging.NOTSET or lg.level > logging.INFO:
        lg.setLevel(logging.INFO)


forward_deliver_logs()


def _cores() -> int:
    return max(1, os.cpu_count() or 1)


def _threads(max_workers: int) -> TaskRunner[Any]:
    """A ThreadPoolTaskRunner, typed as ``@flow(task_runner=...)`` accepts it (prefect types that parameter
    ``TaskRunner[PrefectFuture[Any]]``, invariant, and ThreadPoolTaskRunner's future type is a subclass)."""
    return ThreadPoolTaskRunner(max_workers=max_workers)


def ffmpeg_pids_writing_under(folder: Path) -> list[int]:
    """ffmpeg/ffprobe processes whose command line mentions ``folder`` (Linux /proc)."""
    needle = str(folder.resolve())
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name.startswith(("ffmpeg", "ffprobe")) and any(
                needle in a.decode(errors="replace") for a in argv[1:]):
            pids.append(int(proc.name))
    return pids


def cleanup_after_cancel(out: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Kill ffmpeg still writing under ``out`` and remove ``*.partial*`` files there (idempotent)."""
    root = Path(out)
    killed = []
    for pid in ffmpeg_pids_writing_under(root) if root.exists() else []:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(str(pid))
        except ProcessLookupError:
            pass
    removed = []
    if root.exists():
        for p in root.rglob("*.partial*"):
            try:
                if p.is_file() or p.is_symlink():
                    p.unlink()
                    removed.append(str(p))
            except OSError:
                pass
    return {"killed": killed, "removed": removed}


def _on_cancel(flow: Any, flow_run: Any, state: Any) -> None:
    req = (flow_run.parameters or {}).get("request") or {}
    if not isinstance(req, dict):
        req = req.model_dump()
    out = req.get("out") or (str(Path(req["report"]).parent) if req.get("report") else None)
    if out:
        cleanup_after_cancel(out)


def _links_markdown(result: dict[str, Any]) -> str:
    import json

    report = Path(result["report"])
    data = json.loads(report.read_text())
    lines = [f"# Deliverables of {data.get('title') or ''} {data.get('version') or ''}", "",
             f"- Report: [report.json]({report.resolve().as_uri()})"]
    html = report.with_suffix(".html")
    if html.exists():
        lines.append(f"- HTML report: [{html.name}]({html.resolve().as_uri()})")
    for d in data.get("deliverables") or []:
        lines.append(f"- [{d['name']}]({Path(d['path']).resolve().as_uri()}) — {d['size']} bytes, "
                     f"xxh128 `{d['xxh128']}`")
    for a in data.get("archive") or []:
        lines.append(f"- archive copy: `{a['uri']}` ({'verified' if a['verified'] else 'NOT VERIFIED'})")
    return "\n".join(lines)


def _loudness_markdown(result: dict[str, Any]) -> str | None:
    import json

    data = json.loads(Path(result["report"]).read_text())
    tracks = (data.get("measurements") or {}).get("loudness") or []
    if not tracks:
        return None

    def f(v: Any, unit: str) -> str:
        return "—" if v is None else f"{v:.1f} {unit}"

    lines = ["# Loudness", "", "| track | integrated | LRA | true peak | max momentary | max short-term |",
             "|---|---|---|---|---|---|"]
    for t in tracks:
        lines.append(f"| {t.get('track', '')} | {f(t.get('integrated_lufs'), 'LUFS')} | "
                     f"{f(t.get('loudness_range_lu'), 'LU')} | {f(t.get('true_peak_dbtp'), 'dBTP')} | "
                     f"{f(t.get('max_momentary_lufs'), 'LUFS')} | {f(t.get('max_short_term_lufs'), 'LUFS')} |")
    return "\n".join(lines)


def _publish_extras(result: dict[str, Any]) -> None:
    loud = _loudness_markdown(result)
    if loud:
        create_markdown_artifact(markdown=loud, key="loudness-summary", description="Loudness of every track")
    create_markdown_artifact(markdown=_links_markdown(result), key="deliverable-links",
                             description="Links to the report and the deliverables")


def _emit_if_failed(result: dict[str, Any], path: str, spec: str) -> None:
    if result.get("verdict") == "pass":
        return
    import json

    from flows.events import emit_qc_failed

    data = json.loads(Path(result["report"]).read_text())
    errors = [f for f in data.get("findings", []) if f.get("severity") == "error"]
    emit_qc_failed(title=data.get("title") or Path(path).name, path=path, spec=spec, report=result["report"],
                   errors=len(errors), first_error=errors[0]["message"] if errors else "")


def _request_field(name: str, default: str) -> str:
    from prefect.runtime import flow_run

    req = (flow_run.parameters or {}).get("request")
    value = getattr(req, name, None) if not isinstance(req, dict) else req.get(name)
    return str(value) if value else default


def _deliver_run_name() -> str:
    return f"deliver-{_request_field('title', 'title')}-{_request_field('version', 'v1')}"


def _qc_run_name() -> str:
    return f"qc-{Path(_request_field('path', 'master')).name}"


@flow(name="deliver", flow_run_name=_deliver_run_name, log_prints=True,
      task_runner=_threads(_cores()), on_cancellation=[_on_cancel])
def deliver_deployment(request: DeliverRequest) -> dict[str, Any]:
    """Lay back, QC, gate, transcode, package and archive one title (the ``deliver run`` flow)."""
    from flows.deliver import deliver_flow

    logger = get_run_logger()
    logger.info("deliver %s %s against %s", request.title, request.version, request.spec_ref)
    result = deliver_flow.fn(master=request.master, mixes=list(request.mixes), spec=request.spec_ref,
                             title=request.title, out=request.out, version=request.version,
                             archive=list(request.archive) or None, force=request.force)
    _publish_extras(result)
    _emit_if_failed(result, request.master, request.spec_ref)
    return result


@flow(name="qc", flow_run_name=_qc_run_name, log_prints=True,
      task_runner=_threads(_cores()), on_cancellation=[_on_cancel])
def qc_deployment(request: QCRequest) -> dict[str, Any]:
    """QC one master against a spec; report.json is the only output."""
    from flows.qc import qc_flow

    result = qc_flow.fn(path=request.path, spec=request.spec_ref, report=request.report)
    loud = _loudness_markdown(result)
    if loud:
        create_markdown_artifact(markdown=loud, key="loudness-summary", description="Loudness of every track")
    _emit_if_failed(result, request.path, request.spec_ref)
    return result


@flow(name="archive", flow_run_name="archive-{request.title}", task_runner=_threads(2))
def archive_deployment(request: ArchiveRequest) -> list[Any]:
    """Archive a package to every target, verified."""
    from flows.archive import archive_flow

    return archive_flow.fn(package_dir=request.package_dir, targets=list(request.targets), title=request.title)


@flow(name="verify-archive", flow_run_name="verify-archive", task_runner=_threads(2))
def verify_deployment(request: VerifyRequest) -> Any:
    """Fixity of an archived copy or target; emits ``deliver.archive.mismatch`` on a mismatch."""
    from flows.archive import verify_flow
    from flows.events import emit_archive_mismatch
    from specs.errors import VerificationError

    try:
        return verify_flow.fn(uri=request.uri, raise_on_mismatch=request.raise_on_mismatch)
    except VerificationError as exc:
        emit_archive_mismatch(uri=request.uri, files=[], detail=str(exc))
        raise


def deployments(*, nightly_schedule: bool = True, limit_per_deployment: int | None = None) -> list[Any]:
    """``RunnerDeployment`` objects for ``serve()``: deliver, qc, archive, verify, nightly-qc, qc-item."""
    from flows.nightly import load_nightly_config, nightly_qc_flow, nightly_schedule as sched, qc_item_flow

    common: dict[str, Any] = {"tags": ["deliver"], "concurrency_limit": limit_per_deployment}
    nightly_kwargs: dict[str, Any] = {}
    if nightly_schedule:
        nightly_kwargs["schedules"] = [sched(load_nightly_config())]
    return [
        deliver_deployment.to_deployment(name="deliver", description="Deliver one title", **common),
        qc_deployment.to_deployment(name="qc", description="QC one master", **common),
        archive_deployment.to_deployment(name="archive", description="Archive a package, verified", **common),
        verify_deployment.to_deployment(name="verify", description="Fixity of an archived copy", **common),
        nightly_qc_flow.to_deployment(name="nightly-qc", description="Nightly QC and archive fixity",
                                      parameters={"request": NightlyRequest().model_dump()}, tags=["deliver"],
                                      concurrency_limit=1, **nightly_kwargs),
        qc_item_flow.to_deployment(name="qc-item", description="One nightly QC item", **common),
    ]


def ensure_ffmpeg_limit(limit: int | None = None) -> int:
    """Create the ``ffmpeg`` tag concurrency limit (default: CPU cores) unless it already exists."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_concurrency_limit_by_tag(FFMPEG_TAG).concurrency_limit
        except ObjectNotFound:
            n = limit or _cores()
            client.create_concurrency_limit(tag=FFMPEG_TAG, concurrency_limit=n)
            return n


def apply_env_defaults() -> None:
    for k, v in OPS_ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)


def serve_all(*, limit: int | None = None, nightly_schedule: bool = True, ffmpeg_limit: int | None = None) -> None:
    """Serve every deployment from this process against ``PREFECT_API_URL`` (blocks until Ctrl-C)."""
    apply_env_defaults()
    from prefect import serve

    ensure_ffmpeg_limit(ffmpeg_limit)
    serve(*deployments(nightly_schedule=nightly_schedule), limit=limit)


if __name__ == "__main__":  # python -m flows.serve (what `deliver serve` runs)
    serve_all()
