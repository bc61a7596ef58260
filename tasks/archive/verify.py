"""Fixity of archived copies: ``verify_uri(URI|DIR)``.

* Local folders: every file re-hashed (xxh128) against the package's ASC MHL history; missing and
  unrecorded files are reported too. A folder holding several packages (a target) verifies each.
* S3: no download — ``HeadObject`` of every object, CRC64NVME + size compared with what was read
  from the source at archive time (the catalog, or the ``<package>.deliver-manifest.json`` stored
  next to the package when the catalog does not know the copy); unrecorded objects are reported.

The catalog records when each copy was last verified and the outcome.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

from specs.errors import BadInputError, InfrastructureError
from tasks.archive.catalog import Catalog
from tasks.archive.copy import MANIFEST_SUFFIX
from tasks.archive.hashing import Mismatch
from tasks.archive.mhl import MHL_FOLDER, package_files, verify_mhl
from tasks.archive.s3 import client_for, compare_head, head, s3_errors, split_s3_uri
from tasks.archive.targets import S3Target, redact

__all__ = ["VerifyReport", "CopyCheck", "verify_uri", "s3_target_for_uri", "s3_expected"]


class CopyCheck(BaseModel):
    """The outcome for one package copy."""

    uri: str
    method: str  # "xxh128 re-hash vs ASC MHL" | "S3 HeadObject CRC64NVME + size"
    files: int
    ok: bool
    mismatches: list[Mismatch] = []


class VerifyReport(BaseModel):
    """``ok`` is True only if every file of every copy checked matched."""

    uri: str
    ok: bool
    files: int
    copies: list[CopyCheck] = []
    mismatches: list[Mismatch] = []


def _local_path(uri_or_dir: str) -> Path | None:
    parts = urlsplit(uri_or_dir)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "":
        return Path(uri_or_dir).expanduser()
    return None


def _verify_local(root: Path, catalog: Catalog) -> list[CopyCheck]:
    root = root.resolve()
    if not root.exists():
        raise BadInputError(f"{root}: no such folder")
    if (root / MHL_FOLDER).is_dir():
        packages = [root]
    else:
        packages = sorted(p for p in root.iterdir() if (p / MHL_FOLDER).is_dir()) if root.is_dir() else []
        if not packages:
            raise BadInputError(f"{root}: neither an ASC MHL package (no ascmhl/) nor a folder of packages")
    checks = []
    for pkg in packages:
        mism = verify_mhl(pkg)
        nfiles = sum(1 for _ in package_files(pkg))
        uri = pkg.as_uri()
        bad = {m.path for m in mism}
        catalog.mark_verified(uri, {rel: rel not in bad for rel in (catalog.files_of(uri) or {})})
        checks.append(CopyCheck(uri=uri, method="xxh128 re-hash vs ASC MHL", files=nfiles, ok=not mism,
                                mismatches=mism))
    return checks


def s3_target_for_uri(uri: str) -> S3Target:
    """A target for an ``s3://`` URI: settings of a configured target with that bucket, else defaults."""
    from tasks.archive.targets import load_storage_config, resolve_target

    bucket, key = split_s3_uri(uri)
    cfg = load_storage_config()
    for name in cfg.targets:
        t = cfg.target(name)
        if isinstance(t, S3Target) and t.bucket == bucket and (not t.prefix or key.startswith(t.prefix)):
            return t.model_copy(update={"name": name, "prefix": key})
    t = resolve_target(uri)
    assert isinstance(t, S3Target)
    return t


def s3_expected(target: S3Target, copy_key: str,
                catalog: Catalog) -> dict[str, tuple[int, str | None, str | None]] | None:
    """``{rel: (size, crc64nvme b64, xxh128)}`` for a copy: from the catalog, else the S3 manifest."""
    uri = f"s3://{target.bucket}/{copy_key}"
    rec = catalog.files_of(uri)
    manifest = _read_manifest(target, copy_key)
    out: dict[str, tuple[int, str | None, str | None]] = {}
    if manifest is not None:
        for rel, f in manifest.get("files", {}).items():
            out[rel] = (int(f["size"]), f.get("crc64nvme"), f.get("xxh128"))
    if rec is not None:
        for rel, r in rec.items():
            out[rel] = (r.size, r.crc64nvme, r.xxh128)  # the catalog wins for data files
    if rec is None and manifest is None:
        return None
    return out


