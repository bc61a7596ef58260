"""The verify flow: fixity of an archived copy, or of every package under a target.

Local copies are re-hashed against their ASC MHL; S3 objects are checked by stored CRC64NVME and
size (:func:`tasks.steps.verify_step`, retried on infrastructure errors only). A table artifact lists
every copy and every mismatching file; a mismatch emits ``deliver.archive.mismatch`` and fails the
run (unless ``raise_on_mismatch`` is off).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.deployments import VerifyRequest, threads
from flows.events import emit_archive_mismatch
from specs.errors import VerificationError
from tasks.archive.copy import describe_mismatches
from tasks.archive.targets import redact
from tasks.archive.verify import VerifyReport
from tasks.steps import verify_step

__all__ = ["verify_flow"]


@flow(name="verify-archive", flow_run_name="verify-{request.uri}", log_prints=False,
      task_runner=threads(2))
def verify_flow(request: VerifyRequest) -> VerifyReport:
    """Fixity check of a copy (or of every package under a target); fails the run on a mismatch."""
    log = get_run_logger()
    uri = request.uri
    report = verify_step(uri)
    rows: list[dict[str, Any]] = []
    for c in report.copies:
        rows.append({"copy": c.uri, "method": c.method, "files": c.files, "ok": c.ok, "file": "", "problem": ""})
        for m in c.mismatches:
            rows.append({"copy": c.uri, "method": c.method, "files": "", "ok": False, "file": m.path,
                         "problem": m.describe()})
    create_table_artifact(key="archive-fixity", table=rows, description=f"Fixity of {redact(uri)}")
    log.info("fixity of %s: %s (%d files)", redact(uri), "OK" if report.ok else "MISMATCH", report.files)
    if not report.ok and request.raise_on_mismatch:
        detail = f"fixity check of {redact(uri)} failed: {describe_mismatches(report.mismatches)}"
        emit_archive_mismatch(uri=uri, files=[], detail=detail)
        raise VerificationError(detail)
    return report
