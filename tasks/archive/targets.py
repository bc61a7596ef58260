"""Archive targets: where copies go, from ``configs/storage.yaml`` names or ``--to`` URIs.

A target is a local/NAS folder (``/path``, ``file:///path``) or an S3 location
(``s3://bucket/prefix``) on any S3 endpoint. S3 settings (storage class, encryption, Object Lock,
endpoint, region, profile, part size…) come from the named target in the config, or as query
parameters on a URI (``s3://bucket/prefix?storage_class=GLACIER_IR&sse=AES256``). Credentials are
**never** part of a target: boto3 finds them (environment, ``AWS_PROFILE``/``profile``, instance
roles) or they come from a Prefect Secret/AwsCredentials block named by ``credentials_block``.

A package ``P`` archived to target ``T`` lands at ``T/P/…`` (folder name of the package), so one
target holds many packages; :attr:`ArchiveCopy.uri` is that copy's URI.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from specs.errors import BadInputError

__all__ = [
    "MiB",
    "ObjectLock",
    "LocalTarget",
    "S3Target",
    "Target",
    "StorageConfig",
    "StoragePrices",
    "ArchiveCopy",
    "deliver_home",
    "storage_config_path",
    "load_storage_config",
    "resolve_target",
    "redact",
    "refuse_credentials",
]

MiB = 1024 * 1024
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER",
                   "DEEP_ARCHIVE", "REDUCED_REDUNDANCY", "EXPRESS_ONEZONE")


class ObjectLock(BaseModel):
    """S3 Object Lock retention for every object of a copy (the bucket must have Object Lock enabled)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    retain_days: int | None = Field(default=None, gt=0)
    legal_hold: bool = False


class LocalTarget(BaseModel):
    """A local or NAS folder (e.g. an LTO staging area)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local"] = "local"
    name: str
    path: Path

    @property
    def uri(self) -> str:
        return Path(self.path).resolve().as_uri()


class S3Target(BaseModel):
    """An S3 bucket + prefix on any S3 endpoint (AWS, SeaweedFS, MinIO, Ceph…)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["s3"] = "s3"
    name: str
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # else boto3's own: AWS_ENDPOINT_URL(_S3), profile config
    region: str | None = None
    profile: str | None = None
    credentials_block: str | None = None  # Prefect block name: "aws-credentials/NAME" or "secret/NAME"
    storage_class: str = "STANDARD"
    sse: Literal["AES256", "aws:kms", "aws:kms:dsse"] | None = None
    kms_key_id: str | None = None
    object_lock: ObjectLock = Field(default_factory=ObjectLock)
    part_size_mib: int | None = Field(default=None, ge=5, le=5 * 1024)  # minimum; grows with the file size
    multipart_threshold_mib: int = Field(default=64, ge=5)
    concurrency: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=5, ge=1, le=20)  # botocore attempts per request (retry mode below)
    retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"  # "adaptive" adds a client-side rate limit
    part_retries: int = Field(default=3, ge=0, le=20)  # our own retries of a part/object after botocore gave up
    addressing_style: Literal["auto", "path", "virtual"] | None = None
    restore_days: int = Field(default=7, ge=1)
    restore_tier: Literal["Expedited", "Standard", "Bulk"] = "Standard"

    @field_validator("storage_class")
    @classmethod
    def _known_class(cls, v: str) -> str:
        v = v.upper()
        if v not in STORAGE_CLASSES:
            raise ValueError(f"unknown storage class {v!r}; use one of {', '.join(STORAGE_CLASSES)}")
        return v

    @field_validator("prefix")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.strip("/")

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))


Target = Annotated[LocalTarget | S3Target, Field(discriminator="kind")]


class CatalogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None  # SQLAlchemy URL; default sqlite in DELIVER_HOME


class StoragePrices(BaseModel):
    """Prices for ``deliver costs``: per GB-month (GB = 10^9 bytes, as storage is billed) by target name,
    else by storage class, else ``default``; per CPU-hour for making a delivery. Unset: not priced."""

    model_config = ConfigDict(extra="forbid")
    currency: str = "USD"
    cpu_hour: float | None = Field(default=None, ge=0)
    gb_month_default: float | None = Field(default=None, ge=0)
    gb_month_by_target: dict[str, float] = Field(default_factory=dict)
    gb_month_by_storage_class: dict[str, float] = Field(default_factory=dict)

    def gb_month(self, target: str, storage_class: str | None) -> float | None:
        """The price per GB-month of a copy on ``target`` (name or URI as given) in ``storage_class``."""
        if target in self.gb_month_by_target:
            return self.gb_month_by_target[target]
        if storage_class and storage_class.upper() in self.gb_month_by_storage_class:
            return self.gb_month_by_storage_class[storage_class.upper()]
        return self.gb_month_default


class StorageConfig(BaseModel):
    """``configs/storage.yaml``: named targets, the catalog and prices."""

    model_config = ConfigDict(extra="forbid")
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    prices: StoragePrices = Field(default_factory=StoragePrices)
    default_targets: list[str] = Field(default_factory=list)
    targets: dict[str, dict] = Field(default_factory=dict)

    def target(self, name: str) -> LocalTarget | S3Target:
        raw = dict(self.targets[name])
        uri = raw.pop("uri", None)
        if uri is None:
            raise BadInputError(f"storage target {name!r} has no 'uri' in {storage_config_path()}")
        return _from_uri(uri, name=name, settings=raw)


