"""Preflight: everything about a run's paths and name fields that can be refused before any work starts.

Pure checks, no Prefect and no writes: ``deliver run`` / ``deliver qc`` call them before starting a flow,
and the deliver and qc flows call them first too (a run started from the UI never met the CLI). Each
failure is a :class:`~specs.errors.BadInputError` (exit 2) whose message names the option and the path,
says what is wrong and how to fix it.

Checked: the output folder (not a file, writable, not inside an input's folder, no symlink loop), the
report path (its folder can be created and written), local archive targets (not a file, no symlink loop),
the name fields (``--date`` an ISO 8601 calendar date ``YYYY-MM-DD``, ``--recipient`` plain text usable
in a file name, ``--lang`` a BCP 47 tag) and every deliverable name of the spec rendered with the run's
fields, which must stay inside the package folder.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
from collections.abc import Sequence
from pathlib import Path

from specs.errors import BadInputError
from specs.model import Spec
from tasks.deliverables.naming import RunFields, deliverable_path, language_tag
from tasks.media.probe import MediaInfo

__all__ = ["resolved", "check_output_folder", "check_report_path", "check_archive_targets", "check_run_date",
           "check_recipient", "check_run_fields", "check_deliverable_names", "check_picture_master",
           "check_destination_folder", "preflight_run", "preflight_qc"]

# ISO 8601 calendar date, extended format (the only form {date} names and watermarks use).
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_RECIPIENT_CHARS = 120


def resolved(path: str | Path, option: str) -> Path:
    """``path`` made absolute with every symlink followed.

    Raises:
        BadInputError: the path (or a folder above it) is a symlink loop.
    """
    try:
        return Path(path).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # Python 3.11 raises RuntimeError on a loop, 3.13 OSError(ELOOP)
        if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
            raise
        raise BadInputError(f"{option} {path}: symbolic link loop ({exc}); point the link at a real folder") from None


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _check_creatable_folder(folder: Path, option: str, shown: str | Path) -> None:
    """``folder`` is a writable folder, or can be created: its nearest existing ancestor is a writable folder."""
    if folder.exists():
        if not folder.is_dir():
            raise BadInputError(f"{option} {shown}: {folder} is a file, not a folder; give a folder path (it is "
                                "created when missing)")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise BadInputError(f"{option} {shown}: the folder {folder} is not writable; fix its permissions or "
                                "choose another folder")
        return
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise BadInputError(f"{option} {shown}: cannot create {folder} because {base} is a regular file; choose a "
                            "path that is not under a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise BadInputError(f"{option} {shown}: cannot create {folder}: {base} is not writable; fix its permissions "
                            "or choose another folder")


def check_destination_folder(path: str | Path, option: str) -> Path:
    """``path`` absolute, a writable folder or one that can be created (restore ``--to``, archive targets).

    Raises:
        BadInputError: a regular file, under one, not writable, or a symlink loop.
    """
    folder = resolved(path, option)
    _check_creatable_folder(folder, option, path)
    return folder


def check_output_folder(out: str | Path, inputs: Sequence[str | Path], option: str = "--out") -> Path:
    """The output folder, absolute: writable (or creatable) and outside the folder of every input.

    Deliverables written among the masters and mixes they are made from get picked up as sources (watch
    folders, a second run's ``--mix *.wav``) and mix delivered files with their sources, so the output
    folder may neither be an input's folder nor lie below it.

    Raises:
        BadInputError: a file, not writable, under a file, inside an input's folder, or a symlink loop.
    """
    folder = resolved(out, option)
    _check_creatable_folder(folder, option, out)
    for item in inputs:
        source = resolved(item, "input")
        home = source.parent
        if folder == source or folder == home or home in folder.parents:
            raise BadInputError(f"{option} {out} is inside the folder {home} of the input {item}; deliver never "
                                "writes among its sources: choose an output folder outside it")
    return folder


def check_report_path(report: str | Path, option: str = "--json") -> Path:
    """The report path, absolute: not a folder, and its folder writable or creatable.

    Raises:
        BadInputError: the path is a folder, its folder is under a regular file, not writable, or a symlink loop.
    """
    path = resolved(report, option)
    if path.is_dir():
        raise BadInputError(f"{option} {report} is a folder; give a file name such as {Path(report) / 'report.json'}")
    if path.parent.exists() and not path.parent.is_dir():
        raise BadInputError(f"{option} {report}: {path.parent} is a regular file, so no report can be written in "
                            "it; choose a path in a folder")
    if path.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
        raise BadInputError(f"{option} {report}: its folder {path.parent} is not writable; choose another path")
    _check_creatable_folder(path.parent, option, report)
    return path


def check_archive_targets(targets: Sequence[str], option: str = "--archive") -> None:
    """Local archive targets (paths, ``file://`` URIs, configured local targets) are folders or can be made.

    Remote targets are checked when the archive step connects (credentials, bucket).

    Raises:
        BadInputError: a target that is a regular file, under one, not writable, a symlink loop, or unknown.
    """
    from urllib.parse import unquote, urlsplit

    from tasks.archive.targets import LocalTarget, resolve_target

    for target in targets:
        parts = urlsplit(target)
        if parts.scheme in ("", "file"):  # a loop must be named before resolve_target follows it
            resolved(unquote(parts.path) if parts.scheme == "file" else target, option)
        resolved_target = resolve_target(target)
        if isinstance(resolved_target, LocalTarget):
            _check_creatable_folder(resolved(resolved_target.path, option), option, target)


def check_run_date(date: str | None) -> str | None:
    """``date`` if it is an ISO 8601 calendar date ``YYYY-MM-DD`` that exists, else an error.

    Raises:
        BadInputError: another format (``07/12/2026``, ``20261207``) or an impossible day (``2026-02-30``).
    """
    if date is None:
        return None
    if not _ISO_DATE.match(date):
        raise BadInputError(f"--date {date!r} is not an ISO 8601 date; write YYYY-MM-DD, e.g. "
                            f"{dt.date.today().isoformat()}")
    try:
        dt.date.fromisoformat(date)
    except ValueError as exc:
        raise BadInputError(f"--date {date!r} is not a calendar date ({exc}); write YYYY-MM-DD") from None
    return date


def check_recipient(recipient: str | None) -> str | None:
    """``recipient`` if it can be burnt into a watermark and used in a file name.

    Raises:
        BadInputError: empty, too long, control characters, or a path separator / ``..``.
    """
    if recipient is None:
        return None
    if not recipient.strip():
        raise BadInputError("--recipient is empty; give the screener recipient's name, or leave the option out")
    if len(recipient) > _MAX_RECIPIENT_CHARS:
        raise BadInputError(f"--recipient is {len(recipient)} characters long; keep it to {_MAX_RECIPIENT_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in recipient):
        raise BadInputError(f"--recipient {recipient!r} contains control characters (a newline or tab); write it "
                            "on one line")
    if any(c in recipient for c in "/\\") or ".." in recipient:
        raise BadInputError(f"--recipient {recipient!r} contains '/', '\\' or '..', which would change folders in "
                            "deliverable names; write the name without them")
    return recipient


def check_run_fields(title: str, version: str, recipient: str | None, date: str | None, lang: str) -> RunFields:
    """The run's name fields, each checked (see :func:`check_run_date`, :func:`check_recipient`, language_tag).

    Raises:
        BadInputError: a field that is not valid.
    """
    extra = {"date": check_run_date(date)} if date else {}
    return RunFields(title=title, version=version, recipient=check_recipient(recipient), lang=language_tag(lang),
                     **extra)


def check_deliverable_names(spec: Spec, package_dir: str | Path, fields: RunFields) -> list[Path]:
    """Every deliverable of ``spec`` named with the run's fields, as the deliverables step will name it.

    Raises:
        BadInputError: a name that leaves the package folder, or a template that needs a field the run lacks.
    """
    paths = []
    for d in spec.deliverables:
        try:
            paths.append(deliverable_path(d, spec, package_dir, fields))
        except BadInputError as exc:
            raise BadInputError(f"deliverable {d.id} of spec {spec.name}: {exc}") from None
    return paths


def preflight_run(*, spec: Spec, master: str, mixes: Sequence[str], out: str, archive: Sequence[str], title: str,
                  version: str, recipient: str | None, date: str | None, lang: str) -> RunFields:
    """Every path and name check of a deliver run; nothing is written.

    Raises:
        BadInputError: the first problem found, in the order the options are read: name fields, output
            folder, archive targets, deliverable names.
    """
    fields = check_run_fields(title, version, recipient, date, lang)
    folder = check_output_folder(out, [master, *mixes])
    check_archive_targets(archive)
    check_deliverable_names(spec, folder / f"{title}_{version}", fields)
    return fields


def preflight_qc(*, path: str, report: str) -> Path:
    """The report path of a QC run can be written; nothing is written.

    Raises:
        BadInputError: see :func:`check_report_path`.
    """
    resolved(path, "master")
    return check_report_path(report)


def check_picture_master(info: MediaInfo) -> MediaInfo:
    """``info`` if it describes a picture master (a video stream), else a clear refusal.

    Raises:
        BadInputError: an audio-only file (a WAV, a mix) given where QC expects a picture master.
    """
    if not info.video:
        raise BadInputError(f"{info.path} is not a picture master: it has no video stream; deliver qc checks "
                            "picture masters (measure a mix with deliver loudness)")
    return info
