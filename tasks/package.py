"""The delivery package: the folder of deliverables, its manifest and checksums.

The package's ASC MHL history is written and verified by :mod:`tasks.archive.mhl`; file digests come
from :mod:`tasks.archive.hashing`, or from the output records of the run (:func:`tasks.media.files.recorded_digests`:
the digests of the publish read, while the file is still the one that was read), so a deliverable's bytes are
read once between its encoder and the archive copy.
"""

from __future__ import annotations

import json
from pathlib import Path

from specs.errors import VerificationError
from tasks.archive.hashing import PACKAGE_FORMATS, digest_file, hash_file_xxh128
from tasks.archive.mhl import HASH_FORMAT, MHL_FOLDER, mhl_records, write_mhl_generation
from tasks.media.files import atomic_output, recorded_digests
from tasks.media.probe import MediaInfo, probe
from tasks.report import AudioTrackFormat, DeliverableEntry, DeliverableFormat, InputFingerprint

__all__ = ["fingerprint_file", "write_package", "package_digests", "deliverable_format"]

# poster and thumbnails: pictures of the programme, not deliverables; DCP files: XML and SMPTE track files
# (verified by tasks.dcp.verify, not by ffprobe)
NOT_MEDIA_KINDS = frozenset({"extra", "dcp"})


def fingerprint_file(path: Path | str) -> InputFingerprint:
    """Resolved path, size and xxh128 of an input, as report.json records it."""
    p = Path(path)
    return InputFingerprint(path=str(p.resolve()), size=p.stat().st_size, xxh128=hash_file_xxh128(p))


def deliverable_format(info: MediaInfo) -> DeliverableFormat:
    """Container, picture and audio tracks of a probed file, as the report lists them."""
    v = info.primary_video
    return DeliverableFormat(
        container=info.format_name,
        video_codec=v.codec if v else None, video_profile=v.profile if v else None,
        width=v.width if v else None, height=v.height if v else None,
        frame_rate=str(v.frame_rate) if v else None, pix_fmt=v.pix_fmt if v else None,
        audio=[AudioTrackFormat(codec=a.codec, channels=a.channels, sample_rate_hz=a.sample_rate_hz,
                                channel_layout=a.channel_layout) for a in info.audio])


def _check_history(package_dir: Path, hashes: dict[str, str]) -> None:
    """Raise VerificationError when a file differs from (or is missing against) the package's history."""
    if not (package_dir / MHL_FOLDER).is_dir():
        return
    records = mhl_records(package_dir)
    failed = [f"{rel} (recorded {rec.hash}, now {hashes[rel]})" for rel, rec in sorted(records.items())
              if rel in hashes and rec.format == HASH_FORMAT and rec.hash != hashes[rel]]
    missing = [rel for rel in sorted(records) if rel != "manifest.json" and not (package_dir / rel).is_file()]
    if failed or missing:
        parts = (["hash mismatch: " + "; ".join(failed)] if failed else []) + (
            ["missing: " + ", ".join(missing)] if missing else [])
        raise VerificationError(f"{package_dir}: files differ from the ASC MHL history, nothing rewritten — "
                                + " | ".join(parts) + ". Re-copy these files from a verified copy, or deliver "
                                "under another version.")


def package_digests(path: Path, out_root: Path | None) -> tuple[int, dict[str, str]]:
    """Size and ASC MHL digests (xxh128 and :data:`PACKAGE_FORMATS`) of a package file: the ones its publish
    read recorded under ``out_root`` while its identity (inode, size, mtime, ctime) is unchanged, else one read
    now. MD5 in the same read as xxh128 costs 2-5 s per GB of one core (xxh128 ~0.1 s)."""
    known = recorded_digests(path, out_root) if out_root is not None else None
    if known is not None and all(f in known for f in PACKAGE_FORMATS):
        return path.stat().st_size, known
    digests = digest_file(path, formats=PACKAGE_FORMATS)
    return digests.size, digests.mhl_hashes()


def write_package(package_dir: Path, files: list[tuple[Path, str]], *, title: str,
                  version: str, out_root: Path | None = None) -> list[DeliverableEntry]:
    """Hash every file of a package (``(path, kind)``, inside ``package_dir``), write manifest.json
    (atomically; a rerun rewrites it) and the first ASC MHL generation (process "in-place").

    On a rerun the files are checked against the package's ASC MHL history first: a file that differs
    from it (or one it lists that is gone) stops the step before manifest.json is rewritten, so the
    manifest never records a hash the history and the archive copies disagree with.

    With ``out_root`` (the run's output folder, which holds the output records) a file published by this
    or an earlier run and unchanged since is not read again (:func:`package_digests`).

    Every deliverable (not the extras) is probed for its format, duration and start timecode; ffprobe
    reads the headers only, so this costs a fraction of a second per file next to the hash's full read.

    Returns the report's deliverable entries, in the order given.
    """
    entries = []
    hashes: dict[str, str] = {}
    # A folder deliverable (a DCP) is listed file by file; its track files were verified by its own reader.
    files = [(f, kind) for path, kind in files
             for f in (sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [path])]
    for path, kind in files:
        size, digests = package_digests(path, out_root)
        rel = path.relative_to(package_dir).as_posix()
        hashes[rel] = digests["xxh128"]
        entry = DeliverableEntry(name=rel, path=str(path), size=size, xxh128=digests["xxh128"], kind=kind,
                                 md5=digests.get("md5"))
        if kind not in NOT_MEDIA_KINDS:
            info = probe(path, f"deliverable {rel}")
            entry.format = deliverable_format(info)
            entry.duration_s = info.duration_s
            entry.start_timecode = info.start_timecode
        entries.append(entry)
    _check_history(package_dir, hashes)  # before anything is rewritten: a refused package keeps its manifest
    manifest = package_dir / "manifest.json"
    with atomic_output(manifest, overwrite=True) as tmp:  # never half-written
        tmp.write_text(json.dumps({"title": title, "version": version,
                                   "files": [e.model_dump(mode="json") for e in entries]}, indent=2) + "\n")
    hashes["manifest.json"] = hash_file_xxh128(manifest)
    write_mhl_generation(package_dir, process="in-place", location=str(package_dir),
                         comment=f"{title} {version} delivery package", hashes=hashes)
    return entries
