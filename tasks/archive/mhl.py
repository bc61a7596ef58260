"""ASC MHL: write, read, extend and verify a package's history (``<package>/ascmhl/``: numbered generation
manifests + a C4-hashed chain file), with the ``ascmhl`` library.

We hash files ourselves (often while copying them, so they are read once) and hand the hashes to an
``MHLGenerationCreationSession``. Histories made by other tools (the ``ascmhl`` CLI, Hedge, Silverstack:
directory entries, several generations) are read and extended. Unlike the ``ascmhl create`` CLI, a
generation is **not** written when a file disagrees with the history or has gone missing: that is a
:class:`VerificationError`.

References: ASC MHL Specification v1.0 (2022-03-15), github.com/ascmitc/mhl.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import click
from ascmhl import utils as _mhl_utils
from ascmhl.generator import MHLGenerationCreationSession
from ascmhl.hashlist import MHLAuthor, MHLCreatorInfo, MHLProcess, MHLProcessInfo, MHLTool
from ascmhl.history import MHLHistory
from ascmhl.ignore import MHLIgnoreSpec

from specs.errors import BadInputError, VerificationError
from tasks import __version__
from tasks.archive.hashing import Mismatch, hash_file_xxh128

__all__ = [
    "MHL_FOLDER",
    "HASH_FORMAT",
    "package_files",
    "mhl_expected",
    "write_mhl_generation",
    "verify_mhl",
]

MHL_FOLDER = "ascmhl"
HASH_FORMAT = "xxh128"
TOOL_NAME = "deliver"
TOOL_VERSION = __version__


def _load_history(root: Path) -> MHLHistory:
    try:
        return MHLHistory.load_from_path(str(root))
    except click.ClickException as exc:  # ascmhl errors are ClickExceptions (modified manifest, no chain…)
        raise VerificationError(
            f"ASC MHL history in {root / MHL_FOLDER} is damaged: {exc.format_message()}. Restore the "
            "ascmhl/ folder from another verified copy."
        ) from exc


def _ignore_spec(history: MHLHistory) -> MHLIgnoreSpec:
    return MHLIgnoreSpec(history.latest_ignore_patterns())


def package_files(root: Path, history: MHLHistory | None = None) -> Iterator[str]:
    """Relative POSIX paths of every file of a package, sorted, without the MHL's ignored ones."""
    root = Path(root)
    spec = _ignore_spec(history if history is not None else _load_history(root)).get_path_spec()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        keep = []
        for d in dirnames:
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            if not (spec.match_file(rel) or spec.match_file(rel + "/")):
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not spec.match_file(rel):
                found.append(rel)
    return iter(sorted(found))


def mhl_expected(root: Path) -> dict[str, tuple[str, int | None]]:
    """``{relative path: (original xxh128 hex, size)}`` for every file in a package's history."""
    history = _load_history(Path(root))
    out: dict[str, tuple[str, int | None]] = {}
    for hash_list in history.hash_lists:
        for media_hash in hash_list.media_hashes:
            if media_hash.is_directory or media_hash.path in out:
                continue
            entry = history.find_original_hash_entry_for_path(media_hash.path)
            if entry is None:
                continue
            out[media_hash.path] = (entry.hash_string, media_hash.file_size)
    return out


