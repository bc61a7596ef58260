"""Deliverables shared between the distributors of one run (a delivery plan).

Two distributors' deliverables are the same file when they are made from the same married master with
the same ffmpeg arguments (encoder settings, filters and burn-ins, audio map, container metadata) and the
same loudness correction: :func:`deliverable_identity`. Such a file is made once, then hard-linked into
every other package that wants it (copied where the filesystem cannot link), and each copy is verified
against the made file's xxh128 before it is counted as delivered.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from specs.errors import BadInputError, VerificationError
from specs.model import Deliverable, Spec
from tasks.archive.hashing import hash_file_xxh128
from tasks.deliverables.graph import deliverable_args
from tasks.deliverables.make import DeliverableResult
from tasks.deliverables.naming import RunFields
from tasks.deliverables.shape import programme_first_frame
from tasks.media.files import partial_name, publish, record_hard_link, recorded_digests
from tasks.media.probe import MediaInfo

__all__ = ["deliverable_identity", "extras_identity", "link_into", "SharedFile"]

_OUT = Path("/deliverable-output")  # placeholder: where a file is written is not what it is


def deliverable_identity(d: Deliverable, spec: Spec, master: MediaInfo, fields: RunFields) -> str | None:
    """What makes deliverable ``d`` the bytes it is: the compiled ffmpeg arguments that make it alone (output
    path replaced), its audio maps (the loudness-correction targets are applied before the graph) and its kind.
    None for a DCP, which is built by its own pipeline and never shared."""
    if d.kind == "dcp":
        return None
    args = deliverable_args(d, spec, master, _OUT, title=fields.title, fields=fields)
    doc = {"args": args, "audio": [a.model_dump(mode="json") for a in d.audio], "kind": d.kind,
           "container": d.container}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def extras_identity(spec: Spec, master: MediaInfo, fields: RunFields) -> str:
    """Poster frame and thumbnails depend on the master, the programme's first frame and the title/version."""
    doc = [master.path, programme_first_frame(spec, master), fields.title, fields.version]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


class SharedFile(DeliverableResult):
    """A deliverable placed in a package from another distributor's package."""

    source: str
    linked: bool  # hard link (same inode); False: copied across filesystems


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def link_into(source: str | Path, target: str | Path, *, source_xxh128: str | None = None,
              out_root: str | Path | None = None) -> tuple[bool, str]:
    """Place ``source`` at ``target``: a hard link, or a copy (written as a partial, then published) where links
    are impossible; then verified (same inode, or the same xxh128). Returns (linked, xxh128).

    With ``out_root`` (the run's output folder) the digests ``source``'s publish read recorded are used while
    they hold, and a hard link gets them too (:func:`tasks.media.files.record_hard_link`): neither this step
    nor the package step reads the file again.

    Raises:
        BadInputError: ``target`` exists with other content (never overwritten).
        VerificationError: the copy does not hash like its source.
    """
    src, dst = Path(source), Path(target)
    held = recorded_digests(src, out_root) if out_root is not None else None
    digest = source_xxh128 or (held["xxh128"] if held else None) or hash_file_xxh128(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        if _same_file(src, dst):
            return True, digest
        if hash_file_xxh128(dst) == digest:
            return False, digest
        raise BadInputError(f"{dst} exists from an earlier run with other content; it is never overwritten: move it "
                            "away or choose another --out")
    try:
        os.link(src, dst)
        linked = True
    except OSError:  # another filesystem, or one without hard links
        tmp = partial_name(dst)
        shutil.copyfile(src, tmp)
        publish(tmp, dst)
        linked = False
    if not (linked and _same_file(src, dst)) and hash_file_xxh128(dst) != digest:
        dst.unlink(missing_ok=True)
        raise VerificationError(f"{dst}: copy of {src} does not match its xxh128 {digest}")
    if linked and held is not None and out_root is not None and held["xxh128"] == digest:
        record_hard_link(src, dst, out_root, held)
    return linked, digest
