"""Tiny generated masters for the QC tests: synth picture + mixes married with one ffmpeg run.

Defects the generator does not make (out-of-gamut, phase inversion, silent centre, interlaced
content, a wrong frame-rate tag) are made here by post-processing generated media.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from specs.timecode import Timecode
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.synth import SampleSet, make_sample_set

RATE = Fraction(25)
FFOA = Timecode.parse("01:00:00:00", RATE)


def sample_set(out: Path, defects: Sequence[Any] = (), **kwargs: Any) -> SampleSet:
    """320x180 25p ProRes HQ, 4 s head + 4 s programme, 5.1 + 2.0 mixes (the demo spec's shape)."""
    return make_sample_set(out, layout="5.1", stereo=True, defects=defects, **kwargs)


def marry(picture: Path, mixes: Sequence[Path], out: Path, *, start_tc: str = "00:59:56:00",
          extra: Sequence[str] = ()) -> Path:
    """Picture stream copy + one PCM 24-bit track per mix, timecode track at ``start_tc``."""
    args: list[str] = ["-y", "-i", str(picture)]
    for m in mixes:
        args += ["-i", str(m)]
    args += ["-map", "0:v:0"] + [x for i in range(len(mixes)) for x in ("-map", f"{i + 1}:a:0")]
    args += ["-c:v", "copy", "-c:a", "pcm_s24le", "-timecode", start_tc, *extra, "-f", "mov", str(out)]
    run_ffmpeg(args, what="test layback")
    return out


def married_set(out: Path, defects: Sequence[Any] = ()) -> tuple[SampleSet, Path]:
    media = sample_set(out / "media", defects)
    return media, marry(media.master, [media.mixes["5.1"], media.mixes["2.0"]], out / "married.mov")


def reencode(src: Path, dst: Path, filter_complex: str, *, inputs: Sequence[str] = (), rate: str = "25",
             start_tc: str = "00:59:56:00", field_order: str = "progressive") -> Path:
    """Re-encode a picture master through a filter graph ([0:v] in, [v] out), keeping its tags."""
    args = ["-y", "-i", str(src), *inputs, "-filter_complex", filter_complex, "-map", "[v]", "-an",
            "-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0", "-pix_fmt", "yuv422p10le",
            "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv",
            "-field_order", field_order, "-r", rate, "-timecode", start_tc, "-f", "mov", str(dst)]
    run_ffmpeg(args, what="test picture defect")
    return dst


def edit_mix(src: Path, dst: Path, fn) -> Path:
    """Rewrite a mix with ``fn(samples [n, ch] int32, sample_rate) -> samples`` (24-bit WAV)."""
    data, sr = sf.read(str(src), dtype="int32", always_2d=True)
    sf.write(str(dst), fn(data.copy(), sr), sr, subtype="PCM_24")
    return dst


def frames(tc: str) -> int:
    return Timecode.parse(tc, RATE).frames


def within_one_frame(got: str | None, want: str) -> bool:
    return got is not None and abs(frames(got) - frames(want)) <= 1


def tc_at(seconds_after_ffoa: float) -> str:
    return str(FFOA + round(seconds_after_ffoa * RATE))


__all__ = ["RATE", "sample_set", "marry", "married_set", "reencode", "edit_mix", "frames", "within_one_frame",
           "tc_at", "np"]


def break_timecode(src: Path, dst: Path, at_frame: int, jump_to: str | None, *, rate: Fraction = RATE) -> Path:
    """Copy a QuickTime master whose ``tmcd`` track is one sample, splitting it into two samples at
    ``at_frame``: the second labelled ``jump_to`` (a break) or, when None, the continuing label (a
    continuous two-sample track, as an editing system writes one).

    ffmpeg always writes a single-sample timecode track, so the boxes are rewritten here: the
    tmcd ``stts``/``stsz``/``stsc``/``stco`` get two samples and the new 4-byte sample is appended
    in its own ``mdat`` after ``moov`` (which ffmpeg writes after the media, so no offset moves).
    """
    import io
    import struct

    from tasks.qc.tmcd import iter_boxes

    data = bytearray(Path(src).read_bytes())
    f = io.BytesIO(bytes(data))
    top = list(iter_boxes(f, 0, len(data)))
    moov = next(b for b in top if b.kind == b"moov")
    assert moov.end == len(data), "moov must be last (ffmpeg without +faststart)"
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}

    def body(b):
        return bytes(data[b.body:b.end])

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    def is_tmcd(trak) -> bool:
        def find(b, *path):
            for k in path:
                b = next((c for c in iter_boxes(f, b.body, b.end) if c.kind == k), None)
                if b is None:
                    return None
            return b
        h = find(trak, b"mdia", b"hdlr")
        return h is not None and data[h.body + 8:h.body + 12] == b"tmcd"

    new_offset_placeholder = 0xDEADBEEF
    label_at = {"first": None, "fd": None}

    def rebuild(b, in_tmcd: bool) -> bytes:
        if b.kind in containers:
            tmcd = in_tmcd or (b.kind == b"trak" and is_tmcd(b))
            return box(b.kind, b"".join(rebuild(c, tmcd) for c in iter_boxes(f, b.body, b.end)))
        if not in_tmcd:
            return bytes(data[b.offset:b.end])
        raw = body(b)
        if b.kind == b"stsd":
            label_at["fd"] = struct.unpack_from(">I", raw, 8 + 28)[0]
            return bytes(data[b.offset:b.end])
        if b.kind == b"stts":
            n, d = struct.unpack_from(">II", raw, 8)
            assert struct.unpack_from(">I", raw, 4)[0] == 1 and n == 1, "expected a one-sample tmcd track"
            fd = label_at["fd"]  # frame duration (ffmpeg: media time scale = tmcd time scale)
            return box(b"stts", raw[:4] + struct.pack(">III", 2, 1, at_frame * fd)
                       + struct.pack(">II", 1, d - at_frame * fd))
        if b.kind == b"stsz":
            return box(b"stsz", raw[:4] + struct.pack(">II", 4, 2))
        if b.kind == b"stsc":
            return box(b"stsc", raw[:4] + struct.pack(">IIII", 1, 1, 1, 1))
        if b.kind == b"stco":
            first = struct.unpack_from(">I", raw, 8)[0]
            label_at["first"] = struct.unpack(">i", bytes(data[first:first + 4]))[0]
            return box(b"stco", raw[:4] + struct.pack(">III", 2, first, new_offset_placeholder))
        return bytes(data[b.offset:b.end])

    new_moov = rebuild(moov, False)
    extra_at = moov.offset + len(new_moov) + 8
    assert new_moov.count(struct.pack(">I", new_offset_placeholder)) == 1
    new_moov = new_moov.replace(struct.pack(">I", new_offset_placeholder), struct.pack(">I", extra_at))
    second = (Timecode.parse(jump_to, rate).frames if jump_to is not None else label_at["first"] + at_frame)
    out = bytes(data[:moov.offset]) + new_moov + box(b"mdat", struct.pack(">i", second))
    Path(dst).write_bytes(out)
    return Path(dst)


