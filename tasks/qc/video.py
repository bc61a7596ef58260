"""Picture analysis from ONE decode of the master.

ffmpeg decodes the video stream to raw frames in its native pixel format (no scaling, no format
conversion for the common planar YUV formats, so the pipe costs little beyond the decode) and
numpy computes per-frame statistics. Interval detectors then turn the per-frame series into
findings with frame-exact in/out points.

Thresholds follow ffmpeg's blackdetect/freezedetect defaults and EBU R 103 code-value limits,
scaled to the stream's bit depth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from specs.errors import MediaError
from tasks.media.ffmpeg import open_ffmpeg_pipe
from tasks.media.probe import MediaInfo, VideoStream

__all__ = ["PictureSeries", "Interval", "analyse_picture", "runs", "BLACK_PIXEL_THRESHOLD", "BLACK_PICTURE_RATIO"]

BLACK_PIXEL_THRESHOLD = 0.10  # share of the nominal luma range above black (blackdetect pix_th)
BLACK_PICTURE_RATIO = 0.98  # share of black pixels for a black picture (blackdetect pic_th)
FREEZE_NOISE = 0.001  # mean |diff| as a share of the code range (freezedetect n=-60 dB)
# EBU R 103 / EBU QC 0051B: signal may go 5 % of the nominal range beyond black and white.
R103_MARGIN = 0.05

# chroma plane size as (width divisor, height divisor) for planar YUV formats
_CHROMA_DIV = {"420": (2, 2), "422": (2, 1), "444": (1, 1), "440": (1, 2), "411": (4, 1)}


@dataclass(frozen=True)
class Interval:
    """Frames ``[start, end)`` of the stream; ``end`` is exclusive."""

    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class PictureSeries:
    """Per-frame statistics of one video stream (small: a few floats per frame)."""

    rate: Fraction
    bit_depth: int
    luma_mean: np.ndarray  # normalised 0..1 over the full code range
    black_share: np.ndarray  # share of pixels at or below the black threshold
    illegal_share: np.ndarray  # share of luma/chroma samples outside the R 103 range
    diff_to_previous: np.ndarray  # mean |Y - Y_prev| / code range; frame 0 is +inf

    @property
    def frame_count(self) -> int:
        return int(self.luma_mean.size)


def _layout(v: VideoStream) -> tuple[str, int, tuple[int, int]]:
    """(raw pix_fmt to request, bit depth, chroma divisors) for a stream."""
    pix = v.pix_fmt or ""
    depth = v.bit_depth or 8
    for key, div in _CHROMA_DIV.items():
        if pix.startswith(f"yuv{key}p") or pix.startswith(f"yuvj{key}p"):
            if depth <= 8:
                return pix.replace("yuvj", "yuv"), 8, div
            return f"yuv{key}p{depth}le" if depth in (9, 10, 12, 14, 16) else f"yuv{key}p16le", depth, div
    # Anything else (RGB, packed, alpha): convert once to 4:4:4 16-bit so the numbers stay exact.
    return "yuv444p16le", 16, (1, 1)


def analyse_picture(
    info: MediaInfo,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> PictureSeries:
    """Decode the primary video stream once and return per-frame statistics.

    Args:
        info: probe result of the master.
        progress: called as ``progress(frames_done, frames_expected)`` about once a second.

    Raises:
        MediaError: the file has no video stream or cannot be decoded.
    """
    v = info.primary_video
    if v is None:
        raise MediaError(f"{info.path} has no video stream; picture QC needs a picture master")
    pix_fmt, depth, (cw, ch) = _layout(v)
    w, h = v.width, v.height
    dtype = np.uint8 if depth <= 8 else np.dtype("<u2")
    itemsize = np.dtype(dtype).itemsize
    y_size = w * h
    c_size = (w // cw) * (h // ch)
    frame_bytes = (y_size + 2 * c_size) * itemsize
    full = float((1 << depth) - 1)
    scale = 1 << (depth - 8)
    black, white, cmax = 16 * scale, 235 * scale, 240 * scale
    black_thr = black + BLACK_PIXEL_THRESHOLD * (white - black)
    y_lo, y_hi = black - R103_MARGIN * (white - black), white + R103_MARGIN * (white - black)
    c_lo, c_hi = black - R103_MARGIN * (cmax - black), cmax + R103_MARGIN * (cmax - black)
    expected = v.frame_count or (round((info.duration_s or 0) * float(v.frame_rate)) if info.duration_s else 0)

    luma, blacks, illegal, diffs = [], [], [], []
    prev: np.ndarray | None = None
    args = ["-i", info.path, "-map", f"0:{v.index}", "-an", "-sn", "-dn",
            "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    with open_ffmpeg_pipe(args, what=f"decode of {info.path}") as pipe:
        n = 0
        while True:
            buf = pipe.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            frame = np.frombuffer(buf, dtype=dtype)
            y = frame[:y_size]
            c = frame[y_size:]
            luma.append(float(y.mean()) / full)
            blacks.append(float(np.count_nonzero(y <= black_thr)) / y_size)
            bad = np.count_nonzero((y < y_lo) | (y > y_hi)) + np.count_nonzero((c < c_lo) | (c > c_hi))
            illegal.append(bad / float(y_size + 2 * c_size))
            # Freeze: compare a quarter-resolution luma grid; identical frames give exactly 0.
            ys = y.reshape(h, w)[::2, ::2].astype(np.int32)
            diffs.append(float("inf") if prev is None else float(np.abs(ys - prev).mean()) / full)
            prev = ys
            n += 1
            if progress is not None and n % 25 == 0:
                progress(n, expected)
    if not luma:
        raise MediaError(f"no frames could be decoded from {info.path}; the picture may be corrupt")
    if progress is not None:
        progress(len(luma), len(luma))
    return PictureSeries(rate=v.frame_rate, bit_depth=depth, luma_mean=np.asarray(luma),
                         black_share=np.asarray(blacks), illegal_share=np.asarray(illegal),
                         diff_to_previous=np.asarray(diffs))


def runs(mask: np.ndarray, min_frames: int = 1) -> list[Interval]:
    """Maximal runs of True in ``mask`` at least ``min_frames`` long."""
    m = np.asarray(mask, dtype=bool)
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], m.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [Interval(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= max(1, min_frames)]
