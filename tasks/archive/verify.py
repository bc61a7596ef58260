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
from tasks.archive.targets import S3Target, redact, refuse_credentials

__all__ = [
    "VerifyReport",
    "CopyCheck",
    "verify_uri",
    "s3_target_for_uri",
    "s3_expected",
    "local_packages",
    "s3_packages",
    "no_package_error",
]


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


def no_package_error(where: str, found: list[str], what: str = "package") -> BadInputError:
    """One line naming what is there instead of a package copy at ``where``."""
    if found:
        shown = ", ".join(found[:10]) + (f" … ({len(found)} in all)" if len(found) > 10 else "")
        return BadInputError(f"no {what} at {redact(where)}; found packages: {redact(shown)}")
    return BadInputError(f"no {what} at {redact(where)}, nor any beside it; give a copy URI as printed by "
                         "`deliver archive` (TARGET/PACKAGE) or the target given to it")


def _is_local_package(p: Path) -> bool:
    return (p / MHL_FOLDER / "ascmhl_chain.xml").is_file()


def local_packages(root: Path) -> list[Path]:
    """Package copies at a folder: the folder itself (it has ``ascmhl/``) or its subfolders that have one
    (a target given to ``deliver archive``: the copy is ``TARGET/PACKAGE``).

    Raises:
        BadInputError: no package there; the message names the packages found beside ``root`` instead.
    """
    root = root.expanduser().resolve()
    if _is_local_package(root):
        return [root]
    if root.is_dir():
        inside = sorted(p for p in root.iterdir() if p.is_dir() and _is_local_package(p))
        if inside:
            return inside
    if root.exists() and not root.is_dir():
        raise BadInputError(f"{root}: a file, not a package copy or a folder of packages")
    raise no_package_error(str(root), [p.as_posix() for p in _local_packages_under(root.parent)])


def _local_packages_under(folder: Path, depth: int = 2) -> list[Path]:
    """Package copies in ``folder``'s subfolders, down to ``depth`` levels (a target, or a target's parent)."""
    if depth == 0 or not folder.is_dir():
        return []
    found: list[Path] = []
    try:
        subs = sorted(p for p in folder.iterdir() if p.is_dir() and p.name != MHL_FOLDER)
    except OSError:
        return []
    for p in subs:
        found += [p] if _is_local_package(p) else _local_packages_under(p, depth - 1)
    return found


def _s3_packages_under(target: S3Target, prefix: str) -> list[str]:
    """Keys of package copies under ``prefix``: a deliver manifest beside them or an ``ascmhl/`` chain."""
    found = set()
    for k in _list_keys(target, prefix):
        if k.endswith("." + MANIFEST_SUFFIX):
            found.add(k[: -len("." + MANIFEST_SUFFIX)])
        elif k.endswith(f"/{MHL_FOLDER}/ascmhl_chain.xml"):
            found.add(k[: -len(f"/{MHL_FOLDER}/ascmhl_chain.xml")])
    # a nested history inside a package is part of that package
    return sorted(k for k in found if not any(k.startswith(o + "/") for o in found))


def s3_packages(target: S3Target, catalog: Catalog) -> list[str]:
    """Keys of the package copies at ``target.prefix``: the copy itself, or the copies of a target.

    Raises:
        BadInputError: no package there; the message names the packages found beside the prefix instead.
    """
    key = target.prefix
    if key and (catalog.files_of(f"s3://{target.bucket}/{key}") is not None
                or key in _s3_packages_under(target, key)):
        return [key]
    inside = _s3_packages_under(target, key + "/" if key else "")
    if inside:
        return inside
    parent = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    beside = [f"s3://{target.bucket}/{k}" for k in _s3_packages_under(target, parent)]
    raise no_package_error(f"s3://{target.bucket}/{key}", beside)


def _verify_local(root: Path, catalog: Catalog) -> list[CopyCheck]:
    packages = local_packages(root)
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
    checks = []
    for key in s3_packages(target, catalog):
        exp = s3_expected(target, key, catalog) or {}
        checks.append(_verify_s3_copy(target, key, exp, catalog))
    return checks


def verify_uri(uri_or_dir: str, *, catalog_url: str | None = None) -> VerifyReport:
    """Fixity check of a copy (or of every package under a target) without trusting earlier results.

    Returns a report naming every mismatching, missing or unrecorded file (``ok`` False then).

    Raises:
        BadInputError: nothing verifiable at ``uri_or_dir``.
        InfrastructureError: the store is unreachable.
        VerificationError: an ASC MHL history itself was tampered with.
    """
    refuse_credentials(uri_or_dir)
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
