"""QuickTime/ISO-BMFF timecode tracks (``tmcd``) read sample by sample, for timecode continuity.

ffprobe reports only the first timecode of a track (``tags.timecode``). A ``tmcd`` track stores
its timecode as samples: each sample is a 4-byte big-endian frame number (frames since 00:00:00:00
at the track's nominal frame rate; for drop-frame the count of real frames), valid for the
sample's duration (``stts``, in media time units; one frame lasts ``frameDuration`` units of the
``tmcd`` sample description's time scale). A continuous timecode is one sample, or several whose
frame numbers each equal the previous one plus the frames it covered. An edit list (``elst``) can
also cut or repeat media; each edit is followed here in presentation order.

References: Apple, *QuickTime File Format Specification*, "Timecode Sample Description" and
"Time-to-Sample Atoms"; ISO/IEC 14496-12 (stts, stsz, stsc, stco/co64, elst).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

__all__ = ["TimecodeRun", "TimecodeTrack", "read_timecode_tracks", "Box", "iter_boxes"]

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


@dataclass(frozen=True)
class Box:
    """One box: type, absolute offset of its header, header size and total size in bytes."""

    kind: bytes
    offset: int
    header: int
    size: int

    @property
    def body(self) -> int:
        return self.offset + self.header

    @property
    def end(self) -> int:
        return self.offset + self.size


def iter_boxes(f: BinaryIO, start: int, end: int) -> Iterator[Box]:
    """The boxes between ``start`` and ``end`` (one level; 64-bit and to-end-of-file sizes handled)."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        header = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return  # truncated or corrupt: stop rather than read garbage
        yield Box(kind, pos, header, size)
        pos += size


def _child(f: BinaryIO, box: Box, kind: bytes) -> Box | None:
    return next((b for b in iter_boxes(f, box.body, box.end) if b.kind == kind), None)


def _path(f: BinaryIO, box: Box, *kinds: bytes) -> Box | None:
    cur: Box | None = box
    for k in kinds:
        if cur is None:
            return None
        cur = _child(f, cur, k)
    return cur


def _read(f: BinaryIO, box: Box) -> bytes:
    f.seek(box.body)
    return f.read(box.size - box.header)


@dataclass(frozen=True)
class TimecodeRun:
    """``frames`` picture frames from ``presentation_frame`` on, labelled from ``first_label`` up.

    ``first_label`` is the frame number the timecode track shows (frames since midnight), or None
    for an empty edit (no timecode at all)."""

    presentation_frame: int
    frames: int
    first_label: int | None


@dataclass(frozen=True)
class TimecodeTrack:
    """One ``tmcd`` track: nominal rate, flags and its runs in presentation order."""

    track_id: int
    timescale: int
    frame_duration: int
    nominal_fps: int
    drop_frame: bool
    runs: tuple[TimecodeRun, ...]

    def breaks(self) -> list[tuple[int, int | None, int | None]]:
        """Discontinuities as ``(presentation_frame, expected_label, actual_label)``.

        Consecutive runs that continue each other (label + frames == next label) are one clean run;
        a run that starts elsewhere, or an empty edit, is a break at its first frame."""
        out: list[tuple[int, int | None, int | None]] = []
        for prev, cur in pairwise(self.runs):
            want = None if prev.first_label is None else prev.first_label + prev.frames
            if cur.first_label is None or want is None or cur.first_label != want:
                if cur.first_label is None and prev.first_label is None:
                    continue  # one gap split over two empty edits
                out.append((cur.presentation_frame, want, cur.first_label))
        return out

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.runs)


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from(">I", data, at)[0]


def _full_box_entries(data: bytes) -> tuple[int, int]:
    """(version, entry count) of a full box with a count after version/flags."""
    return data[0], _u32(data, 4)


def _sample_offsets(f: BinaryIO, stbl: Box, count: int) -> list[int]:
    """Absolute file offset of each sample from stsc, stco/co64 and stsz."""
    stsz = _child(f, stbl, b"stsz")
    stsc = _child(f, stbl, b"stsc")
    stco = _child(f, stbl, b"stco") or _child(f, stbl, b"co64")
    if stsz is None or stsc is None or stco is None:
        return []
    sz = _read(f, stsz)
    fixed, n_sizes = _u32(sz, 4), _u32(sz, 8)
    sizes = [fixed] * count if fixed else [_u32(sz, 12 + 4 * i) for i in range(min(n_sizes, count))]
    co = _read(f, stco)
    n_chunks = _u32(co, 4)
    if stco.kind == b"co64":
        chunks = [struct.unpack_from(">Q", co, 8 + 8 * i)[0] for i in range(n_chunks)]
    else:
        chunks = [_u32(co, 8 + 4 * i) for i in range(n_chunks)]
    sc = _read(f, stsc)
    entries = [struct.unpack_from(">III", sc, 8 + 12 * i) for i in range(_u32(sc, 4))]
    offsets: list[int] = []
    sample = 0
    for i, (first_chunk, per_chunk, _desc) in enumerate(entries):
        last = entries[i + 1][0] - 1 if i + 1 < len(entries) else n_chunks
        for chunk in range(first_chunk, last + 1):
            pos = chunks[chunk - 1]
            for _ in range(per_chunk):
                if sample >= count or sample >= len(sizes):
                    return offsets
                offsets.append(pos)
                pos += sizes[sample]
                sample += 1
    return offsets


