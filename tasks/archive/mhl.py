"""ASC MHL: write, read, extend and verify a package's history (``<package>/ascmhl/``: numbered generation
manifests + a C4-hashed chain file), with the ``ascmhl`` library.

We hash files ourselves (often while copying them, so they are read once) and hand the hashes to an
``MHLGenerationCreationSession``. Histories made by other tools (the ``ascmhl`` CLI, Hedge, Silverstack:
directory entries, several generations) are read and extended. Unlike the ``ascmhl create`` CLI, a
generation is **not** written when a file disagrees with the history or has gone missing: that is a
:class:`VerificationError`.

Our generations carry directory and root hashes (xxh128) like ``ascmhl create``, computed from the
file hashes, so the reference ``ascmhl verify --directory_hash`` works on them too.

Interop (ASC MHL v1.0 sections "Directory hashes", "Hash formats", "Nested histories", "Ignore
patterns"): directory entries are folders, never missing files; a file is verified against the format
the history recorded for it (xxh128 when any generation has it, else its original md5/sha1/xxh64/xxh3/
c4); a new generation records xxh128 and, for a file the history knows only in another format, that
format too (the ``ascmhl`` library accepts a new format only beside a verified original one); ignore
patterns of the latest generation apply; a subfolder with its own ``ascmhl/`` is a nested history
whose files get their generation there, referenced from the parent's.

References: ASC MHL Specification v1.0 (2022-03-15), github.com/ascmitc/mhl.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click
from ascmhl import utils as _mhl_utils
from ascmhl.commands import get_ignore_spec_including_nested_ignores
from ascmhl.generator import MHLGenerationCreationSession
from ascmhl.hasher import DirectoryHashContext
from ascmhl.hashlist import MHLAuthor, MHLCreatorInfo, MHLProcess, MHLProcessInfo, MHLTool
from ascmhl.history import MHLHistory
from ascmhl.ignore import MHLIgnoreSpec
from ascmhl.traverse import post_order_lexicographic

from specs.errors import BadInputError, VerificationError
from tasks import __version__
from tasks.archive.hashing import Mismatch, digest_file

__all__ = [
    "MHL_FOLDER",
    "HASH_FORMAT",
    "MhlRecord",
    "package_files",
    "package_folders",
    "history_files",
    "mhl_records", "mhl_folders",
    "mhl_expected",
    "formats_to_record",
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


def _histories(root: Path, history: MHLHistory) -> list[tuple[str, MHLHistory]]:
    """``(relative folder, history)`` of the root history and every nested one, deepest last."""
    out = [("", history)]
    for rel, child in history.child_history_mappings.items():
        out.append((Path(rel).as_posix(), child))
    return sorted(out, key=lambda x: (x[0].count("/") + bool(x[0]), x[0]))


def _owner(rel: str, hists: list[tuple[str, MHLHistory]]) -> tuple[str, MHLHistory]:
    """The deepest history whose folder holds ``rel``."""
    best = hists[0]
    for prefix, h in hists[1:]:
        if rel.startswith(prefix + "/"):
            best = (prefix, h)
    return best


def _walk(root: Path, history: MHLHistory | None) -> tuple[list[str], list[str]]:
    """(files, folders) of a package as relative POSIX paths, sorted, without ``ascmhl/`` folders and
    what the ignore patterns of the history that holds each path exclude."""
    root = Path(root)
    history = history if history is not None else _load_history(root)
    hists = _histories(root, history)
    specs = {prefix: _ignore_spec(h).get_path_spec() for prefix, h in hists}

    def ignored(rel: str, is_dir: bool) -> bool:
        prefix, _h = _owner(rel, hists)
        local = rel[len(prefix) + 1:] if prefix else rel
        spec = specs[prefix]
        return bool(spec.match_file(local) or (is_dir and spec.match_file(local + "/")))

    files: list[str] = []
    folders: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        keep = []
        for d in dirnames:
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            if d != MHL_FOLDER and not ignored(rel, True):
                keep.append(d)
                folders.append(rel)
        dirnames[:] = keep
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not ignored(rel, False):
                files.append(rel)
    return sorted(files), sorted(folders)


def package_files(root: Path, history: MHLHistory | None = None) -> Iterator[str]:
    """Relative POSIX paths of every file of a package, sorted, without ``ascmhl/`` folders and the files
    the ignore patterns of the history that holds them exclude."""
    return iter(_walk(root, history)[0])


def package_folders(root: Path, history: MHLHistory | None = None) -> list[str]:
    """Relative POSIX paths of every folder of a package (empty ones too: directory hashes count them)."""
    return _walk(root, history)[1]


def history_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files of every ``ascmhl/`` history folder (root and nested), sorted."""
    root = Path(root)
    out = []
    for folder in root.rglob(MHL_FOLDER):
        if folder.is_dir() and (folder / "ascmhl_chain.xml").is_file():
            out += [p.relative_to(root).as_posix() for p in folder.rglob("*") if p.is_file()]
    return sorted(out)


