"""Atomic no-clobber publishing: the one way every output of deliver reaches its final name.

A writer gets ``name.partial.ext`` beside the final name (the extension stays, so ffmpeg and
libsndfile still recognise the format), writes it, and on success the file is fsynced and
renamed into place, then the folder is fsynced so the rename survives a power cut. Nothing ever
appears under a final name half-written. Without ``overwrite`` an existing final file is never
replaced: the rename is a hard link that fails if the name is taken (POSIX ``link(2)``), so a file
that appears while we write is kept too. ``overwrite=True`` is for the files a rerun must
rewrite (manifest, report, state); it still never exposes a half-written file.

``*.partial*`` is the one partial-name pattern: cancel clean-up and folder scans match it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from specs.errors import OutputExistsError

__all__ = ["atomic_output", "publish", "partial_name", "is_partial", "fsync_path", "PARTIAL_GLOB", "folders_under",
           "prune_empty_folders"]

#: Matches every partial file (``name.partial.ext``).
PARTIAL_GLOB = "*.partial*"


def partial_name(final: Path) -> Path:
    """``name.partial.ext``: keeps the extension so tools still recognise the format."""
    final = Path(final)
    return final.with_name(f"{final.stem}.partial{final.suffix}")


def is_partial(path: Path) -> bool:
    """Whether ``path`` is a partial file (written, not yet published)."""
    return ".partial" in Path(path).name


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(partial: Path, final: Path, *, overwrite: bool = False) -> None:
    """fsync ``partial`` and rename it to ``final`` (never replacing ``final`` unless ``overwrite``).

    Raises:
        OutputExistsError: ``final`` exists (or appeared meanwhile) and ``overwrite`` is False;
            ``partial`` is removed.
    """
    fsync_path(partial)
    if overwrite:
        os.replace(partial, final)
    else:
        try:
            os.link(partial, final)  # fails with FileExistsError if final is taken
        except FileExistsError:
            partial.unlink(missing_ok=True)
            raise OutputExistsError(f"{final} appeared while it was being written; not overwritten") from None
        except OSError:  # a filesystem without hard links: checked rename
            if final.exists():
                partial.unlink(missing_ok=True)
                raise OutputExistsError(f"{final} appeared while it was being written; not overwritten") from None
            os.replace(partial, final)
        partial.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        fsync_path(final.parent)


@contextlib.contextmanager
def atomic_output(final: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield the partial path of ``final``; on success publish it (:func:`publish`).

    A leftover partial of a crashed run is replaced; on any error the partial is removed.

    Raises:
        OutputExistsError: ``final`` exists and ``overwrite`` is False (masters and deliverables
            are never overwritten; choose another --out or version).
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final} already exists and is never overwritten; choose another output folder "
                                "or version")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(final)
    tmp.unlink(missing_ok=True)  # a leftover from a crashed run is ours to replace
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp} was not written")
        publish(tmp, final, overwrite=overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def folders_under(root: str | os.PathLike[str]) -> set[str]:
    """``root`` and every folder below it that exists now (what a run must leave in place)."""
    top = Path(root)
    if not top.is_dir():
        return set()
    return {str(top), *(str(p) for p in top.rglob("*") if p.is_dir())}


def prune_empty_folders(root: str | os.PathLike[str], keep: set[str] | None = None) -> list[str]:
    """Remove the empty folders under ``root`` (``root`` included), deepest first, except those in ``keep``
    (the folders that existed before the run). A failed or cancelled run leaves no empty folder behind."""
    top = Path(root)
    if not top.is_dir():
        return []
    removed = []
    for folder in sorted([top, *(p for p in top.rglob("*") if p.is_dir())], key=lambda p: len(p.parts),
                         reverse=True):
        if str(folder) in (keep or set()) or folder.is_symlink():
            continue
        with contextlib.suppress(OSError):  # not empty (or not ours to remove): kept
            folder.rmdir()
            removed.append(str(folder))
    return removed