def _tmcd_track(f: BinaryIO, trak: Box, movie_timescale: int) -> TimecodeTrack | None:
    hdlr = _path(f, trak, b"mdia", b"hdlr")
    if hdlr is None or _read(f, hdlr)[8:12] != b"tmcd":
        return None
    tkhd = _child(f, trak, b"tkhd")
    track_id = 0
    if tkhd is not None:
        head = _read(f, tkhd)
        track_id = _u32(head, 20 if head[0] == 1 else 12)
    stbl = _path(f, trak, b"mdia", b"minf", b"stbl")
    mdhd = _path(f, trak, b"mdia", b"mdhd")
    if stbl is None or mdhd is None:
        return None
    md = _read(f, mdhd)
    media_timescale = _u32(md, 20 if md[0] == 1 else 12)
    stsd = _read(f, _child(f, stbl, b"stsd") or Box(b"", 0, 0, 0))
    # stsd: version/flags, count, then the entry: size, 'tmcd', 6 reserved, dref index (2),
    # reserved (4), flags (4), time scale (4), frame duration (4), number of frames (1).
    if len(stsd) < 8 + 34 or stsd[12:16] != b"tmcd":
        return None
    flags, timescale, frame_duration = struct.unpack_from(">III", stsd, 8 + 20)
    nominal = stsd[8 + 32]
    if not frame_duration or not timescale:
        return None
    stts = _child(f, stbl, b"stts")
    if stts is None:
        return None
    st = _read(f, stts)
    durations: list[int] = []
    for i in range(_u32(st, 4)):
        n, d = struct.unpack_from(">II", st, 8 + 8 * i)
        durations += [d] * n
    offsets = _sample_offsets(f, stbl, len(durations))
    labels: list[int] = []
    for off in offsets:
        f.seek(off)
        raw = f.read(4)
        labels.append(struct.unpack(">i", raw)[0] if len(raw) == 4 else 0)
    # Media time of each sample -> (start, end, label), in media time units.
    # frames covered by media time t: t * timescale / (media_timescale * frame_duration)
    samples: list[tuple[int, int, int]] = []
    t = 0
    for d, label in zip(durations, labels, strict=False):  # a short sample table ends the labels
        samples.append((t, t + d, label))
        t += d
    media_end = t

    def to_frames(media_units: int) -> int:
        return round(media_units * timescale / (media_timescale * frame_duration))

    edits: list[tuple[int, int]] = []  # (duration in media units, media start or -1)
    elst = _path(f, trak, b"edts", b"elst")
    if elst is not None:
        el = _read(f, elst)
        version, count = _full_box_entries(el)
        for i in range(count):
            if version == 1:
                seg, mt = struct.unpack_from(">Qq", el, 8 + 20 * i)
            else:
                seg, mt = struct.unpack_from(">Ii", el, 8 + 12 * i)
            edits.append((round(seg * media_timescale / movie_timescale), mt))
    if not edits:
        edits = [(media_end, 0)]
    runs: list[TimecodeRun] = []
    pres = 0
    for seg, mt in edits:
        n_frames = to_frames(seg)
        if mt < 0:
            runs.append(TimecodeRun(pres, n_frames, None))
            pres += n_frames
            continue
        lo, hi = mt, mt + seg
        for s, e, label in samples:
            a, b = max(s, lo), min(e, hi)
            if b <= a:
                continue
            n = to_frames(b - s) - to_frames(a - s)
            if n > 0:
                runs.append(TimecodeRun(pres, n, label + to_frames(a - s)))
                pres += n
    return TimecodeTrack(track_id=track_id, timescale=timescale, frame_duration=frame_duration,
                         nominal_fps=nominal, drop_frame=bool(flags & 1), runs=tuple(runs))


def read_timecode_tracks(path: str | Path) -> list[TimecodeTrack]:
    """Every ``tmcd`` track of a QuickTime/MP4 file (empty list when there is none or no moov).

    Only the ``moov`` box and the few 4-byte timecode samples are read, never the media."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        moov = next((b for b in iter_boxes(f, 0, size) if b.kind == b"moov"), None)
        if moov is None:
            return []
        mvhd = _child(f, moov, b"mvhd")
        movie_timescale = 600
        if mvhd is not None:
            d = _read(f, mvhd)
            movie_timescale = _u32(d, 20 if d[0] == 1 else 12) or 600
        tracks = []
        for trak in iter_boxes(f, moov.body, moov.end):
            if trak.kind == b"trak":
                t = _tmcd_track(f, trak, movie_timescale)
                if t is not None:
                    tracks.append(t)
        return tracks
