"""``archive_package``: one read pass per source file feeding every target, then verify, MHL, catalog.

Order of work (a rerun after any failure resumes: finished local files and S3 objects are kept and
checked, interrupted S3 multipart uploads continue from their uploaded parts):

1. resolve targets, check each is reachable;
2. for each file of the package (without ``ascmhl/`` folders and ignored files): read it once in 8 MiB
   blocks; every block updates xxh128 + CRC64NVME (+ the format a history made by another tool
   recorded for the file, e.g. md5 or c4) and goes to every target (local partial file, S3 part buffer);
3. verify every copy: local copies are read back (xxh128 + size), S3 objects are checked by
   ``HeadObject`` (CRC64NVME + size, no download);
4. a folder without a history first gets generation 1 (process ``in-place``) from the hashes of that
   same read pass (never re-read); then one ASC MHL generation (process ``transfer``, location = the
   copy's URI) per verified copy is added to the package's history, and every ``ascmhl/`` folder (root
   and nested) goes to every copy (so each copy carries the full custody history), checked too;
5. S3 copies get a small JSON manifest next to the package (``<package>.deliver-manifest.json``:
   size, xxh128, CRC64NVME per file) so any machine can verify them without the catalog;
6. record every file and copy in the catalog.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from specs.errors import BadInputError, DeliverError, InfrastructureError, VerificationError
from tasks.archive.catalog import Catalog, FileRecord
from tasks.archive.hashing import READ_BLOCK_BYTES, FileDigests, Mismatch, StreamDigester
from tasks.archive.local import LocalDestination
from tasks.archive.mhl import (
    MHL_FOLDER,
    formats_to_record,
    history_files,
    mhl_records,
    package_files,
    package_folders,
    write_mhl_generation,
)
from tasks.archive.s3 import S3Destination
from tasks.archive.targets import ArchiveCopy, LocalTarget, S3Target, redact, resolve_target
from tasks.media.files import is_partial

__all__ = ["archive_package", "MANIFEST_SUFFIX", "describe_mismatches"]

log = logging.getLogger("deliver.archive")
MANIFEST_SUFFIX = "deliver-manifest.json"
Progress = Callable[[int, int], None]


def describe_mismatches(mismatches: list[Mismatch], limit: int = 20) -> str:
    lines = [m.describe() for m in mismatches[:limit]]
    more = f" … and {len(mismatches) - limit} more" if len(mismatches) > limit else ""
    return "; ".join(lines) + more


def _destination(target: LocalTarget | S3Target, package: str) -> LocalDestination | S3Destination:
    if isinstance(target, S3Target):
        return S3Destination(target, package)
    return LocalDestination(target, package)


def _check_package(package_dir: Path) -> Path:
    root = Path(package_dir).expanduser().resolve()
    if not root.is_dir():
        raise BadInputError(f"{redact(str(package_dir))}: no such package folder")
    return root


def _check_history_writable(root: Path) -> None:
    """Each verified copy adds a transfer generation to ``root/ascmhl`` (ASC MHL v2.0: the history lives
    in the ascmhl folder beside the files it describes), so a read-only source is refused before any byte
    is copied."""
    history = root / MHL_FOLDER
    where = history if history.is_dir() else root
    read_only = bool(os.statvfs(where).f_flag & os.ST_RDONLY)
    if read_only or not os.access(where, os.W_OK | os.X_OK):
        raise BadInputError(f"{where} is read-only, and the ASC MHL history of the copies is written there; copy "
                            "the folder to writable storage first (e.g. `cp -a`), then archive that copy")


def archive_package(package_dir: Path | str, targets: list[str], *, title: str,
                    progress: Progress | None = None, catalog_url: str | None = None) -> list[ArchiveCopy]:
    """Copy a package to every target from one read of each source byte, verified, with ASC MHL + catalog.

    Args:
        package_dir: the folder to archive: a package with an ASC MHL history (``ascmhl/``, ours or
            another tool's), or any folder, which gets its first generation from this read pass.
        targets: ``file:///path``, ``/path``, ``s3://bucket/prefix[?settings]`` or target names from
            configs/storage.yaml. The copy lands at ``<target>/<package folder name>/``.
        title: the title the catalog files the copies under (``deliver locate TITLE``).
        progress: called as ``progress(bytes_read, bytes_total)`` during the read pass.
        catalog_url: SQLAlchemy URL of the catalog (default: :func:`tasks.archive.catalog.catalog_url`).

    Returns:
        One :class:`ArchiveCopy` per target, all verified.

    Raises:
        BadInputError: missing folder, bad target URI or name, credentials in a URI, missing bucket.
        InfrastructureError: a target is unreachable or refused (retry; the work done is kept).
        VerificationError: a copy differs from the source (never retried), or the source differs
            from its ASC MHL history, or an existing different copy would be overwritten.
    """
    root = _check_package(Path(package_dir))
    _check_history_writable(root)
    if not targets:
        raise BadInputError("no archive targets; give --to s3://bucket/prefix or a folder (or configure "
                            "default_targets in configs/storage.yaml)")
    from tasks.preflight import check_archive_targets

    check_archive_targets(targets, "--to")  # a file, a symlink loop, an unwritable folder: refused before any read
    resolved: list[tuple[str, LocalTarget | S3Target]] = []
    seen: set[str] = set()
    for spec in targets:
        t = resolve_target(spec)
        if t.uri in seen:
            continue
        seen.add(t.uri)
        if isinstance(t, LocalTarget) and (t.path == root or root in t.path.parents):
            raise BadInputError(f"target {t.path} is inside the package {root}; choose a folder outside it")
        resolved.append((spec, t))
    dests = [_destination(t, root.name) for _, t in resolved]

    first = not (root / MHL_FOLDER / "ascmhl_chain.xml").is_file()
    recorded = mhl_records(root)  # nested histories count even when the folder itself has none yet
    rels = list(package_files(root))
    sizes = {rel: (root / rel).stat().st_size for rel in rels}
    total = sum(sizes.values())
    done = 0
    digests: dict[str, FileDigests] = {}
    t0 = time.monotonic()
    try:
        for d in dests:
            d.open()
        buf = bytearray(READ_BLOCK_BYTES)
        view = memoryview(buf)
        for rel in rels:
            sinks = [d.file_sink(rel, sizes[rel]) for d in dests]
            dg = StreamDigester(formats_to_record(recorded, rel))
            try:
                with open(root / rel, "rb", buffering=0) as fh:
                    while True:
                        n = fh.readinto(buf)
                        if not n:
                            break
                        block = view[:n]
                        dg.update(block)
                        for s in sinks:
                            s.write(block)
                        done += n
                        if progress is not None:
                            progress(done, total)
                fd = dg.result()
                if fd.size != sizes[rel]:
                    raise BadInputError(f"{root / rel} changed size while being archived ({sizes[rel]} → "
                                        f"{fd.size} B); archive a package that is no longer being written")
                for s in sinks:
                    s.finish(fd)
            except BaseException:
                for s in sinks:
                    if hasattr(s, "abort") and not hasattr(s, "upload_id"):
                        s.abort()  # local partials only; S3 uploads are kept for resume
                raise
            digests[rel] = fd
        for d in dests:
            d.flush()
            if isinstance(d, LocalDestination):  # empty folders too: the directory hashes count them
                for rel in package_folders(root):
                    (d.root / rel).mkdir(parents=True, exist_ok=True)
        read_s = time.monotonic() - t0
        log.info("read %d files, %d bytes once for %d target(s) in %.1f s", len(rels), total, len(dests), read_s)

        # -- verify every copy ---------------------------------------------------------------------
        problems: list[Mismatch] = []
        verified_at: dict[str, str] = {}
        for d in dests:
            problems += d.verify(digests)
            verified_at[d.uri] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        if problems:
            raise VerificationError(f"archive copies do not match the source: {describe_mismatches(problems)}. "
                                    "The damaged copies were not recorded; remove them and archive again.")

        # -- ASC MHL: one transfer generation per verified copy, then the history travels along -----
        xxh = {rel: fd.mhl_hashes() for rel, fd in digests.items()}
        gens: dict[str, Path] = {}
        if first:
            write_mhl_generation(root, process="in-place", location=str(root),
                                 comment=f"deliver archive: first generation, hashed while copying (title {title})",
                                 hashes=xxh)
        for d in dests:
            gens[d.uri] = write_mhl_generation(
                root, process="transfer", location=redact(d.uri),
                comment=f"deliver archive: copy verified at {redact(d.uri)} (title {title})", hashes=xxh)
        mhl_digests: dict[str, FileDigests] = {}
        mhl_bytes: dict[str, bytes] = {}
        for rel in history_files(root):
            if not is_partial(root / rel):
                mhl_bytes[rel] = (root / rel).read_bytes()
                dg = StreamDigester()
                dg.update(mhl_bytes[rel])
                mhl_digests[rel] = dg.result()
        for d in dests:
            for rel, data in mhl_bytes.items():
                d.put_small(rel, data, mhl_digests[rel])
            bad = d.verify(mhl_digests)
            if bad:
                raise VerificationError(f"ASC MHL history copy does not match: {describe_mismatches(bad)}")

        # -- S3 manifests + catalog ----------------------------------------------------------------
        manifest = {
            "title": title, "package": root.name,
            "archived_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "files": {rel: {"size": fd.size, "xxh128": fd.xxh128, "crc64nvme": fd.crc64nvme}
                      for rel, fd in {**digests, **mhl_digests}.items()},
        }
        for d in dests:
            if isinstance(d, S3Destination):
                d.put_sidecar(MANIFEST_SUFFIX, json.dumps(manifest, indent=1, sort_keys=True).encode())
        catalog = Catalog(catalog_url)
        copies: list[ArchiveCopy] = []
        for (spec, _target), d in zip(resolved, dests, strict=True):
            records = [FileRecord(path=rel, size=fd.size, xxh128=fd.xxh128, crc64nvme=fd.crc64nvme,
                                  version_id=getattr(d, "version_ids", {}).get(rel))
                       for rel, fd in digests.items()]
            catalog.record_copy(title=title, package=root.name, target=redact(spec), uri=d.uri,
                                kind="s3" if isinstance(d, S3Destination) else "local",
                                storage_class=d.storage_class, records=records, verified=True)
            copies.append(ArchiveCopy(target=redact(spec), uri=d.uri, verified=True, files=len(digests),
                                      bytes=total, storage_class=d.storage_class,
                                      mhl_generation=gens[d.uri].name, verified_at=verified_at[d.uri]))
        return copies
    except DeliverError:
        raise
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise BadInputError(f"{exc.filename}: disappeared during the archive ({exc.strerror})") from exc
        where = exc.filename or ", ".join(str(d.root) for d in dests if isinstance(d, LocalDestination)) or root
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            what = (exc.strerror or "disk full").lower()
            raise InfrastructureError(f"archive stopped: {what} writing to {where}; nothing was recorded and no "
                                      "partial file is left: free space there and run the archive again") from exc
        raise InfrastructureError(f"archive I/O error: {exc.strerror or exc} ({where})") from exc
    finally:
        for d in dests:
            d.close()
