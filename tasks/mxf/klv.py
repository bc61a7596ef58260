"""KLV coding (SMPTE ST 336) and the MXF primitive types of SMPTE ST 377-1 §4 / Annex A.

Keys are 16-byte Universal Labels. Lengths are BER (ST 336 §6.3.2): the writer always uses the
4-byte long form (``0x83`` + 3 bytes) for everything it may rewrite in place, so a set or partition
pack keeps its size when a duration or an offset is filled in at the end.
Local sets (ST 377-1 §9.6) carry 2-byte local tags and 2-byte lengths; the primer pack maps tags to ULs.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import BinaryIO

__all__ = ["ber_length", "read_ber", "klv", "KLVPacket", "iter_klv", "read_klv_at", "u8", "u16", "u32", "u64",
           "i32", "rational", "read_rational", "timestamp", "utf16", "read_utf16", "batch", "read_batch",
           "umid_for", "ZERO_UMID", "local_set", "parse_local_set", "uuid_bytes"]


def ber_length(n: int, size: int = 4) -> bytes:
    """The BER long form of ``n`` in ``size`` bytes (``0x80 | size-1`` then big-endian)."""
    if n < 0 or n >= 1 << (8 * (size - 1)):
        raise ValueError(f"length {n} does not fit a {size}-byte BER length")
    return bytes([0x80 | (size - 1)]) + n.to_bytes(size - 1, "big")


def read_ber(data: bytes, pos: int) -> tuple[int, int]:
    """(length, position after the length field) of the BER length at ``pos``."""
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count == 0 or count > 8:
        raise ValueError(f"unsupported BER length form 0x{first:02x} at byte {pos}")
    return int.from_bytes(data[pos + 1:pos + 1 + count], "big"), pos + 1 + count


def klv(key: bytes, value: bytes) -> bytes:
    """One KLV triplet with a 4-byte BER length."""
    assert len(key) == 16
    return key + ber_length(len(value)) + value


@dataclass(frozen=True)
class KLVPacket:
    """A KLV triplet located in a file: ``offset`` of the key, ``value_offset`` and ``length`` of the value."""

    key: bytes
    offset: int
    value_offset: int
    length: int

    @property
    def end(self) -> int:
        return self.value_offset + self.length


def read_klv_at(f: BinaryIO, offset: int) -> KLVPacket | None:
    """The KLV header at ``offset`` (None at end of file or on a truncated key/length)."""
    f.seek(offset)
    head = f.read(25)
    if len(head) < 17:
        return None
    try:
        length, after = read_ber(head, 16)
    except (ValueError, IndexError):
        return None
    return KLVPacket(bytes(head[:16]), offset, offset + after, length)


def iter_klv(f: BinaryIO, start: int = 0, stop: int | None = None) -> Iterator[KLVPacket]:
    """Walk the KLV triplets from ``start`` (values are not read, only skipped)."""
    pos = start
    while stop is None or pos < stop:
        pkt = read_klv_at(f, pos)
        if pkt is None:
            return
        yield pkt
        pos = pkt.end


def u8(v: int) -> bytes:
    return struct.pack(">B", v)


def u16(v: int) -> bytes:
    return struct.pack(">H", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def u64(v: int) -> bytes:
    return struct.pack(">Q", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def rational(r: Fraction) -> bytes:
    """ST 377-1 Rational: int32 numerator, int32 denominator."""
    return struct.pack(">ii", r.numerator, r.denominator)


def read_rational(b: bytes) -> Fraction:
    num, den = struct.unpack(">ii", b[:8])
    return Fraction(num, den) if den else Fraction(0)


def timestamp(when: datetime | None = None) -> bytes:
    """ST 377-1 TimeStamp: year u16, month, day, hour, minute, second, quarter-milliseconds (u8 each)."""
    t = (when or datetime.now(UTC)).astimezone(UTC)
    return struct.pack(">HBBBBBB", t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond // 4000)


def utf16(text: str) -> bytes:
    """ST 377-1 UTF-16 strings are big-endian, no byte-order mark, no terminator."""
    return text.encode("utf-16-be")


def read_utf16(b: bytes) -> str:
    return b.decode("utf-16-be", errors="replace").rstrip("\x00")


def batch(items: Iterable[bytes], item_size: int) -> bytes:
    """ST 377-1 §4.3 Batch/Array: u32 count, u32 item size, then the items."""
    items = list(items)
    assert all(len(i) == item_size for i in items)
    return u32(len(items)) + u32(item_size) + b"".join(items)


def read_batch(b: bytes) -> list[bytes]:
    count, size = struct.unpack(">II", b[:8])
    return [b[8 + i * size: 8 + (i + 1) * size] for i in range(count)]


def uuid_bytes(u: uuid.UUID) -> bytes:
    return u.bytes


#: Basic UMID label (SMPTE ST 330 §5.1.1: universal label, material type "not identified", UUID/UL
#: material number method) + length 0x13 + instance number 0.
_UMID_PREFIX = bytes.fromhex("060a2b340101010501010f20") + bytes([0x13, 0x00, 0x00, 0x00])
ZERO_UMID = bytes(32)


def umid_for(material: uuid.UUID) -> bytes:
    """A 32-byte basic UMID whose material number is ``material`` (how track files carry their asset id)."""
    return _UMID_PREFIX + material.bytes


def local_set(key: bytes, items: Iterable[tuple[int, bytes]]) -> bytes:
    """A local set (ST 377-1 §9.6): 2-byte tag, 2-byte length, value per item."""
    body = b"".join(u16(tag) + u16(len(value)) + value for tag, value in items)
    return klv(key, body)


def parse_local_set(value: bytes) -> dict[int, bytes]:
    """Tag -> value of a local set's value bytes."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 4 <= len(value):
        tag, length = struct.unpack(">HH", value[pos:pos + 4])
        out[tag] = value[pos + 4:pos + 4 + length]
        pos += 4 + length
    return out
