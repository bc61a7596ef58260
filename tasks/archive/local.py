"""Local/NAS folder copies: atomic writes fed by the single read pass, verified by reading back.

Each file is written to ``name.partial.ext`` beside its final name, fsynced and renamed, so a
crash never leaves a half file under a final name. An existing final file is never overwritten: it
is kept and must match the source at verification (a rerun after a crash therefore resumes).
Verification re-reads the destination (page cache dropped first, best effort) and compares xxh128
and size with what was read from the source.
"""

from __future__ import annotations

import os
from pathlib import Path

from specs.errors import BadInputError, InfrastructureError
from tasks.archive.hashing import FileDigests, Mismatch, digest_file
from tasks.archive.targets import LocalTarget
from tasks.media.files import atomic_output, discard_stale_partials, partial_name, publish

__all__ = ["LocalDestination", "LocalFileSink", "atomic_copy_bytes"]


def atomic_copy_bytes(data: bytes, final: Path) -> None:
    """Write small ``data`` (e.g. an MHL manifest) to ``final`` atomically (replacing it)."""
    with atomic_output(final, overwrite=True) as tmp:
        tmp.write_bytes(data)


class LocalFileSink:
    """Receives one file's blocks in order and writes them to the destination folder."""

    def __init__(self, dest: LocalDestination, rel: str, size: int) -> None:
        self.final = dest.root / rel
        self.skip = self.final.exists()
        self._fh = None
        if not self.skip:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            discard_stale_partials(self.final)  # a killed run's partial: its writer is gone
            self._tmp = partial_name(self.final)
            self._fh = open(self._tmp, "wb")

    def write(self, block: memoryview) -> None:
        if self._fh is not None:
            self._fh.write(block)

    def finish(self, digests: FileDigests) -> None:
        if self._fh is None:
            return
        self._fh.flush()
        self._fh.close()
        self._fh = None
        publish(self._tmp, self.final)

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            try:
                os.unlink(self._tmp)
            except OSError:
                pass


class LocalDestination:
    """One package copy in a local target: ``<target>/<package name>/``."""

    def __init__(self, target: LocalTarget, package_name: str) -> None:
        self.target = target
        self.root = Path(target.path) / package_name
        self.uri = self.root.as_uri()
        self.storage_class: str | None = None

    def open(self) -> None:
        parent = Path(self.target.path)
        if parent.exists() and not parent.is_dir():
            raise BadInputError(f"{parent}: target exists and is not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except PermissionError as exc:
            raise BadInputError(f"{self.root}: cannot create the copy folder ({exc.strerror}); "
                                "check permissions") from exc
        except OSError as exc:  # NAS gone, read-only mount …
            raise InfrastructureError(f"{self.root}: target folder unreachable ({exc.strerror}); "
                                      "check the mount") from exc

    def file_sink(self, rel: str, size: int) -> LocalFileSink:
        return LocalFileSink(self, rel, size)

    def flush(self) -> None:  # writes are synchronous
        return None

    def close(self) -> None:
        return None

    def verify(self, digests: dict[str, FileDigests]) -> list[Mismatch]:
        """Read every copied file back and compare size + xxh128 with the source read."""
        out: list[Mismatch] = []
        for rel, want in digests.items():
            path = self.root / rel
            try:
                got = digest_file(path, drop_cache=True)
            except FileNotFoundError:
                out.append(Mismatch(path=rel, kind="missing", expected=f"xxh128 {want.xxh128}", location=self.uri))
                continue
            except OSError as exc:
                out.append(Mismatch(path=rel, kind="unreadable", expected=want.xxh128, actual=str(exc),
                                    location=self.uri))
                continue
            if got.size != want.size or got.xxh128 != want.xxh128:
                out.append(Mismatch(path=rel, kind="mismatch", location=self.uri,
                                    expected=f"xxh128 {want.xxh128} ({want.size} B)",
                                    actual=f"xxh128 {got.xxh128} ({got.size} B)"))
        return out

    def put_small(self, rel: str, data: bytes, digests: FileDigests) -> None:
        """Replace a small file (ASC MHL manifests/chain) atomically."""
        atomic_copy_bytes(data, self.root / rel)

    def describe_location(self) -> dict:
        return {"kind": "local", "uri": self.uri}
