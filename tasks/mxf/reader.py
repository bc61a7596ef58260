"""Reading MXF track files (SMPTE ST 377-1): header metadata, descriptors, index tables and essence.

Written for verification of D-Cinema track files (ST 429-3/-4) and general enough for the IMF track
files of ST 2067-5 (OP1a, essence in body partitions): the whole file is walked once as KLV, the header
metadata is taken from the header partition, every index table segment and essence element is listed
in file order, and frames are read on demand (nothing large is kept in memory).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from specs.errors import MediaError
from tasks.mxf import klv
from tasks.mxf.labels import ITEM_BY_UL, KEY, STATIC_TAGS, UL, is_essence_key, is_partition_key

__all__ = ["MetadataSet", "Partition", "TrackFile", "read_track"]

_KEY_NAMES = {v: k for k, v in KEY.items()}
_METADATA_PREFIX = bytes.fromhex("060e2b34025301010d01010101")


@dataclass
class MetadataSet:
    """One header metadata local set: its kind (KEY name, or the key hex when unknown) and items by name."""

    kind: str
    items: dict[str, bytes]

    def get(self, name: str) -> bytes | None:
        return self.items.get(name)

    def uint(self, name: str, default: int = 0) -> int:
        v = self.items.get(name)
        return int.from_bytes(v, "big") if v else default

    def rational(self, name: str) -> Fraction | None:
        v = self.items.get(name)
        return klv.read_rational(v) if v else None

    def text(self, name: str) -> str:
        v = self.items.get(name)
        return klv.read_utf16(v) if v else ""

    def refs(self, name: str) -> list[bytes]:
        v = self.items.get(name)
        return klv.read_batch(v) if v else []


@dataclass(frozen=True)
class Partition:
    kind: str  # header | body | footer
    offset: int
    header_byte_count: int
    index_byte_count: int
    index_sid: int
    body_sid: int
    footer_offset: int
    operational_pattern: bytes


@dataclass(frozen=True)
class EditUnit:
    """Where one edit unit's essence bytes are: a frame-wrapped KLV's value, or a slice of a clip."""

    offset: int
    length: int


@dataclass
class TrackFile:
    """A parsed track file. ``duration`` is the descriptor's ContainerDuration; ``frame_count`` what is there."""

    path: Path
    partitions: list[Partition]
    sets: dict[bytes, MetadataSet]
    essence: list[klv.KLVPacket]
    index_entries: list[int]  # VBR stream offsets, in edit-unit order
    index_edit_unit_bytes: int  # CBR edit unit size (0 when VBR)
    index_duration: int
    has_rip: bool
    kind: str = ""
    descriptor: MetadataSet = field(default_factory=lambda: MetadataSet("", {}))
    subdescriptors: list[MetadataSet] = field(default_factory=list)
    asset_id: uuid.UUID | None = None
    material_package_umid: bytes = b""
    file_package_umid: bytes = b""
    edit_units: Sequence[EditUnit] = field(default_factory=list)
    sequence_duration: int = 0

    @property
    def operational_pattern(self) -> bytes:
        return self.partitions[0].operational_pattern if self.partitions else b""

    @property
    def edit_rate(self) -> Fraction:
        return self.descriptor.rational("SampleRate") or Fraction(0)

    @property
    def duration(self) -> int:
        """ContainerDuration (ST 377-1 file descriptor), else the essence track's sequence duration."""
        return self.descriptor.uint("ContainerDuration") or self.sequence_duration

    @property
    def frame_count(self) -> int:
        """Edit units present: one per essence KLV when frame-wrapped, per index entry in a clip."""
        return len(self.edit_units)

    @property
    def clip_wrapped(self) -> bool:
        return len(self.essence) == 1 and max(self.index_duration, self.duration) > 1

    @property
    def essence_container(self) -> bytes:
        return self.descriptor.get("EssenceContainer") or b""

    @property
    def stored_size(self) -> tuple[int, int]:
        return self.descriptor.uint("StoredWidth"), self.descriptor.uint("StoredHeight")

    @property
    def channel_count(self) -> int:
        return self.descriptor.uint("ChannelCount")

    @property
    def quantization_bits(self) -> int:
        return self.descriptor.uint("QuantizationBits")

    @property
    def audio_sample_rate(self) -> Fraction | None:
        return self.descriptor.rational("AudioSamplingRate")

    def mca_labels(self) -> list[tuple[str, str]]:
        """(kind, tag symbol) of every MCA sub-descriptor, in order (soundfield groups and channels)."""
        return [(s.kind, s.text("MCATagSymbol")) for s in self.subdescriptors if s.get("MCATagSymbol")]

    def frame(self, n: int) -> bytes:
        """The essence bytes of edit unit ``n`` (one frame)."""
        unit = self.edit_units[n]
        with open(self.path, "rb") as f:
            f.seek(unit.offset)
            return f.read(unit.length)

    def iter_frames(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            for unit in self.edit_units:
                f.seek(unit.offset)
                yield f.read(unit.length)


def _partition(kind: str, offset: int, value: bytes) -> Partition:
    (_maj, _min, _kag, _this, _prev, footer, hbc, ibc, isid, _bo, bsid) = struct.unpack(">HHIQQQQQIQI", value[:64])
    return Partition(kind, offset, hbc, ibc, isid, bsid, footer, value[64:80])


def _parse_metadata(data: bytes) -> dict[bytes, MetadataSet]:
    tags = dict(STATIC_TAGS)
    sets: dict[bytes, MetadataSet] = {}
    pos = 0
    while pos + 17 <= len(data):
        key = data[pos:pos + 16]
        length, start = klv.read_ber(data, pos + 16)
        value = data[start:start + length]
        pos = start + length
        if key == KEY["primer"]:
            for entry in klv.read_batch(value):
                tag = int.from_bytes(entry[:2], "big")
                name = ITEM_BY_UL.get(bytes(entry[2:18]))
                if name:
                    tags[tag] = name
        elif key[:13] == _METADATA_PREFIX:
            raw = klv.parse_local_set(value)
            items = {tags.get(t, f"tag_{t:04x}"): v for t, v in raw.items()}
            uid = items.get("InstanceUID")
            if uid:
                sets[bytes(uid)] = MetadataSet(_KEY_NAMES.get(bytes(key), key.hex()), items)
    return sets


def _index(value: bytes) -> tuple[int, int, int, list[int]]:
    """(start, duration, edit unit byte count, stream offsets) of an index table segment."""
    raw = klv.parse_local_set(value)
    start = int.from_bytes(raw.get(0x3F0C, b"\0"), "big")
    duration = int.from_bytes(raw.get(0x3F0D, b"\0"), "big")
    eubc = int.from_bytes(raw.get(0x3F05, b"\0"), "big")
    entries = raw.get(0x3F0A)
    offsets = []
    if entries:
        count, size = struct.unpack(">II", entries[:8])
        for i in range(count):
            e = entries[8 + i * size: 8 + (i + 1) * size]
            offsets.append(struct.unpack(">Q", e[3:11])[0])
    return start, duration, eubc, offsets


def read_track(path: Path) -> TrackFile:
    """Parse ``path``. Raises MediaError if it is not an MXF file or has no readable header metadata."""
    path = Path(path)
    partitions: list[Partition] = []
    essence: list[klv.KLVPacket] = []
    sets: dict[bytes, MetadataSet] = {}
    segments: list[tuple[int, int, int, list[int]]] = []
    has_rip = False
    size = path.stat().st_size
    # Unbuffered: the walk reads 25 bytes of key and length a packet and skips the value; a buffered file
    # would read 8 KiB at each, a second read of much of a sound track's essence.
    with open(path, "rb", buffering=0) as f:
        for pkt in klv.iter_klv(f):
            if pkt.end > size:
                if is_essence_key(pkt.key):
                    raise MediaError(f"{path.name}: truncated: essence at byte {pkt.offset} runs past the end")
                break
            key = pkt.key
            if is_partition_key(key):
                f.seek(pkt.value_offset)
                kind = {2: "header", 3: "body", 4: "footer"}[key[13]]
                value = f.read(pkt.length)
                if len(value) < 80:
                    raise MediaError(f"{path.name}: partition pack at byte {pkt.offset} is too short")
                part = _partition(kind, pkt.offset, value)
                partitions.append(part)
                if kind == "header" and part.header_byte_count:
                    sets = _parse_metadata(f.read(part.header_byte_count))
            elif key == KEY["index_segment"]:
                f.seek(pkt.value_offset)
                segments.append(_index(f.read(pkt.length)))
            elif is_essence_key(key):
                essence.append(pkt)
            elif key == KEY["rip"]:
                has_rip = True
    if not partitions or partitions[0].kind != "header":
        raise MediaError(f"{path.name}: not an MXF file (no header partition pack at byte 0)")
    if not sets:
        raise MediaError(f"{path.name}: no header metadata")
    track = TrackFile(path, partitions, sets, essence, [o for s in sorted(segments) for o in s[3]],
                      max((s[2] for s in segments), default=0), sum(s[1] for s in segments), has_rip)
    _resolve(track)
    return track


def _resolve(track: TrackFile) -> None:
    """Find the file (source) package with a descriptor, its sub-descriptors, and the asset id."""
    for s in track.sets.values():
        if s.kind == "material_package":
            track.material_package_umid = s.get("PackageUID") or b""
        if s.kind == "source_package" and s.get("Descriptor"):
            track.file_package_umid = s.get("PackageUID") or b""
            desc = track.sets.get(bytes(s.get("Descriptor") or b""))
            if desc is not None:
                track.descriptor = desc
                track.subdescriptors = [track.sets[r] for r in desc.refs("SubDescriptors") if r in track.sets]
    # Keep the essence of the descriptor's track only (an OP1a file may interleave several elements).
    linked = track.descriptor.uint("LinkedTrackID")
    for s in track.sets.values():
        if s.kind == "track" and s.uint("TrackID") == linked and s.uint("TrackNumber"):
            number = s.uint("TrackNumber").to_bytes(4, "big")
            if any(p.key[12:16] == number for p in track.essence):
                track.essence = [p for p in track.essence if p.key[12:16] == number]
            sequence = track.sets.get(bytes(s.get("Sequence") or b""))
            track.sequence_duration = sequence.uint("Duration") if sequence else 0
            break
    track.edit_units = _edit_units(track)
    if len(track.file_package_umid) == 32:
        track.asset_id = uuid.UUID(bytes=bytes(track.file_package_umid[16:]))
    container = track.essence_container
    track.kind = ("picture" if container == UL["jp2k_frame_wrapped"] or track.descriptor.kind == "rgba_descriptor"
                  else "sound" if container == UL["wave_frame_wrapped"] or track.descriptor.kind == "wave_descriptor"
                  else "")


class _CbrClip(Sequence[EditUnit]):
    """The edit units of a CBR clip, computed on access (an hour of sample-rate edit units is 172 million)."""

    def __init__(self, start: int, size: int, count: int) -> None:
        self.start, self.size, self.units = start, size, count

    def __len__(self) -> int:
        return self.units

    def __getitem__(self, n: int) -> EditUnit:  # type: ignore[override]  # slices are not needed
        if not -self.units <= n < self.units:
            raise IndexError(n)
        return EditUnit(self.start + (n % self.units) * self.size, self.size)


def _edit_units(track: TrackFile) -> Sequence[EditUnit]:
    """Frame-wrapped: each KLV value. Clip-wrapped (one KLV holding every edit unit, e.g. IMF audio per
    ST 2067-2): slices by the index, CBR (EditUnitByteCount) or VBR (stream offsets from the value start)."""
    if not track.clip_wrapped:
        return [EditUnit(p.value_offset, p.length) for p in track.essence]
    clip = track.essence[0]
    if track.index_edit_unit_bytes:
        size = track.index_edit_unit_bytes
        return _CbrClip(clip.value_offset, size, min(track.index_duration or track.duration, clip.length // size))
    ends = [*track.index_entries[1:], clip.length]
    return [EditUnit(clip.value_offset + start, end - start) for start, end in zip(track.index_entries, ends,
                                                                                   strict=True)]
