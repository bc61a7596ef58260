"""Archive and fixity flows: orchestration only (the work is in ``tasks.archive``).

* ``archive_flow(package_dir, targets, title)``: one task that reads every source byte once for all
  targets, verifies every copy, extends the ASC MHL history and records the catalog. Retried with
  exponential backoff on :class:`InfrastructureError` only (S3/network/NAS unreachable); a retry
  resumes — interrupted multipart uploads continue from their uploaded parts, finished objects and
  files are kept and re-checked. A checksum mismatch is never retried: it fails the run.
* ``verify_flow(uri)``: fixity of a copy or of every package under a target.

Artifacts: a progress artifact by bytes read, and a table of copies with their verification.
Nothing in an artifact or log carries credentials (URIs are redacted, credentials never enter them).
"""

from __future__ import annotations

import os
import time
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from specs.errors import InfrastructureError, VerificationError
from tasks.archive import ArchiveCopy, VerifyReport, archive_package, verify_uri
from tasks.archive.copy import describe_mismatches
from tasks.archive.targets import redact

__all__ = ["archive_flow", "verify_flow", "archive_step", "verify_step", "retry_on_infrastructure"]

#: Retries of the archive/verify tasks and the base of their exponential backoff (seconds).
RETRIES = int(os.environ.get("DELIVER_ARCHIVE_RETRIES", "4"))
BACKOFF_S = float(os.environ.get("DELIVER_ARCHIVE_BACKOFF_S", "10"))


def retry_on_infrastructure(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only an unreachable/failed store is worth another try, never a mismatch."""
    try:
        state.result()
    except InfrastructureError:
        return True
    except BaseException:  # noqa: BLE001 - classifies the failure: VerificationError, BadInputError, bugs surface
        return False
    return False


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:50] or "package"


class _BytesProgress:
    """Progress artifact by bytes read, updated at most once a second."""

    def __init__(self, key: str, description: str) -> None:
        self._last = 0.0
        self._id: UUID | None = None
        try:
            self._id = cast(UUID, create_progress_artifact(progress=0.0, key=key, description=description))
        except Exception:  # noqa: BLE001 - progress is nice to have, never a reason to fail an archive
            self._id = None

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self._id is None or (now - self._last < 1.0 and done < total):
            return
        self._last = now
        try:
            update_progress_artifact(artifact_id=self._id, progress=100.0 if total <= 0 else 100.0 * done / total)
        except Exception:  # noqa: BLE001 - progress is nice to have, never a reason to fail an archive
            pass


@task(name="archive-package", retries=RETRIES, retry_delay_seconds=exponential_backoff(backoff_factor=BACKOFF_S),
      retry_jitter_factor=0.5, retry_condition_fn=retry_on_infrastructure, cache_policy=NO_CACHE)
def archive_step(package_dir: str, targets: list[str], title: str) -> list[ArchiveCopy]:
    """Copy + verify + MHL + catalog (``tasks.archive.archive_package``) with a bytes progress artifact."""
    from pathlib import Path

    progress = _BytesProgress(f"archive-progress-{_slug(Path(package_dir).name)}",
                              f"Bytes read for the archive of {Path(package_dir).name}")
    copies = archive_package(Path(package_dir), targets, title=title, progress=progress)
    progress(1, 1)
    return copies


@task(name="verify-copies", retries=RETRIES, retry_delay_seconds=exponential_backoff(backoff_factor=BACKOFF_S),
      retry_jitter_factor=0.5, retry_condition_fn=retry_on_infrastructure, cache_policy=NO_CACHE)
def verify_step(uri: str) -> VerifyReport:
    return verify_uri(uri)


@flow(name="archive", flow_run_name="archive-{title}", log_prints=False)
def archive_flow(package_dir: str, targets: list[str], title: str) -> list[ArchiveCopy]:
    """Archive a package to every target, verified; a table artifact lists the copies."""
    log = get_run_logger()
    copies = archive_step(package_dir, targets, title)
    create_table_artifact(
        key="archive-copies",
        table=[{"target": c.target, "copy": c.uri, "verified": c.verified, "files": c.files, "bytes": c.bytes,
                "storage class": c.storage_class or "-", "ASC MHL generation": c.mhl_generation or "-"}
               for c in copies],
        description=f"Verified archive copies of {title}")
    for c in copies:
        log.info("copy verified: %s (%d files, %d bytes)", c.uri, c.files, c.bytes)
    return copies


@flow(name="verify-archive", flow_run_name="verify-{uri}", log_prints=False)
def verify_flow(uri: str, raise_on_mismatch: bool = True) -> VerifyReport:
    """Fixity check of a copy (or of every package under a target); fails the run on a mismatch."""
    log = get_run_logger()
    report = verify_step(uri)
    rows: list[dict[str, Any]] = []
    for c in report.copies:
        rows.append({"copy": c.uri, "method": c.method, "files": c.files, "ok": c.ok,
                     "file": "", "problem": ""})
        for m in c.mismatches:
            rows.append({"copy": c.uri, "method": c.method, "files": "", "ok": False, "file": m.path,
                         "problem": m.describe()})
    create_table_artifact(key="archive-fixity", table=rows, description=f"Fixity of {redact(uri)}")
    log.info("fixity of %s: %s (%d files)", redact(uri), "OK" if report.ok else "MISMATCH", report.files)
    if not report.ok and raise_on_mismatch:
        raise VerificationError(f"fixity check of {redact(uri)} failed: {describe_mismatches(report.mismatches)}")
    return report
