"""S3 copies with boto3 on any endpoint: resumable multipart, server-validated CRC64NVME, no re-download.

How a file goes up (Amazon S3 User Guide: "Uploading and copying objects using multipart upload",
"Checking object integrity" for full-object CRC64NVME checksums):

* below the target's multipart threshold: one ``PutObject`` with ``ChecksumCRC64NVME`` (the server
  rejects the object with ``BadDigest`` if the bytes it got differ);
* above it: ``CreateMultipartUpload(ChecksumAlgorithm=CRC64NVME, ChecksumType=FULL_OBJECT)``, parts
  of ``max(minimum part size, size/10000)`` uploaded in parallel, each with its own CRC64NVME
  (validated per part), and ``CompleteMultipartUpload`` with the whole-file CRC64NVME computed in the
  same read pass — so S3 validates the whole object against what we read;
* resumable: an interrupted multipart upload is found again with ``ListMultipartUploads`` (no local
  state needed, works from another machine), ``ListParts`` says which parts are there, and only the
  missing ones are sent. A reused part is checked against its listed size and, where the server lists
  it, its CRC64NVME; the whole-object checksum at completion catches anything else;
* verification without download: ``HeadObject(ChecksumMode=ENABLED)`` → ``ChecksumCRC64NVME`` and
  ``ContentLength`` compared with the source read.

Storage class, SSE (``AES256``/``aws:kms``), Object Lock retention and legal hold are sent with every
object. An existing object is never overwritten by a different one.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from specs.errors import BadInputError, InfrastructureError, VerificationError
from tasks.archive.hashing import FileDigests, Mismatch, StreamDigester, crc64nvme, crc64nvme_b64
from tasks.archive.targets import MiB, S3Target, redact

LOG = logging.getLogger("deliver.archive")

__all__ = [
    "UNREACHABLE_BUDGET_S",
    "EndpointUnreachableError",
    "reach_bucket",
    "MAX_PARTS",
    "MIN_PART_BYTES",
    "MAX_PART_BYTES",
    "MAX_OBJECT_BYTES",
    "CLIENT_EVENT_HOOKS",
    "UploadRejectedError",
    "choose_part_size",
    "client_for",
    "S3Destination",
    "S3FileSink",
    "split_s3_uri",
    "s3_errors",
]

MAX_PARTS = 10_000
MIN_PART_BYTES = 5 * MiB
MAX_PART_BYTES = 5 * 1024 * MiB
MAX_OBJECT_BYTES = 48.8 * 1024**4  # qfacts: 48.8 TiB (older pages: 5 TiB)
DEFAULT_MIN_PART_BYTES = 16 * MiB
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")

#: (event name, handler) registered on every client we create — e.g. for metrics or tests that
#: count ``before-call.s3.UploadPart``.
CLIENT_EVENT_HOOKS: list[tuple[str, Callable[..., Any]]] = []


class UploadRejectedError(InfrastructureError):
    """S3 rejected an upload's checksum (bytes damaged in transit or a stale resumed part).

    Nothing was stored under the final key; the retry starts that upload afresh.
    """


def choose_part_size(size: int, minimum: int = DEFAULT_MIN_PART_BYTES) -> int:
    """Part size in bytes for a ``size``-byte object: ≥ size/10,000, whole MiB, within S3's limits."""
    if size > MAX_OBJECT_BYTES:
        raise BadInputError(f"file of {size} bytes exceeds S3's largest object (48.8 TiB)")
    need = math.ceil(size / MAX_PARTS)
    part = max(minimum, MIN_PART_BYTES, math.ceil(need / MiB) * MiB)
    return min(part, MAX_PART_BYTES)


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise BadInputError(f"{uri}: not an s3:// URI")
    rest = uri[5:].split("?", 1)[0]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise BadInputError(f"{uri}: no bucket")
    return bucket, key.strip("/")


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def s3_errors(exc: Exception, what: str) -> Exception:
    """Map a boto error to our exception classes (never with credentials in the text)."""
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        msg = redact(str(exc.response.get("Error", {}).get("Message", "")) or code)
        if code in ("NoSuchBucket",):
            return BadInputError(f"{what}: bucket does not exist ({msg}); create it or fix the target")
        if code in ("BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "InvalidPart"):
            return UploadRejectedError(f"{what}: S3 rejected the checksum ({code}: {msg}); the upload will be "
                                       "restarted on retry")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"):
            return InfrastructureError(f"{what}: access denied ({code}); check the credentials/profile for this "
                                       "target (environment, AWS profile or Prefect block)")
        return InfrastructureError(f"{what}: S3 error {code}: {msg}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return InfrastructureError(f"{what}: no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                                   "AWS_PROFILE, a target 'profile', or a 'credentials_block'")
    if isinstance(exc, (BotoConnectionError, BotoCoreError)):
        return InfrastructureError(f"{what}: S3 endpoint unreachable ({redact(type(exc).__name__)}: "
                                   f"{redact(str(exc))}); check the endpoint/network and retry")
    return exc


def _session_for(target: S3Target) -> boto3.session.Session:
    if target.credentials_block:
        kind, _, name = target.credentials_block.partition("/")
        creds = _credentials_from_block(kind, name)
        return boto3.session.Session(region_name=target.region or creds.pop("region_name", None), **creds)
    return boto3.session.Session(profile_name=target.profile, region_name=target.region)


def _credentials_from_block(kind: str, name: str) -> dict[str, Any]:
    """Credentials from a Prefect block: ``aws-credentials/NAME`` (prefect-aws) or ``secret/NAME``.

    A Secret block holds JSON ``{"aws_access_key_id": …, "aws_secret_access_key": …,
    "aws_session_token": …}``. Values are handed to boto3 only, never logged.
    """
    keys = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    try:
        if kind == "aws-credentials":
            try:
                from prefect_aws import AwsCredentials
            except ImportError as exc:
                raise BadInputError("credentials_block aws-credentials/… needs prefect-aws; install it or use a "
                                    "secret/NAME block") from exc
            block = AwsCredentials.load(name)
            out = {"aws_access_key_id": block.aws_access_key_id,
                   "aws_secret_access_key": block.aws_secret_access_key.get_secret_value()
                   if block.aws_secret_access_key else None,
                   "aws_session_token": block.aws_session_token.get_secret_value() if block.aws_session_token else None}
            if block.profile_name:
                out = {"profile_name": block.profile_name}
            return {k: v for k, v in out.items() if v}
        if kind == "secret":
            from prefect.blocks.system import Secret

            value = cast(Secret, Secret.load(name)).get()
            if isinstance(value, str):
                value = json.loads(value)
            return {k: value[k] for k in keys if value.get(k)}
    except (BadInputError, InfrastructureError):
        raise
    except Exception as exc:  # noqa: BLE001 - block missing, API down, bad JSON: one error, never echo the value
        raise InfrastructureError(f"could not load Prefect block {kind}/{name} ({type(exc).__name__}); "
                                  "check that it exists and the Prefect API is reachable") from None
    raise BadInputError(f"credentials_block must be 'aws-credentials/NAME' or 'secret/NAME', not {kind!r}")


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(target: S3Target) -> Any:
    """A boto3 S3 client for ``target`` (standard retries, our checksums, pooled connections)."""
    key = (target.endpoint_url, target.region, target.profile, target.credentials_block, target.concurrency,
           target.max_attempts, target.retry_mode, target.addressing_style, tuple(id(h) for _, h in CLIENT_EVENT_HOOKS))
    with _CLIENTS_LOCK:
        if key in _CLIENTS:
            return _CLIENTS[key]
        config = Config(
            # botocore retries every request (connection reset/timeout, 5xx, 503 SlowDown, …) with backoff;
            # "adaptive" also slows the client down when the server throttles.
            retries={"mode": target.retry_mode, "max_attempts": target.max_attempts},
            s3={"addressing_style": target.addressing_style} if target.addressing_style else None,
            max_pool_connections=max(10, target.concurrency * 2 + 2),
            # We send CRC64NVME ourselves; don't let botocore add a CRC32 pass on top.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=10,
            read_timeout=120,
        )
        client = _session_for(target).client("s3", endpoint_url=target.endpoint_url or None, config=config)
        for event, handler in CLIENT_EVENT_HOOKS:
            client.meta.events.register(event, handler)
        _CLIENTS[key] = client
        return client


def reset_clients() -> None:
    """Forget cached clients (after changing the environment or CLIENT_EVENT_HOOKS)."""
    with _CLIENTS_LOCK:
        _CLIENTS.clear()


def _transient(exc: Exception) -> bool:
    """True for errors worth another try of the same request: network, throttling, 5xx, timeouts."""
    if isinstance(exc, ClientError):
        code = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in ("SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                        "ServiceUnavailable", "RequestTimeTooSkewed") or status >= 500
    return isinstance(exc, BotoCoreError) and not isinstance(exc, (NoCredentialsError, PartialCredentialsError))


def with_retries(fn: Callable[[], Any], retries: int, what: str, *, base_s: float = 0.5, cap_s: float = 8.0) -> Any:
    """``fn()``; on a transient S3/network error (after botocore's own attempts) wait and try again.

    Our layer above botocore's: a part whose request failed ``max_attempts`` times is tried again
    ``retries`` more times with exponential backoff (``base_s × 2^n``, full jitter, capped at
    ``cap_s``) before the error surfaces. Checksum rejections and access errors are never retried here.
    """
    import random
    import time

    attempt = 0
    while True:
        try:
            return fn()
        except (ClientError, BotoCoreError) as exc:
            if attempt >= retries or not _transient(exc):
                raise s3_errors(exc, what) from None
            attempt += 1
            time.sleep(random.uniform(0, min(cap_s, base_s * 2 ** attempt)))


#: Longest time spent retrying an S3 endpoint that cannot be reached at all before giving up for good
#: (exit 3); without it botocore's, our and Prefect's retries multiplied to minutes. The number of tries is
#: the target's ``max_attempts``.
UNREACHABLE_BUDGET_S = float(os.environ.get("DELIVER_S3_UNREACHABLE_BUDGET_S", "60"))


class EndpointUnreachableError(InfrastructureError):
    """No connection to an S3 endpoint within :data:`UNREACHABLE_BUDGET_S`: retried already, not worth more."""

    retries_exhausted = True


def reach_bucket(target: S3Target, budget_s: float | None = None) -> None:
    """``HeadBucket`` on ``target``, retried with backoff while the endpoint cannot be connected to (or answers
    5xx/throttling): at most ``target.max_attempts`` tries and ``budget_s`` seconds in all (each try is one
    request, no botocore retries underneath); every retry is logged with what is retried and when it gives up.

    Raises:
        EndpointUnreachableError: still no connection (or only 5xx/throttling answers) when the budget is spent.
        ClientError, BotoCoreError: any other error (no such bucket, access denied: the caller maps it).
    """
    import random
    import time

    budget = UNREACHABLE_BUDGET_S if budget_s is None else budget_s
    probe = client_for(target.model_copy(update={"max_attempts": 1}))
    endpoint = target.endpoint_url or "the AWS endpoint"
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            probe.head_bucket(Bucket=target.bucket)
            return
        except (ClientError, BotoCoreError) as exc:
            if not _transient(exc):
                raise
            # no connection at all, or a 5xx/throttling answer: both are worth another try, within the budget
            why = type(exc).__name__ if isinstance(exc, BotoCoreError) else f"HTTP {_error_code(exc)}"
            elapsed = time.monotonic() - started
            wait = random.uniform(0.5, min(8.0, 0.5 * 2 ** attempt))
            if attempt >= target.max_attempts or elapsed + wait > budget:
                raise EndpointUnreachableError(
                    f"s3://{target.bucket}: S3 endpoint {redact(endpoint)} unreachable ({why}); tried to connect "
                    f"{attempt} times over {elapsed:.0f} s (limit {budget:.0f} s). Check the endpoint and the "
                    "network, then run the same command again") from None
            LOG.warning("S3 endpoint %s unreachable (%s): retrying HeadBucket s3://%s in %.1f s (attempt %d; "
                        "gives up after %.0f s)", redact(endpoint), why, target.bucket, wait, attempt + 1, budget)
            time.sleep(wait)


def head(client: Any, bucket: str, key: str) -> dict | None:
    """``HeadObject`` with checksums, or None when the object does not exist."""
    try:
        return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise s3_errors(exc, f"s3://{bucket}/{key}") from None
    except BotoCoreError as exc:
        raise s3_errors(exc, f"s3://{bucket}/{key}") from None


def _object_args(target: S3Target) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if target.storage_class and target.storage_class != "STANDARD":
        args["StorageClass"] = target.storage_class
    if target.sse:
        args["ServerSideEncryption"] = target.sse
        if target.kms_key_id:
            args["SSEKMSKeyId"] = target.kms_key_id
    lock = target.object_lock
    if lock.mode and lock.retain_days:
        args["ObjectLockMode"] = lock.mode
        args["ObjectLockRetainUntilDate"] = (_dt.datetime.now(_dt.UTC)
                                             + _dt.timedelta(days=lock.retain_days))
    if lock.legal_hold:
        args["ObjectLockLegalHoldStatus"] = "ON"
    return args


@dataclass
class _Part:
    number: int
    size: int
    crc: str
    etag: str | None = None


@dataclass
class S3Stats:
    parts_uploaded: int = 0
    parts_reused: int = 0
    bytes_uploaded: int = 0
    objects_skipped: int = 0
    uploads_resumed: int = 0


class S3FileSink:
    """Receives one file's blocks in order and uploads them (single PUT or resumable multipart)."""

    def __init__(self, dest: S3Destination, rel: str, size: int) -> None:
        self.dest = dest
        self.rel = rel
        self.key = dest.key_for(rel)
        self.size = size
        self.skip = False
        self.parts: dict[int, _Part] = {}
        self.futures: list[Future] = []
        self.upload_id: str | None = None
        t = dest.target
        existing = head(dest.client, dest.bucket, self.key)
        if existing is not None:
            if existing.get("ContentLength") != size:
                raise VerificationError(
                    f"{dest.uri}/{rel} already exists with {existing.get('ContentLength')} bytes (source has {size}); "
                    "refusing to overwrite an archived object — archive under another prefix or remove the old copy")
            self.skip = True  # same size: kept; its checksum is compared at verification
            dest.stats.objects_skipped += 1
            self.mode = "skip"
            return
        threshold = max(t.multipart_threshold_mib * MiB, MIN_PART_BYTES)
        if size < threshold:
            self.mode = "single"
            self._buf = bytearray()
            return
        self.mode = "multipart"
        self.part_size = choose_part_size(size, (t.part_size_mib or DEFAULT_MIN_PART_BYTES // MiB) * MiB)
        self._buf = bytearray()
        self._crc = 0
        self._next = 1
        self._listed: dict[int, dict] = {}
        self._find_resumable_upload()
        if self.upload_id is None:
            resp = with_retries(
                lambda: dest.client.create_multipart_upload(
                    Bucket=dest.bucket, Key=self.key, ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT",
                    **_object_args(t)),
                t.part_retries, f"{dest.uri}/{rel}")
            self.upload_id = resp["UploadId"]

    # -- resume ---------------------------------------------------------------------------------
    def _find_resumable_upload(self) -> None:
        c, b = self.dest.client, self.dest.bucket
        try:
            candidates = []
            for page in c.get_paginator("list_multipart_uploads").paginate(Bucket=b, Prefix=self.key):
                candidates += [u for u in page.get("Uploads", []) if u["Key"] == self.key]
            candidates.sort(key=lambda u: u.get("Initiated") or _dt.datetime.min, reverse=True)
            for upload in candidates:
                algo = upload.get("ChecksumAlgorithm")
                if algo and algo != "CRC64NVME":
                    continue
                listed: dict[int, dict] = {}
                for page in c.get_paginator("list_parts").paginate(Bucket=b, Key=self.key,
                                                                     UploadId=upload["UploadId"]):
                    for p in page.get("Parts", []):
                        listed[p["PartNumber"]] = p
                nparts = math.ceil(self.size / self.part_size)
                ok = all(
                    (p["Size"] == self.part_size if n < nparts
                     else p["Size"] == self.size - self.part_size * (nparts - 1))
                    for n, p in listed.items() if n <= nparts) and all(n <= nparts for n in listed)
                if ok:
                    self.upload_id = upload["UploadId"]
                    self._listed = listed
                    if listed:
                        self.dest.stats.uploads_resumed += 1
                    return
        except (ClientError, BotoCoreError) as exc:
            raise s3_errors(exc, f"{self.dest.uri}/{self.rel}") from None

    # -- data -------------------------------------------------------------------------------------
    def write(self, block: memoryview) -> None:
        if self.mode == "skip":
            return
        if self.mode == "single":
            self._buf += block
            return
        while len(block):
            take = min(len(block), self.part_size - len(self._buf))
            chunk = block[:take]
            self._buf += chunk
            self._crc = crc64nvme(chunk, self._crc)
            block = block[take:]
            if len(self._buf) == self.part_size:
                self._ship()

    def _ship(self) -> None:
        number, size, crc = self._next, len(self._buf), crc64nvme_b64(self._crc)
        self._next += 1
        listed = self._listed.get(number)
        listed_crc = listed.get("ChecksumCRC64NVME") if listed else None
        if listed and listed["Size"] == size and (listed_crc is None or listed_crc == crc):
            self.parts[number] = _Part(number, size, crc, listed["ETag"])
            self.dest.stats.parts_reused += 1
        else:
            data = bytes(self._buf)
            self.parts[number] = _Part(number, size, crc)
            self.futures.append(self.dest.submit(self._upload_part, self.parts[number], data))
        self._buf = bytearray()
        self._crc = 0
        self.dest.raise_if_failed()

    def _upload_part(self, part: _Part, data: bytes) -> None:
        d = self.dest
        resp = with_retries(
            lambda: d.client.upload_part(Bucket=d.bucket, Key=self.key, UploadId=self.upload_id,
                                         PartNumber=part.number, Body=data, ChecksumCRC64NVME=part.crc),
            d.target.part_retries, f"{d.uri}/{self.rel} part {part.number}")
        part.etag = resp["ETag"]
        with d.lock:
            d.stats.parts_uploaded += 1
            d.stats.bytes_uploaded += len(data)

    def finish(self, digests: FileDigests) -> None:
        d = self.dest
        if self.mode == "skip":
            return
        if self.mode == "single":
            data = bytes(self._buf)
            self._buf = bytearray()
            self.futures.append(d.submit(self._put, data, digests))
            return
        if self._buf or not self.parts:
            self._ship()
        for fut in self.futures:
            fut.result()  # raises the part's error
        parts = [{"PartNumber": p.number, "ETag": p.etag, "ChecksumCRC64NVME": p.crc}
                 for p in sorted(self.parts.values(), key=lambda p: p.number)]
        try:
            with_retries(lambda: self._complete(parts, digests), d.target.part_retries, f"{d.uri}/{self.rel}")
        except UploadRejectedError:
            self.abort()  # stale or damaged parts: start afresh next time
            raise
        self._abort_strays()

    def _abort_strays(self) -> None:
        """Abort other unfinished uploads of this key (e.g. a CreateMultipartUpload retried after its answer
        was lost). The object is final and is never overwritten, so they could never complete; left alone
        they would be billed storage."""
        c, b = self.dest.client, self.dest.bucket
        try:
            for page in c.get_paginator("list_multipart_uploads").paginate(Bucket=b, Prefix=self.key):
                for u in page.get("Uploads", []):
                    if u["Key"] == self.key and u["UploadId"] != self.upload_id:
                        c.abort_multipart_upload(Bucket=b, Key=self.key, UploadId=u["UploadId"])
        except (ClientError, BotoCoreError):
            pass  # housekeeping only; the copy itself is complete

    def _complete(self, parts: list[dict], digests: FileDigests) -> None:
        d = self.dest
        try:
            d.client.complete_multipart_upload(
                Bucket=d.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts},
                ChecksumCRC64NVME=digests.crc64nvme, ChecksumType="FULL_OBJECT", MpuObjectSize=digests.size)
        except ClientError as exc:
            # A retry of a Complete whose answer was lost on the way (the upload is gone because it
            # succeeded): the object is there with exactly our checksum and size — done.
            if _error_code(exc) == "NoSuchUpload":
                h = head(d.client, d.bucket, self.key)
                if h is not None and not compare_head(self.rel, h, digests.size, digests.crc64nvme, d.uri):
                    return
            raise

    def _put(self, data: bytes, digests: FileDigests) -> None:
        d = self.dest
        with_retries(lambda: d.client.put_object(Bucket=d.bucket, Key=self.key, Body=data,
                                                 ChecksumCRC64NVME=digests.crc64nvme, **_object_args(d.target)),
                     d.target.part_retries, f"{d.uri}/{self.rel}")
        with d.lock:
            d.stats.bytes_uploaded += len(data)

    def abort(self) -> None:
        """Abort the multipart upload (only used when S3 rejected it; interruptions keep it for resume)."""
        if self.mode == "multipart" and self.upload_id:
            try:
                self.dest.client.abort_multipart_upload(Bucket=self.dest.bucket, Key=self.key,
                                                        UploadId=self.upload_id)
            except (ClientError, BotoCoreError):
                pass


@dataclass
class S3Destination:
    """One package copy in an S3 target: ``s3://bucket/<prefix>/<package name>/``."""

    target: S3Target
    package_name: str
    stats: S3Stats = field(default_factory=S3Stats)

    def __post_init__(self) -> None:
        self.bucket = self.target.bucket
        self.base_key = self.target.key(self.package_name)
        self.uri = f"s3://{self.bucket}/{self.base_key}"
        self.storage_class = self.target.storage_class
        self.lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(self.target.concurrency * 2)
        self._pending: list[Future] = []
        self.version_ids: dict[str, str] = {}

    @property
    def client(self) -> Any:
        return client_for(self.target)

    def key_for(self, rel: str) -> str:
        return f"{self.base_key}/{rel}"

    def open(self) -> None:
        try:
            reach_bucket(self.target)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise BadInputError(f"s3://{self.bucket}: bucket does not exist; create it (with Object Lock if "
                                    "wanted) or fix the target") from None
            raise s3_errors(exc, f"s3://{self.bucket}") from None
        except BotoCoreError as exc:
            raise s3_errors(exc, f"s3://{self.bucket}") from None
        self._pool = ThreadPoolExecutor(max_workers=self.target.concurrency, thread_name_prefix="s3-part")

    def submit(self, fn: Callable[..., None], *args: Any) -> Future:
        """Run an upload in the pool; blocks while ``2 × concurrency`` buffers are in flight."""
        assert self._pool is not None
        self._slots.acquire()

        def run() -> None:
            try:
                fn(*args)
            finally:
                self._slots.release()

        fut = self._pool.submit(run)
        self._pending.append(fut)
        return fut

    def raise_if_failed(self) -> None:
        for fut in self._pending:
            exc = fut.exception() if fut.done() else None
            if exc is not None:
                raise exc

    def file_sink(self, rel: str, size: int) -> S3FileSink:
        return S3FileSink(self, rel, size)

    def flush(self) -> None:
        for fut in self._pending:
            fut.result()
        self._pending.clear()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def verify(self, digests: dict[str, FileDigests]) -> list[Mismatch]:
        """``HeadObject`` every object: CRC64NVME + size must equal the source read (no download)."""
        out: list[Mismatch] = []
        for rel, want in digests.items():
            h = head(self.client, self.bucket, self.key_for(rel))
            out += compare_head(rel, h, want.size, want.crc64nvme, self.uri)
            if h is not None and h.get("VersionId"):
                self.version_ids[rel] = h["VersionId"]
        return out

    def put_small(self, rel: str, data: bytes, digests: FileDigests) -> None:
        """Upload (replace) a small file such as an ASC MHL manifest, server-validated."""
        with_retries(lambda: self.client.put_object(Bucket=self.bucket, Key=self.key_for(rel), Body=data,
                                                    ChecksumCRC64NVME=digests.crc64nvme, **_object_args(self.target)),
                     self.target.part_retries, f"{self.uri}/{rel}")

    def put_sidecar(self, name: str, data: bytes) -> None:
        """A small object next to the package (``<prefix>/<package>.<name>``), e.g. the manifest."""
        dg = StreamDigester()
        dg.update(data)
        key = f"{self.base_key}.{name}"
        with_retries(lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                                    ChecksumCRC64NVME=dg.result().crc64nvme,
                                                    ContentType="application/json"),
                     self.target.part_retries, f"s3://{self.bucket}/{key}")


def compare_head(rel: str, h: dict | None, size: int, crc64nvme_b64_value: str, location: str) -> list[Mismatch]:
    """Compare a ``HeadObject`` answer with the expected size and CRC64NVME."""
    if h is None:
        return [Mismatch(path=rel, kind="missing", expected=f"crc64nvme {crc64nvme_b64_value} ({size} B)",
                         location=location)]
    got_crc = h.get("ChecksumCRC64NVME")
    got_size = h.get("ContentLength")
    ctype = h.get("ChecksumType")
    if got_size != size or got_crc != crc64nvme_b64_value or (ctype not in (None, "FULL_OBJECT")):
        return [Mismatch(path=rel, kind="mismatch", location=location,
                         expected=f"crc64nvme {crc64nvme_b64_value} ({size} B)",
                         actual=f"crc64nvme {got_crc or 'none'} ({got_size} B{', ' + ctype if ctype else ''})")]
    return []
