"""Prefect ``@task`` wrappers around the plain functions of :mod:`tasks`.

What lives here and nowhere else: retries (infrastructure only, never bad input), cache keys on
content identity (path + size + mtime, never the bare path: Prefect's ``INPUTS`` cache policy hashes a
path argument's text, not the file, so a file rewritten in place would hit the old cache entry),
concurrency tags, timeouts, and progress artifacts fed from ffmpeg ``-progress``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

from prefect import task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext

from specs.errors import InfrastructureError
from specs.model import Deliverable, Spec
from tasks.layback import LaybackPlan, LaybackResult, layback
from tasks.media.probe import MediaInfo, probe
from tasks.transcode import RunFields, TranscodeAllResult, transcode_all

__all__ = ["probe_step", "layback_step", "transcode_all_step", "file_identity", "ProgressReporter", "infra_only"]

FFMPEG_TAG = "ffmpeg"  # tag concurrency limit: `prefect concurrency-limit create ffmpeg <cores>`
CACHE_DAYS = 30


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


def content_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Key on the task, its non-file parameters and the identity of every file it reads.

    Outputs (``out*`` parameters) are not part of the identity: a finished output exists on a rerun
    by design. The flow checks that a cached output still exists and refreshes the step if not.
    """
    doc = {"task": context.task.name, "version": context.task.version, "params": _jsonable(parameters)}
    files = sorted({str(v) for v in _paths_in(parameters)})
    doc["files"] = [file_identity(f) for f in files]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _paths_in(value: Any) -> list[str]:
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if k.startswith("out"):
                continue  # outputs: the flow re-runs a step whose cached output went missing
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


def infra_only(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only infrastructure errors are worth retrying, never bad input or a mismatch."""
    try:
        state.result()
    except InfrastructureError:
        return True
    except BaseException:  # noqa: BLE001 - classifies the failure: anything else is not worth a retry
        return False
    return False


#: In-process listeners ``(key, description, done, total)``: the CLI draws a Rich bar from them.
PROGRESS_LISTENERS: list[Any] = []


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


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:60] or "x"


@task(name="probe", retries=2, retry_delay_seconds=2, retry_condition_fn=infra_only)
def probe_step(path: str, what: str = "media file") -> MediaInfo:
    return probe(path, what)


@task(name="layback", tags=[FFMPEG_TAG], timeout_seconds=6 * 3600, cache_key_fn=content_cache_key,
      cache_expiration=timedelta(days=CACHE_DAYS), persist_result=True, retries=1, retry_condition_fn=infra_only)
def layback_step(plan: LaybackPlan, spec: Spec, out_path: str) -> LaybackResult:
    progress = ProgressReporter(f"layback-{_slug(Path(out_path).stem)}", f"Layback of {Path(out_path).name}")
    return layback(plan, spec, out_path, progress=progress)


@task(name="deliverables", tags=[FFMPEG_TAG], timeout_seconds=24 * 3600, retries=1, retry_condition_fn=infra_only)
def transcode_all_step(deliverables: list[Deliverable], spec: Spec, master: MediaInfo, out_dir: str,
                       fields: RunFields, extras_dir: str | None = None) -> TranscodeAllResult:
    """Every deliverable from one decode. Not cached by Prefect: transcode_all itself resumes by
    skipping deliverables whose final file exists and verifies, which is what a retry needs."""
    progress = ProgressReporter("deliverables",
                                f"{len(deliverables)} deliverables of {Path(master.path).name}, one decode")
    return transcode_all(deliverables, spec, master, out_dir, fields=fields, extras_dir=extras_dir, progress=progress)
