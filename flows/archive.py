"""The archive flow: copy a delivery package to every target, verified.

One step (:func:`tasks.steps.archive_step`) reads every source byte once for all targets, verifies
every copy, extends the ASC MHL history and records the catalog; it is retried with exponential
backoff on infrastructure errors only (S3/network/NAS unreachable) and a retry resumes. A checksum
mismatch is never retried: it fails the run. Artifacts: progress by bytes read, and a table of the
copies with their verification. Nothing in an artifact or log carries credentials.
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.deployments import ArchiveRequest, threads
from tasks.archive.targets import ArchiveCopy
from tasks.steps import archive_step

__all__ = ["archive_flow"]


@flow(name="archive", flow_run_name="archive-{request.title}", log_prints=False,
      task_runner=threads(2))
def archive_flow(request: ArchiveRequest) -> list[ArchiveCopy]:
    """Archive a package to every target, verified; a table artifact lists the copies."""
    log = get_run_logger()
    copies = archive_step(request.package_dir, request.targets, request.title)
    create_table_artifact(
        key="archive-copies",
        table=[{"target": c.target, "copy": c.uri, "verified": c.verified, "files": c.files, "bytes": c.bytes,
                "storage class": c.storage_class or "-", "ASC MHL generation": c.mhl_generation or "-"}
               for c in copies],
        description=f"Verified archive copies of {request.title}")
    for c in copies:
        log.info("copy verified: %s (%d files, %d bytes)", c.uri, c.files, c.bytes)
    return copies