@dataclass(frozen=True)
class MhlRecord:
    """What a history recorded for one file: the hash to verify against and the formats it holds."""

    format: str  # xxh128 when any generation has it, else the original entry's format
    hash: str
    size: int | None
    formats: tuple[str, ...]  # every format any generation recorded for the file


def mhl_records(root: Path, history: MHLHistory | None = None) -> dict[str, MhlRecord]:
    """``{relative path: MhlRecord}`` for every file (not folder) in a package's history, nested ones too."""
    root = Path(root)
    history = history if history is not None else _load_history(root)
    out: dict[str, MhlRecord] = {}
    for prefix, h in _histories(root, history):
        for hash_list in h.hash_lists:
            for media_hash in hash_list.media_hashes:
                if media_hash.is_directory:
                    continue
                rel = f"{prefix}/{media_hash.path}" if prefix else media_hash.path
                if rel in out:
                    continue
                original = h.find_original_hash_entry_for_path(media_hash.path)
                if original is None:
                    continue
                xxh = h.find_first_hash_entry_for_path(media_hash.path, HASH_FORMAT)
                entry = xxh if xxh is not None and xxh.action != "failed" else original
                out[rel] = MhlRecord(entry.hash_format, entry.hash_string, media_hash.file_size,
                                     tuple(h.find_existing_hash_formats_for_path(media_hash.path)))
    return out


def mhl_folders(root: Path) -> list[str]:
    """Relative POSIX paths of every folder a package's histories record (nested ones too). An object store
    keeps no empty folders, so a restore makes them from these entries (directory hashes count them)."""
    root = Path(root)
    out: set[str] = set()
    for prefix, h in _histories(root, _load_history(root)):
        for hash_list in h.hash_lists:
            for media_hash in hash_list.media_hashes:
                if media_hash.is_directory and media_hash.path not in ("", "."):
                    out.add(f"{prefix}/{media_hash.path}" if prefix else media_hash.path)
    return sorted(out)


def mhl_expected(root: Path) -> dict[str, tuple[str, int | None]]:
    """``{relative path: (hash hex, size)}`` for every file in a package's history (see :func:`mhl_records`)."""
    return {rel: (r.hash, r.size) for rel, r in mhl_records(root).items()}


def formats_to_record(records: Mapping[str, MhlRecord], rel: str) -> tuple[str, ...]:
    """Hash formats a new generation records for ``rel``: xxh128, plus the original format of a file
    the history knows only in another format (so the new xxh128 is verified beside it)."""
    r = records.get(rel)
    if r is None or r.format == HASH_FORMAT:
        return (HASH_FORMAT,)
    return (r.format, HASH_FORMAT)


def _append_directory_hashes(session: MHLGenerationCreationSession, root: Path, history: MHLHistory,
                             xxh128: Mapping[str, str]) -> None:
    """Directory (content + structure) xxh128 hashes of every folder and the root, as ``ascmhl create``
    records them (ASC MHL v1.0 "Directory hashes"), computed from the file hashes already known: same
    traversal and ignore rules as the reference tool, no file read again. Left out when the traversal
    meets a file without a hash (then the generation only lists files, as ``ascmhl create -n`` does)."""
    spec = get_ignore_spec_including_nested_ignores(history, []).get_path_spec()
    walk = list(post_order_lexicographic(str(root), spec))
    if any(not is_dir and Path(folder, name).relative_to(root).as_posix() not in xxh128
           for folder, children in walk for name, is_dir in children):
        return
    done: dict[str, tuple[str, str]] = {}
    for folder, children in walk:
        ctx = DirectoryHashContext(HASH_FORMAT)
        for name, is_dir in children:
            path = os.path.join(folder, name)
            if is_dir:
                content, structure = done.pop(path)
                ctx.append_directory_hashes(path, content, structure)
            else:
                ctx.append_file_hash(path, xxh128[Path(path).relative_to(root).as_posix()])
        done[folder] = (ctx.final_content_hash_str(), ctx.final_structure_hash_str())
        mtime = _dt.datetime.fromtimestamp(os.path.getmtime(folder))
        session.append_multiple_format_directory_hashes(folder, mtime, {HASH_FORMAT: done[folder][0]},
                                                        {HASH_FORMAT: done[folder][1]})


