"""Prefect events for operators: ``deliver.qc.failed`` and ``deliver.archive.mismatch``.

Automations match on these names (``deliver automation create`` makes one that notifies through a
webhook block). Payloads carry paths, counts and the first error — never credentials (URIs are
redacted by the archive code before they reach us). Emitting never fails the caller: without an API
(plain ``deliver qc`` on a laptop) the event is simply dropped.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["QC_FAILED", "ARCHIVE_MISMATCH", "emit_qc_failed", "emit_archive_mismatch"]

QC_FAILED = "deliver.qc.failed"
ARCHIVE_MISMATCH = "deliver.archive.mismatch"
_log = logging.getLogger("deliver.events")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)[:200]


def _emit(event: str, resource_id: str, name: str, payload: dict[str, Any]) -> None:
    try:
        from prefect.events import emit_event

        emit_event(event=event, resource={"prefect.resource.id": resource_id, "prefect.resource.name": name},
                   payload=payload)
    except Exception as exc:  # noqa: BLE001 - a notification must never break QC or an archive
        _log.warning("could not emit %s: %s", event, exc)


def emit_qc_failed(*, title: str, path: str, spec: str, report: str, errors: int, first_error: str = "") -> None:
    """A master failed QC against ``spec`` (``errors`` error findings)."""
    _emit(QC_FAILED, f"deliver.master.{_slug(title)}", title,
          {"path": path, "spec": spec, "report": report, "errors": errors, "first_error": first_error[:500]})


def emit_archive_mismatch(*, uri: str, files: list[str], detail: str = "") -> None:
    """An archived copy did not verify (missing, changed or unrecorded files)."""
    _emit(ARCHIVE_MISMATCH, f"deliver.archive.{_slug(uri)}", uri,
          {"uri": uri, "files": files[:50], "count": len(files), "detail": detail[:1000]})
