"""The delivery package: the folder of deliverables, its manifest and checksums.

The package's ASC MHL history is written and verified by :mod:`tasks.archive.mhl`; file digests come
from :mod:`tasks.archive.hashing`.
"""

from __future__ import annotations

import json
from pathlib import Path

from specs.errors import VerificationError
from tasks.archive.hashing import digest_file, hash_file_xxh128
from tasks.archive.mhl import HASH_FORMAT, MHL_FOLDER, mhl_records, write_mhl_generation
from tasks.media.files import atomic_output
from tasks.media.probe import MediaInfo, probe
from tasks.report import AudioTrackFormat, DeliverableEntry, DeliverableFormat, InputFingerprint

__all__ = ["fingerprint_file", "write_package", "deliverable_format"]

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


def write_package(package_dir: Path, files: list[tuple[Path, str]], *, title: str,
                  version: str) -> list[DeliverableEntry]:
    """Hash every file of a package (``(path, kind)``, inside ``package_dir``), write manifest.json
    (atomically; a rerun rewrites it) and the first ASC MHL generation (process "in-place").

    On a rerun the files are checked against the package's ASC MHL history first: a file that differs
    from it (or one it lists that is gone) stops the step before manifest.json is rewritten, so the
    manifest never records a hash the history and the archive copies disagree with.

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
        # MD5 in the same read as xxh128 (the delivery documents list both): no second read, at the price
        # of MD5's CPU time, 2-5 s per GB on one core next to xxh128's ~0.1 s (so on fast storage the
        # package step becomes CPU-bound at ~200-500 MB/s)
        digests = digest_file(path, formats=("md5",))
        digest = digests.xxh128
        rel = path.relative_to(package_dir).as_posix()
        hashes[rel] = digest
        entry = DeliverableEntry(name=rel, path=str(path), size=path.stat().st_size, xxh128=digest, kind=kind,
                                 md5=digests.others.get("md5"))
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
