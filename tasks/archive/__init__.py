"""Verified archive copies: local/NAS folders and S3 (any endpoint), ASC MHL, catalog, fixity, restore.

Public API (imported lazily so ``tasks.package`` and this package can import each other's leaves):

* :func:`archive_package` → ``list[ArchiveCopy]``
* :func:`verify_uri` → :class:`VerifyReport`
* :func:`restore` → :class:`RestoreReport`
* :func:`locate` → ``list[Location]``
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the types of the lazily imported names, for mypy
    from tasks.archive.catalog import Location, locate
    from tasks.archive.copy import archive_package
    from tasks.archive.restoring import RestoreReport, restore
    from tasks.archive.targets import ArchiveCopy
    from tasks.archive.verify import VerifyReport, verify_uri

__all__ = [
    "ArchiveCopy",
    "archive_package",
    "VerifyReport",
    "verify_uri",
    "RestoreReport",
    "restore",
    "Location",
    "locate",
]

_WHERE = {
    "ArchiveCopy": "tasks.archive.targets",
    "archive_package": "tasks.archive.copy",
    "VerifyReport": "tasks.archive.verify",
    "verify_uri": "tasks.archive.verify",
    "RestoreReport": "tasks.archive.restoring",
    "restore": "tasks.archive.restoring",
    "Location": "tasks.archive.catalog",
    "locate": "tasks.archive.catalog",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tasks.archive' has no attribute {name!r}")
