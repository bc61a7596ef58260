"""Restore a package copy to a folder: download, re-verify every hash, add an ASC MHL generation.

From S3 each object is streamed to disk once while its xxh128 and CRC64NVME are computed; the
CRC64NVME is compared with the object's stored checksum and the xxh128 with the ASC MHL history that
came down with the package. The files appear under ``<to_dir>/<package>`` only when everything
matched (they are assembled in a hidden ``.<package>.deliver-partial`` folder, then renamed), and the
restored copy gets a new ``transfer`` generation recording the restore.

Objects in archive storage classes (GLACIER, DEEP_ARCHIVE) are not readable until restored: the
first call requests the restore (``RestoreObject``, tier and days from the target settings) and
returns a report saying when the objects should be ready; calling again then downloads them.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from specs.errors import BadInputError, VerificationError
from tasks.archive.catalog import Catalog
from tasks.archive.copy import describe_mismatches
from tasks.archive.hashing import READ_BLOCK_BYTES, FileDigests, Mismatch, StreamDigester, digest_file
from tasks.archive.mhl import (
    history_files,
    mhl_folders,
    mhl_records,
    package_files,
    package_folders,
    write_mhl_generation,
)
from tasks.archive.s3 import ARCHIVE_CLASSES, client_for, s3_errors
from tasks.archive.targets import redact, refuse_credentials
from tasks.archive.verify import (
    _list_keys,
    _local_path,
    local_packages,
    no_package_error,
    s3_packages,
    s3_target_for_uri,
)

__all__ = ["RestoreReport", "PendingObject", "restore", "RESTORE_HOURS"]

#: Typical completion times of S3 restores (userguide restoring-objects-retrieval-options), hours.
RESTORE_HOURS = {
    ("GLACIER", "Expedited"): 5 / 60, ("GLACIER", "Standard"): 5, ("GLACIER", "Bulk"): 12,
    ("DEEP_ARCHIVE", "Standard"): 12, ("DEEP_ARCHIVE", "Bulk"): 48,
}


class PendingObject(BaseModel):
    key: str
    storage_class: str
    tier: str
    requested: bool  # True: we requested it now; False: a restore was already running
    ready_by: _dt.datetime | None = None


class RestoreReport(BaseModel):
    """``ok``: restored and verified. ``pending``: archive-class objects still being restored."""

    uri: str
    dest: str
    ok: bool
    files: int = 0
    bytes: int = 0
    pending: list[PendingObject] = []
    ready_by: _dt.datetime | None = None
    mhl_generation: str | None = None
    mismatches: list[Mismatch] = []


def _copy_stream(read: Callable[[int], bytes], out_path: Path) -> FileDigests:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dg = StreamDigester()
    with open(out_path, "wb") as fh:
        while True:
            chunk = read(READ_BLOCK_BYTES)
            if not chunk:
                break
            dg.update(chunk)
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return dg.result()


def _restore_state(h: dict) -> str:
    """``none`` (not requested), ``ongoing`` or ``done`` from a HeadObject ``Restore`` header."""
    r = h.get("Restore")
    if not r:
        return "none"
    return "ongoing" if re.search(r'ongoing-request="true"', r) else "done"


def _finish(staging: Path, dest: Path, uri: str, digests: dict[str, FileDigests], extra: list[Mismatch],
            total: int) -> RestoreReport:
    """Check the downloaded files against the ASC MHL that came with them, add a generation, rename."""
    try:
        records = mhl_records(staging)
    except BadInputError as exc:
        raise VerificationError(f"{redact(uri)}: restored copy has no usable ASC MHL history ({exc})") from exc
    mism = list(extra)
    in_history = set(history_files(staging))
    data = {rel: d for rel, d in digests.items() if rel not in in_history}
    for rel, rec in records.items():
        got = data.get(rel)
        if got is None:
            mism.append(Mismatch(path=rel, kind="missing", expected=f"{rec.format} {rec.hash}", location=uri))
            continue
        if rec.format not in got.mhl_hashes():  # a history that knows the file only as md5, c4…
            got = data[rel] = digest_file(staging / rel, formats=(rec.format,))
        have = got.mhl_hashes()[rec.format]
        if have != rec.hash or (rec.size is not None and got.size != rec.size):
            mism.append(Mismatch(path=rel, kind="mismatch", expected=f"{rec.format} {rec.hash}",
                                 actual=f"{rec.format} {have}", location=uri))
    for rel in sorted(set(data) - set(records)):
        mism.append(Mismatch(path=rel, kind="new", location=uri))
    if mism:
        shutil.rmtree(staging.parent, ignore_errors=True)
        raise VerificationError(f"restore of {redact(uri)} does not match its ASC MHL history, nothing restored: "
                                f"{describe_mismatches(mism)}")
    gen = write_mhl_generation(staging, process="transfer", location=str(dest),
                               comment=f"deliver restore from {redact(uri)}; every file verified",
                               hashes={rel: d.mhl_hashes() for rel, d in data.items()})
    os.replace(staging, dest)
    shutil.rmtree(staging.parent, ignore_errors=True)
    return RestoreReport(uri=redact(uri), dest=str(dest), ok=True, files=len(data),
                         bytes=sum(d.size for d in data.values()),
                         mhl_generation=gen.name)


def _prepare(to_dir: Path | str, package: str) -> tuple[Path, Path]:
    from tasks.preflight import check_destination_folder

    to = check_destination_folder(to_dir, "--to")
    dest = to / package
    if dest.exists() and any(dest.iterdir()):
        raise BadInputError(f"{dest} already exists and is not empty; restore into another folder "
                            "(a restore never overwrites)")
    to.mkdir(parents=True, exist_ok=True)
    # The staging folder carries the package's own name: ASC MHL names generations after it.
    holder = to / f".{package}.deliver-partial"
    shutil.rmtree(holder, ignore_errors=True)
    staging = holder / package
    staging.mkdir(parents=True)
    if dest.exists():
        dest.rmdir()
    return dest, staging


def _one(where: str, found: list[str]) -> None:
    if len(found) > 1:
        raise no_package_error(where, found, what="single package")


def _restore_local(src: Path, to_dir: Path | str, uri: str) -> RestoreReport:
    found = local_packages(src)
    _one(str(src.expanduser().resolve()), [p.as_posix() for p in found])
    src = found[0]
    dest, staging = _prepare(to_dir, src.name)
    rels = list(package_files(src)) + history_files(src)
    for rel in package_folders(src):  # empty folders too: the directory hashes count them
        (staging / rel).mkdir(parents=True, exist_ok=True)
    digests, total = {}, 0
    try:
        for rel in rels:
            with open(src / rel, "rb") as fh:
                digests[rel] = _copy_stream(fh.read, staging / rel)
            total += digests[rel].size
    except BaseException:
        shutil.rmtree(staging.parent, ignore_errors=True)
        raise
    return _finish(staging, dest, uri, digests, [], total)


def _restore_s3(uri: str, to_dir: Path | str) -> RestoreReport:
    target = s3_target_for_uri(uri)
    found = s3_packages(target, Catalog())
    _one(f"s3://{target.bucket}/{target.prefix}", [f"s3://{target.bucket}/{k}" for k in found])
    copy_key = found[0]
    c = client_for(target)
    keys = _list_keys(target, copy_key + "/")
    if not keys:
        raise BadInputError(f"{redact(uri)}: no objects under this URI")
    package = copy_key.rsplit("/", 1)[-1]
    heads: dict[str, dict] = {}
    pending: list[PendingObject] = []
    now = _dt.datetime.now(_dt.UTC)
    for key in sorted(keys):
        try:
            h = c.head_object(Bucket=target.bucket, Key=key, ChecksumMode="ENABLED")
        except (ClientError, BotoCoreError) as exc:
            raise s3_errors(exc, f"s3://{target.bucket}/{key}") from None
        heads[key] = h
        sc = h.get("StorageClass") or "STANDARD"
        if sc not in ARCHIVE_CLASSES:
            continue
        state = _restore_state(h)
        if state == "done":
            continue
        tier = target.restore_tier if not (sc == "DEEP_ARCHIVE" and target.restore_tier == "Expedited") else "Standard"
        requested = False
        if state == "none":
            try:
                c.restore_object(Bucket=target.bucket, Key=key,
                                 RestoreRequest={"Days": target.restore_days, "GlacierJobParameters": {"Tier": tier}})
                requested = True
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code"))
                if code == "RestoreAlreadyInProgress":
                    pass
                elif code in ("MethodNotAllowed", "NotImplemented"):
                    continue  # store without archive semantics (e.g. SeaweedFS): the object is readable
                else:
                    raise s3_errors(exc, f"s3://{target.bucket}/{key}") from None
            except BotoCoreError as exc:
                raise s3_errors(exc, f"s3://{target.bucket}/{key}") from None
        hours = RESTORE_HOURS.get((sc, tier), 12)
        pending.append(PendingObject(key=key, storage_class=sc, tier=tier, requested=requested,
                                     ready_by=now + _dt.timedelta(hours=hours)))
    if pending:
        ready = max(p.ready_by for p in pending if p.ready_by)
        return RestoreReport(uri=redact(uri), dest=str(Path(to_dir) / package), ok=False, pending=pending,
                             ready_by=ready)

    dest, staging = _prepare(to_dir, package)
    digests: dict[str, FileDigests] = {}
    extra: list[Mismatch] = []
    total = 0
    try:
        for key in sorted(keys):
            rel = key[len(copy_key) + 1:]
            try:
                body = c.get_object(Bucket=target.bucket, Key=key)["Body"]
                d = _copy_stream(body.read, staging / rel)
            except (ClientError, BotoCoreError) as exc:
                raise s3_errors(exc, f"s3://{target.bucket}/{key}") from None
            digests[rel] = d
            total += d.size
            stored = heads[key].get("ChecksumCRC64NVME")
            if (stored and stored != d.crc64nvme) or d.size != heads[key].get("ContentLength"):
                extra.append(Mismatch(path=rel, kind="mismatch", expected=f"crc64nvme {stored}",
                                      actual=f"crc64nvme {d.crc64nvme} (downloaded)", location=redact(uri)))
        for rel in mhl_folders(staging):  # S3 keeps no empty folders; the history names every one
            (staging / rel).mkdir(parents=True, exist_ok=True)
    except BaseException:
        shutil.rmtree(staging.parent, ignore_errors=True)
        raise
    return _finish(staging, dest, uri, digests, extra, total)


def restore(uri: str, to_dir: Path | str) -> RestoreReport:
    """Restore the package copy at ``uri`` (``s3://…/PACKAGE``, ``file://…`` or a folder) into ``to_dir``.

    Returns:
        A report; ``ok`` True when ``<to_dir>/<package>`` holds the verified package with a new ASC MHL
        generation, or ``pending`` objects with ``ready_by`` when archive-class objects must be
        restored first (call again after that time).

    Raises:
        BadInputError: bad URI, nothing there, or the destination exists.
        VerificationError: a downloaded file differs from its ASC MHL hash or stored checksum (nothing
            is left under the final name).
        InfrastructureError: the store is unreachable.
    """
    from tasks.preflight import check_destination_folder

    refuse_credentials(uri)
    check_destination_folder(to_dir, "--to")  # before any download: a file or unwritable folder is bad input
    local = _local_path(uri)
    if local is not None:
        return _restore_local(local, to_dir, uri)
    if uri.startswith("s3://"):
        return _restore_s3(uri, to_dir)
    raise BadInputError(f"{uri}: restore takes s3://bucket/prefix/PACKAGE, file:///path or a folder")