__all__ += ["break_timecode"]


# ST 2086 mastering display of a P3-D65 1000 cd/m2 grading monitor (x265 syntax, 0.00002 / 0.0001 units)
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"


def pq_code(nits: float | np.ndarray) -> np.ndarray:
    """10-bit limited-range luma code of a neutral PQ (SMPTE ST 2084) signal at ``nits`` cd/m2."""
    import colour.models as cm

    return np.round(64 + 876 * np.asarray(cm.eotf_inverse_ST2084(nits))).astype(np.uint16)


def pq_nits(code: int | np.ndarray) -> np.ndarray:
    """Display light of a neutral 10-bit limited-range PQ luma code (what a meter must find)."""
    import colour.models as cm

    return np.asarray(cm.eotf_ST2084((np.asarray(code, float) - 64) / 876))


def pq_master(out: Path, *, background_nits: float, patch_nits: float, patch_px: int, frames: int,
              patch_from: int, max_cll: tuple[int, int] | None, size: tuple[int, int] = (320, 180),
              patch_xy: tuple[int, int] = (0, 0), start_tc: str = "01:00:00:00") -> Path:
    """A tiny HDR10 master: neutral background at ``background_nits``, a square patch at
    ``patch_nits`` from frame ``patch_from`` on; HEVC Main 10 lossless (x265), BT.2020/PQ tagged,
    ST 2086 mastering display and, when given, MaxCLL/MaxFALL = ``max_cll`` in the SEI."""
    w, h = size
    y = np.empty((h, w), np.uint16)
    c = np.full((2, h // 2, w // 2), 512, np.uint16)
    raw = bytearray()
    for n in range(frames):
        y[:] = pq_code(background_nits)
        if n >= patch_from:
            x0, y0 = patch_xy
            y[y0:y0 + patch_px, x0:x0 + patch_px] = pq_code(patch_nits)
        raw += y.astype("<u2").tobytes() + c.astype("<u2").tobytes()
    src = out.with_suffix(".yuv")
    src.write_bytes(bytes(raw))
    params = f"lossless=1:log-level=error:master-display={MASTER_DISPLAY}"
    if max_cll is not None:
        params += f":max-cll={max_cll[0]},{max_cll[1]}"
    run_ffmpeg(["-y", "-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{w}x{h}", "-r", "25", "-i", str(src),
                "-c:v", "libx265", "-x265-params", params, "-tag:v", "hvc1",
                "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
                "-color_range", "tv", "-timecode", start_tc, "-f", "mov", str(out)], what="test PQ master")
    src.unlink()
    return out


__all__ += ["MASTER_DISPLAY", "pq_code", "pq_nits", "pq_master"]