def _read_manifest(target: S3Target, copy_key: str) -> dict | None:
    c = client_for(target)
    key = f"{copy_key}.{MANIFEST_SUFFIX}"
    try:
        body = c.get_object(Bucket=target.bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise s3_errors(exc, f"s3://{target.bucket}/{key}") from None
    except BotoCoreError as exc:
        raise s3_errors(exc, f"s3://{target.bucket}/{key}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise InfrastructureError(f"s3://{target.bucket}/{key}: manifest is not valid JSON") from None


def _list_keys(target: S3Target, prefix: str) -> dict[str, int]:
    c = client_for(target)
    out: dict[str, int] = {}
    try:
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                out[o["Key"]] = o["Size"]
    except (ClientError, BotoCoreError) as exc:
        raise s3_errors(exc, f"s3://{target.bucket}/{prefix}") from None
    return out


def _verify_s3_copy(target: S3Target, copy_key: str, expected: dict, catalog: Catalog) -> CopyCheck:
    uri = f"s3://{target.bucket}/{copy_key}"
    c = client_for(target)
    mism: list[Mismatch] = []
    for rel, (size, crc, _xxh) in sorted(expected.items()):
        h = head(c, target.bucket, f"{copy_key}/{rel}")
        if crc is None:
            if h is None:
                mism.append(Mismatch(path=rel, kind="missing", location=uri))
            elif h.get("ContentLength") != size:
                mism.append(Mismatch(path=rel, kind="mismatch", expected=f"{size} B",
                                     actual=f"{h.get('ContentLength')} B", location=uri))
            continue
        mism += compare_head(rel, h, size, crc, uri)
    present = _list_keys(target, copy_key + "/")
    for key in sorted(present):
        rel = key[len(copy_key) + 1:]
        if rel not in expected:
            mism.append(Mismatch(path=rel, kind="new", location=uri))
    bad = {m.path for m in mism}
    catalog.mark_verified(uri, {rel: rel not in bad for rel in (catalog.files_of(uri) or {})})
    return CopyCheck(uri=uri, method="S3 HeadObject CRC64NVME + size", files=len(expected), ok=not mism,
                     mismatches=mism)


def _verify_s3(uri: str, catalog: Catalog) -> list[CopyCheck]:
    target = s3_target_for_uri(uri)
    copy_key = target.prefix
    expected = s3_expected(target, copy_key, catalog)
    if expected is not None:
        return [_verify_s3_copy(target, copy_key, expected, catalog)]
    # a prefix holding several packages: each has a manifest next to it
    prefix = copy_key + "/" if copy_key else ""
    keys = [k for k in _list_keys(target, prefix) if k.endswith("." + MANIFEST_SUFFIX)]
    if not keys:
        raise BadInputError(f"{redact(uri)}: no archived package here (no catalog record and no "
                            f"*.{MANIFEST_SUFFIX}); give the URI of a copy as printed by `deliver archive`")
    checks = []
    for k in sorted(keys):
        pkg_key = k[: -len("." + MANIFEST_SUFFIX)]
        exp = s3_expected(target, pkg_key, catalog) or {}
        checks.append(_verify_s3_copy(target, pkg_key, exp, catalog))
    return checks


def verify_uri(uri_or_dir: str, *, catalog_url: str | None = None) -> VerifyReport:
    """Fixity check of a copy (or of every package under a target) without trusting earlier results.

    Returns a report naming every mismatching, missing or unrecorded file (``ok`` False then).

    Raises:
        BadInputError: nothing verifiable at ``uri_or_dir``.
        InfrastructureError: the store is unreachable.
        VerificationError: an ASC MHL history itself was tampered with.
    """
    catalog = Catalog(catalog_url)
    local = _local_path(uri_or_dir)
    if local is not None:
        checks = _verify_local(local, catalog)
    elif uri_or_dir.startswith("s3://"):
        checks = _verify_s3(uri_or_dir, catalog)
    else:
        raise BadInputError(f"{uri_or_dir}: verify takes a folder, file:///path or s3://bucket/prefix")
    mism = [m for c in checks for m in c.mismatches]
    return VerifyReport(uri=redact(uri_or_dir), ok=not mism, files=sum(c.files for c in checks), copies=checks,
                        mismatches=mism)
