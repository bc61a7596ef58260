"""Atomic outputs: nothing ever appears under a final name half-written, nothing is overwritten."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from specs.errors import BadInputError

__all__ = ["atomic_output", "partial_name", "fsync_path"]


def partial_name(final: Path) -> Path:
    """``name.partial.ext``: keeps the extension so tools still recognise the format."""
    return final.with_name(f"{final.stem}.partial{final.suffix}")


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(final: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; on success fsync it and rename it into place.

    Raises:
        BadInputError: ``final`` exists and ``overwrite`` is False (masters and deliverables are
            never overwritten; choose another --out or version).
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise BadInputError(f"{final} already exists and is never overwritten; choose another output folder or version")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(final)
    tmp.unlink(missing_ok=True)  # a leftover from a crashed run is ours to replace
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp} was not written")
        fsync_path(tmp)
        if final.exists() and not overwrite:
            raise BadInputError(f"{final} appeared while we were writing it; not overwriting")
        os.replace(tmp, final)
        with contextlib.suppress(OSError):
            fsync_path(final.parent)
    finally:
        tmp.unlink(missing_ok=True)
