"""The delivery package: the folder of deliverables, its manifest and checksums.

The package's ASC MHL history is written and verified by :mod:`tasks.archive.mhl`; file digests come
from :mod:`tasks.archive.hashing`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tasks.archive.hashing import hash_file_xxh128
from tasks.archive.mhl import write_mhl_generation
from tasks.media.files import atomic_output
from tasks.report import DeliverableEntry, InputFingerprint

__all__ = ["fingerprint_file", "write_package"]


def fingerprint_file(path: Path | str) -> InputFingerprint:
    """Resolved path, size and xxh128 of an input, as report.json records it."""
    p = Path(path)
    return InputFingerprint(path=str(p.resolve()), size=p.stat().st_size, xxh128=hash_file_xxh128(p))


def write_package(package_dir: Path, files: list[tuple[Path, str]], *, title: str,
                  version: str) -> list[DeliverableEntry]:
    """Hash every file of a package (``(path, kind)``, inside ``package_dir``), write manifest.json
    (atomically; a rerun rewrites it) and the first ASC MHL generation (process "in-place").

    Returns the report's deliverable entries, in the order given.
    """
    entries = []
    hashes: dict[str, str] = {}
    for path, kind in files:
        digest = hash_file_xxh128(path)
        rel = path.relative_to(package_dir).as_posix()
        hashes[rel] = digest
        entries.append(DeliverableEntry(name=rel, path=str(path), size=path.stat().st_size, xxh128=digest, kind=kind))
    manifest = package_dir / "manifest.json"
    with atomic_output(manifest, overwrite=True) as tmp:  # never half-written
        tmp.write_text(json.dumps({"title": title, "version": version,
                                   "files": [e.model_dump(mode="json") for e in entries]}, indent=2) + "\n")
    hashes["manifest.json"] = hash_file_xxh128(manifest)
    write_mhl_generation(package_dir, process="in-place", location=str(package_dir),
                         comment=f"{title} {version} delivery package", hashes=hashes)
    return entries