def write_mhl_generation(
    root: Path,
    *,
    process: Literal["in-place", "transfer"],
    location: str,
    comment: str,
    hashes: Mapping[str, str | Mapping[str, str]] | None = None,
    author: str = "deliver",
) -> Path:
    """Add one ASC MHL generation to the history in ``root/ascmhl`` (creating it if absent).

    Args:
        root: the package folder (the MHL scope).
        process: ``in-place`` (files hashed where they are) or ``transfer`` (a verified copy).
        location: where this generation was made (a copy's URI for transfers; no credentials).
        comment: free text recorded in the manifest's creator info.
        hashes: ``{relative posix path: xxh128 hex or {format: hex}}`` already computed (e.g. during a
            copy); a file not listed, or lacking a format :func:`formats_to_record` asks for, is hashed here.
        author: author name recorded with role ``automation``.

    Returns:
        Path of the new generation manifest of the root history (``ascmhl/NNNN_<folder>_<date>_<time>Z.mhl``).

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
    given = {rel: ({HASH_FORMAT: v} if isinstance(v, str) else dict(v)) for rel, v in (hashes or {}).items()}
    files = list(package_files(root, history))
    unknown = sorted(set(given) - set(files))
    if unknown:
        raise BadInputError(f"{root}: hashes given for files that are not in the package: {', '.join(unknown[:5])}")
    records = mhl_records(root, history)

    session = MHLGenerationCreationSession(history, _ignore_spec(history))
    failed: list[str] = []
    xxh128: dict[str, str] = {}
    for rel in files:
        path = root / rel
        st = path.stat()
        want = formats_to_record(records, rel)
        have = given.get(rel, {})
        if any(f not in have for f in want):
            have = {**have, **digest_file(path, formats=want).mhl_hashes()}
        mtime = _dt.datetime.fromtimestamp(st.st_mtime)
        xxh128[rel] = have[HASH_FORMAT]
        for fmt in want:  # the original format first: a new xxh128 is accepted beside a verified original
            if not session.append_file_hash(str(path), st.st_size, mtime, fmt, have[fmt]):
                rec = records.get(rel)
                failed.append(f"{rel} (recorded {rec.format + ' ' + rec.hash if rec else '?'}, now {fmt} {have[fmt]})")
                break
    missing = sorted(set(records) - set(files))
    if failed or missing:
        parts = []
        if failed:
            parts.append("hash mismatch: " + "; ".join(failed))
        if missing:
            parts.append("missing: " + ", ".join(missing))
        raise VerificationError(f"{root}: files differ from the ASC MHL history, no generation written — "
                                + " | ".join(parts) + ". Re-copy these files from a verified copy.")

    _append_directory_hashes(session, root, history, xxh128)

    creator = MHLCreatorInfo()
    creator.tool = MHLTool(TOOL_NAME, TOOL_VERSION)
    creator.creation_date = _mhl_utils.datetime_now_isostring()
    creator.host_name = platform.node()
    creator.location = location
    creator.comment = comment
    creator.authors.append(MHLAuthor(author, role="automation"))
    proc = MHLProcessInfo()
    proc.process = MHLProcess(process)
    # The root history always gets a generation (an empty package documents "nothing here"; a package
    # whose files all sit in nested histories references their new generations).
    session.new_hash_lists[history]  # defaultdict creates the list
    try:
        session.commit(creator, proc)
    except (click.ClickException, AssertionError) as exc:
        msg = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        raise VerificationError(f"{root}: ascmhl refused the new generation: {msg}") from exc
    new_list = session.new_hash_lists[history]
    return Path(new_list.file_path)


def verify_mhl(root: Path) -> list[Mismatch]:
    """Re-hash every file of ``root`` against its ASC MHL history, in the format recorded for each file.

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
    records = mhl_records(root, history)
    mismatches: list[Mismatch] = []
    found = set()
    for rel in package_files(root, history):
        found.add(rel)
        rec = records.get(rel)
        if rec is None:
            mismatches.append(Mismatch(path=rel, kind="new", location=str(root)))
            continue
        try:
            got = digest_file(root / rel, formats=(rec.format,)).mhl_hashes()[rec.format]
        except OSError as exc:
            mismatches.append(Mismatch(path=rel, kind="unreadable", expected=rec.hash, actual=str(exc),
                                       location=str(root)))
            continue
        if got != rec.hash:
            mismatches.append(Mismatch(path=rel, kind="mismatch", expected=f"{rec.format} {rec.hash}",
                                       actual=f"{rec.format} {got}", location=str(root)))
    for rel in sorted(set(records) - found):
        rec = records[rel]
        mismatches.append(Mismatch(path=rel, kind="missing", expected=f"{rec.format} {rec.hash}", location=str(root)))
    return mismatches
