"""Digests computed while the bytes go by: xxh128 (ASC MHL) and CRC64NVME (S3 full-object checksum).

Both run at several GB/s, so one read pass can feed every copy and both digests without the hash
becoming the bottleneck. CRC64NVME comes from ``awscrt`` (the same
implementation botocore uses for ``ChecksumAlgorithm='CRC64NVME'``); its S3 wire form is the base64
of the 8 big-endian bytes. :class:`Mismatch` is what a comparison of a copy with recorded digests finds.
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import xxhash
from ascmhl.hasher import Hasher, new_hasher_for_hash_type
from awscrt import checksums as _crt
from pydantic import BaseModel

__all__ = [
    "READ_BLOCK_BYTES",
    "MHL_FORMATS",
    "PACKAGE_FORMATS",
    "FileDigests",
    "StreamDigester",
    "crc64nvme",
    "crc64nvme_b64",
    "xxh128_b64_to_hex",
    "digest_file",
    "bytes_hashed",
    "hash_file_xxh128",
    "Mismatch",
]

#: Read size of the single pass. 8 MiB keeps syscalls few and memory flat.
READ_BLOCK_BYTES = 8 * 1024 * 1024

#: Hash formats of ASC MHL v1.0 (section "Hash formats"): xxh128 is ours, the others are verified and
#: extended when a history made by another tool recorded them.
MHL_FORMATS = ("xxh128", "md5", "sha1", "xxh32", "xxh64", "xxh3", "c4")

#: Formats every package file is hashed with beside xxh128, in the same read: MD5 (RFC 1321), which the
#: manifest and the delivery documents list because many distributors' forms ask for it.
PACKAGE_FORMATS = ("md5",)


def crc64nvme(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
    """CRC64NVME of ``data``, continuing from ``previous`` (0 to start)."""
    return _crt.crc64nvme(data, previous) & 0xFFFFFFFFFFFFFFFF


def crc64nvme_b64(value: int) -> str:
    """S3's header form of a CRC64NVME: base64 of the 8 big-endian bytes."""
    return base64.b64encode(value.to_bytes(8, "big")).decode("ascii")


def xxh128_b64_to_hex(value: str) -> str:
    """S3 ``ChecksumXXHASH128`` (base64, big-endian) → the ASC MHL ``xxh128`` hex form."""
    return base64.b64decode(value).hex()


@dataclass(frozen=True)
class FileDigests:
    """What one read of a file established: its size in bytes and its digests."""

    size: int
    xxh128: str  # hex, as in ASC MHL
    crc64nvme: str  # base64, as in S3 headers
    others: dict[str, str] = field(default_factory=dict)  # other ASC MHL formats asked for: {"md5": hex, …}

    def mhl_hashes(self) -> dict[str, str]:
        """Every ASC MHL hash of this read: ``{"xxh128": …, "md5": …}``."""
        return {"xxh128": self.xxh128, **self.others}


@dataclass
class StreamDigester:
    """Accumulates xxh128 + CRC64NVME (and any other ASC MHL ``formats``) over blocks fed in order."""

    formats: tuple[str, ...] = ()
    size: int = 0
    _xxh: xxhash.xxh3_128 = field(default_factory=xxhash.xxh3_128)
    _crc: int = 0
    _others: dict[str, Hasher] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for fmt in self.formats:
            if fmt != "xxh128":
                self._others[fmt] = new_hasher_for_hash_type(fmt)

    def update(self, block: bytes | bytearray | memoryview) -> None:
        self._xxh.update(block)
        self._crc = crc64nvme(block, self._crc)
        for h in self._others.values():
            h.update(block)
        self.size += len(block)

    def result(self) -> FileDigests:
        return FileDigests(self.size, self._xxh.hexdigest(), crc64nvme_b64(self._crc),
                           {fmt: h.string_digest() for fmt, h in self._others.items()})


_hashed = 0  # bytes digest_file has read in this process
_hashed_lock = threading.Lock()


def bytes_hashed() -> int:
    """Bytes :func:`digest_file` (every file hash of deliver) has read in this process so far: how a caller
    sees how many times data was read for its digests (one addition per file, not per block)."""
    return _hashed


def digest_file(path: Path | str, *, drop_cache: bool = False, formats: tuple[str, ...] = ()) -> FileDigests:
    """Read ``path`` once and return its size, xxh128, CRC64NVME and the other ASC MHL ``formats``.

    Args:
        path: the file.
        drop_cache: ask the kernel to forget the file's cached pages first, so a verification of a
            copy we just wrote reads the storage, not the page cache (best effort, POSIX only).
        formats: further ASC MHL hash formats to compute in the same read (``md5``, ``c4``…).
    """
    digester = StreamDigester(formats)
    buf = bytearray(READ_BLOCK_BYTES)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        if drop_cache and hasattr(os, "posix_fadvise"):
            try:
                os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            digester.update(view[:n])
    global _hashed
    with _hashed_lock:
        _hashed += digester.size
    return digester.result()


def hash_file_xxh128(path: Path | str) -> str:
    """xxh128 (XXH3-128) of a file as the lowercase hex ASC MHL records."""
    return digest_file(path).xxh128


class Mismatch(BaseModel):
    """One file whose copy does not match what was recorded.

    ``kind``: ``mismatch`` (hash or size differs), ``missing`` (recorded, not found), ``new`` (found,
    never recorded), ``unreadable`` (could not be read/checked).
    """

    path: str
    kind: Literal["mismatch", "missing", "new", "unreadable"]
    expected: str | None = None
    actual: str | None = None
    location: str | None = None

    def describe(self) -> str:
        where = f" at {self.location}" if self.location else ""
        if self.kind == "mismatch":
            return f"{self.path}{where}: expected {self.expected}, found {self.actual}"
        if self.kind == "missing":
            return f"{self.path}{where}: missing (recorded with {self.expected})"
        if self.kind == "new":
            return f"{self.path}{where}: not in the ASC MHL history"
        return f"{self.path}{where}: unreadable ({self.actual})"