def write_mhl_generation(
    root: Path,
    *,
    process: Literal["in-place", "transfer"],
    location: str,
    comment: str,
    hashes: Mapping[str, str] | None = None,
    author: str = "deliver",
) -> Path:
    """Add one ASC MHL generation to the history in ``root/ascmhl`` (creating it if absent).

    Args:
        root: the package folder (the MHL scope).
        process: ``in-place`` (files hashed where they are) or ``transfer`` (a verified copy).
        location: where this generation was made (a copy's URI for transfers; no credentials).
        comment: free text recorded in the manifest's creator info.
        hashes: ``{relative posix path: xxh128 hex}`` already computed (e.g. during a copy); any file
            not listed is hashed here.
        author: author name recorded with role ``automation``.

    Returns:
        Path of the new generation manifest (``ascmhl/NNNN_<folder>_<date>_<time>Z.mhl``).

    Raises:
        BadInputError: ``root`` is not a folder, or ``hashes`` names a file that does not exist.
        VerificationError: a file's hash differs from the history, or a recorded file is missing;
            no generation is written then.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise BadInputError(f"{root}: not a folder; give the package folder that holds (or will hold) ascmhl/")
    if process not in ("in-place", "transfer"):
        raise BadInputError(f"ASC MHL process must be 'in-place' or 'transfer', not {process!r}")
    history = _load_history(root)
    given = dict(hashes or {})
    files = list(package_files(root, history))
    unknown = sorted(set(given) - set(files))
    if unknown:
        raise BadInputError(f"{root}: hashes given for files that are not in the package: {', '.join(unknown[:5])}")

    session = MHLGenerationCreationSession(history, _ignore_spec(history))
    failed: list[str] = []
    for rel in files:
        path = root / rel
        st = path.stat()
        digest = given.get(rel) or hash_file_xxh128(path)
        mtime = _dt.datetime.fromtimestamp(st.st_mtime)
        if not session.append_file_hash(str(path), st.st_size, mtime, HASH_FORMAT, digest):
            expected = history.find_original_hash_entry_for_path(rel)
            failed.append(f"{rel} (recorded {expected.hash_string if expected else '?'}, now {digest})")
    present = {str(root / rel) for rel in files}
    missing = sorted(os.path.relpath(p, root) for p in history.set_of_file_paths() - present
                     if not _ignore_spec(history).get_path_spec().match_file(os.path.relpath(p, root)))
    if failed or missing:
        parts = []
        if failed:
            parts.append("hash mismatch: " + "; ".join(failed))
        if missing:
            parts.append("missing: " + ", ".join(missing))
        raise VerificationError(f"{root}: files differ from the ASC MHL history, no generation written — "
                                + " | ".join(parts) + ". Re-copy these files from a verified copy.")

    creator = MHLCreatorInfo()
    creator.tool = MHLTool(TOOL_NAME, TOOL_VERSION)
    creator.creation_date = _mhl_utils.datetime_now_isostring()
    creator.host_name = platform.node()
    creator.location = location
    creator.comment = comment
    creator.authors.append(MHLAuthor(author, role="automation"))
    proc = MHLProcessInfo()
    proc.process = MHLProcess(process)
    if not files:
        # An empty package still gets a generation (documents "nothing here"), via an empty hash list.
        session.new_hash_lists[history]  # defaultdict creates the list
    try:
        session.commit(creator, proc)
    except click.ClickException as exc:
        raise VerificationError(f"{root}: ascmhl refused the new generation: {exc.format_message()}") from exc
    new_list = session.new_hash_lists[history]
    return Path(new_list.file_path)


def verify_mhl(root: Path) -> list[Mismatch]:
    """Re-hash every file of ``root`` against its ASC MHL history (original xxh128 entries).

    Returns every difference: changed hash, missing file, file not in the history. An empty list
    means the folder matches its history.

    Raises:
        BadInputError: ``root`` has no ASC MHL history.
        VerificationError: the history itself was modified (its C4 chain does not match).
    """
    root = Path(root).resolve()
    if not (root / MHL_FOLDER).is_dir():
        raise BadInputError(f"{root}: no ascmhl/ folder; this is not an ASC MHL package")
    history = _load_history(root)
    expected = mhl_expected(root)
    mismatches: list[Mismatch] = []
    found = set()
    for rel in package_files(root, history):
        found.add(rel)
        if rel not in expected:
            mismatches.append(Mismatch(path=rel, kind="new", location=str(root)))
            continue
        want, _size = expected[rel]
        try:
            got = hash_file_xxh128(root / rel)
        except OSError as exc:
            mismatches.append(Mismatch(path=rel, kind="unreadable", expected=want, actual=str(exc), location=str(root)))
            continue
        if got != want:
            mismatches.append(Mismatch(path=rel, kind="mismatch", expected=f"xxh128 {want}",
                                       actual=f"xxh128 {got}", location=str(root)))
    for rel in sorted(set(expected) - found):
        mismatches.append(Mismatch(path=rel, kind="missing", expected=f"xxh128 {expected[rel][0]}", location=str(root)))
    return mismatches