class ArchiveCopy(BaseModel):
    """One copy of a package made by :func:`tasks.archive.copy.archive_package`."""

    target: str  # the name or URI the caller gave
    uri: str  # where this copy of the package is (file:///…/PKG or s3://bucket/prefix/PKG)
    verified: bool
    files: int
    bytes: int
    storage_class: str | None = None
    mhl_generation: str | None = None
    verified_at: str | None = None  # ISO 8601 UTC time the copy was read back (or HEAD-checked) and matched


def deliver_home() -> Path:
    """``$DELIVER_HOME`` or ``~/.deliver``: the catalog and upload state live here."""
    return Path(os.environ.get("DELIVER_HOME") or Path.home() / ".deliver")


def storage_config_path() -> Path:
    """``$DELIVER_STORAGE_CONFIG`` or ``configs/storage.yaml`` of this checkout."""
    env = os.environ.get("DELIVER_STORAGE_CONFIG")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "configs" / "storage.yaml"


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> StorageConfig:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return StorageConfig.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(f"{path}: {_first_error(exc)}") from exc


def load_storage_config() -> StorageConfig:
    """The storage config, or an empty one when the file does not exist."""
    path = storage_config_path()
    if not path.exists():
        return StorageConfig()
    return _load(str(path), path.stat().st_mtime_ns)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return f"{loc}: {err['msg']}"


_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _from_uri(uri: str, *, name: str, settings: dict | None = None) -> LocalTarget | S3Target:
    refuse_credentials(uri)
    settings = dict(settings or {})
    if isinstance(settings.get("endpoint_url"), str):
        refuse_credentials(settings["endpoint_url"])
    parts = urlsplit(uri)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise BadInputError(f"{uri}: an S3 target needs a bucket: s3://BUCKET/PREFIX")
        query = dict(parse_qsl(parts.query))
        lock = dict(settings.pop("object_lock", {}) or {})
        for k in ("object_lock_mode", "retain_days", "legal_hold"):
            if k in query:
                v = query.pop(k)
                key = {"object_lock_mode": "mode"}.get(k, k)
                lock[key] = _BOOL.get(v.lower(), v) if k == "legal_hold" else v
        settings.update(query)
        if lock:
            settings["object_lock"] = lock
        try:
            return S3Target(name=name, bucket=parts.netloc, prefix=unquote(parts.path), **settings)
        except ValidationError as exc:
            raise BadInputError(f"target {name}: {_first_error(exc)}") from exc
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif parts.scheme == "" or re.match(r"^[A-Za-z]:[\\/]", uri):
        path = Path(uri).expanduser()
    else:
        raise BadInputError(f"{uri}: unsupported target; use s3://bucket/prefix, file:///path, /path, "
                            "or a target name from configs/storage.yaml")
    if settings:
        raise BadInputError(f"target {name}: local folders take no settings ({', '.join(settings)})")
    return LocalTarget(name=name, path=path.resolve())


def resolve_target(spec: str) -> LocalTarget | S3Target:
    """A target from a config name, an ``s3://`` URI, a ``file://`` URI or a plain path."""
    if not spec:
        raise BadInputError("empty target; give s3://bucket/prefix, a folder or a configured target name")
    cfg = load_storage_config()
    if spec in cfg.targets:
        return cfg.target(spec)
    if "://" not in spec and not spec.startswith(("/", ".", "~")) and not os.path.isabs(spec):
        known = ", ".join(sorted(cfg.targets)) or "none configured"
        if os.sep not in spec and not Path(spec).exists():
            raise BadInputError(f"unknown target {spec!r}: not a URI and not in {storage_config_path()} "
                                f"(known: {known})")
    return _from_uri(spec, name=spec)


#: Query parameters that carry credentials (boto3 credential names, S3 presigned-URL fields).
_SECRET_KEYS = r"aws_access_key_id|aws_secret_access_key|aws_session_token|access_key(?:_id)?|secret_key|" \
               r"secret|password|passwd|token|session_token|x-amz-credential|x-amz-security-token|x-amz-signature"
_SECRET_RE = re.compile(rf"(?i)(?<![\w-])({_SECRET_KEYS})=([^&\s]+)")
_USERINFO_RE = re.compile(r"(://)[^/@\s?#:]+(?::[^@\s?#]*)?@")


def redact(text: str) -> str:
    """Remove anything credential-like (``user:pass@``, ``key@``, ``secret=…``) from a URI or message."""
    text = _USERINFO_RE.sub(r"\1***@", text)
    return _SECRET_RE.sub(r"\1=***", text)


def refuse_credentials(uri: str) -> None:
    """Refuse a URI that carries credentials (``s3://KEY:SECRET@bucket``, ``?aws_secret_access_key=…``).

    Credentials in a URI end up in shell history, logs, the catalog and ASC MHL locations; they
    come from the environment, an AWS profile (``?profile=NAME``) or a Prefect block
    (``credentials_block``) instead.

    Raises:
        BadInputError: the URI holds credentials (the message shows it redacted).
    """
    if "://" not in uri:
        return
    if _USERINFO_RE.search(uri) or _SECRET_RE.search(uri.partition("?")[2]):
        raise BadInputError(f"{redact(uri)}: credentials are not accepted in a URI; use the environment "
                            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), ?profile=NAME or a credentials_block")
