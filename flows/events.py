"""Prefect events for operators: ``deliver.qc.failed``, ``deliver.input.refused`` and
``deliver.archive.mismatch``.

Automations match on these names (``deliver automation create`` makes one that notifies through a
webhook block). A real QC failure and a bad parameter (a typo in a path or a spec name) are different
events, so they can go to different people. Every payload carries a readable ``message`` (what
happened, in one line), the ``title``, the ``verdict`` and ``run_url``, the run's page in the Prefect UI
(``PREFECT_UI_URL``), besides paths and counts; never credentials (URIs are redacted by the archive code
before they reach us). Emitting never fails the caller: without an API (plain ``deliver qc`` on a
laptop) the event is simply dropped.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["QC_FAILED", "INPUT_REFUSED", "ARCHIVE_MISMATCH", "EVENTS", "emit_qc_failed", "emit_input_refused",
           "emit_archive_mismatch", "run_url"]

QC_FAILED = "deliver.qc.failed"
INPUT_REFUSED = "deliver.input.refused"
ARCHIVE_MISMATCH = "deliver.archive.mismatch"
#: Every event of ours (what ``deliver automation create`` listens to, with Prefect's failed/crashed runs).
EVENTS = [QC_FAILED, INPUT_REFUSED, ARCHIVE_MISMATCH]
_log = logging.getLogger("deliver.events")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)[:200]


def run_url(flow_run_id: str | None = None) -> str:
    """The Prefect UI page of ``flow_run_id`` (default: the current run), or "" without ``PREFECT_UI_URL``."""
    try:
        from prefect.runtime import flow_run
        from prefect.settings import PREFECT_UI_URL

        run_id = flow_run_id or flow_run.get_id()
        base = PREFECT_UI_URL.value()
    except Exception:  # noqa: BLE001 - a link is nice to have; never fail over it
        return ""
    return f"{str(base).rstrip('/')}/runs/flow-run/{run_id}" if base and run_id else ""


def _emit(event: str, resource_id: str, name: str, payload: dict[str, Any]) -> None:
    try:
        from prefect.events import emit_event

        emit_event(event=event, resource={"prefect.resource.id": resource_id, "prefect.resource.name": name},
                   payload=payload)
    except Exception as exc:  # noqa: BLE001 - a notification must never break QC or an archive
        _log.warning("could not emit %s: %s", event, exc)


def emit_qc_failed(*, title: str, path: str, spec: str, report: str, errors: int, first_error: str = "",
                   message: str = "", version: str | None = None, url: str | None = None) -> None:
    """A master failed QC against ``spec`` (``errors`` error findings): nothing was delivered."""
    message = message or f"QC failed: {errors} error{'s' * (errors != 1)}"
    _emit(QC_FAILED, f"deliver.master.{_slug(title)}", title,
          {"message": f"{title}{' ' + version if version else ''}: {message}", "title": title, "version": version,
           "verdict": "fail", "path": path, "spec": spec, "report": report, "errors": errors,
           "first_error": first_error[:500], "run_url": run_url() if url is None else url})


def emit_input_refused(*, title: str, reason: str, spec: str = "", version: str | None = None,
                       url: str | None = None) -> None:
    """A run was refused before any work: a bad parameter (missing master, unknown spec, …)."""
    _emit(INPUT_REFUSED, f"deliver.title.{_slug(title)}", title,
          {"message": f"{title}{' ' + version if version else ''}: bad input, run refused: {reason[:500]}",
           "title": title, "version": version, "verdict": "bad input", "reason": reason[:1000], "spec": spec,
           "run_url": run_url() if url is None else url})


def emit_archive_mismatch(*, uri: str, files: list[str], detail: str = "") -> None:
    """An archived copy did not verify (missing, changed or unrecorded files)."""
    _emit(ARCHIVE_MISMATCH, f"deliver.archive.{_slug(uri)}", uri,
          {"message": f"archive copy {uri}: {len(files)} file(s) do not verify", "title": uri, "verdict": "mismatch",
           "uri": uri, "files": files[:50], "count": len(files), "detail": detail[:1000], "run_url": run_url()})
