"""Picture analysis from ONE decode of the master.

ffmpeg decodes the video stream to raw frames in its native pixel format (no scaling, no format
conversion for the common planar YUV formats, so the pipe costs little beyond the decode) and
numpy computes per-frame statistics in this process while ffmpeg decodes the next frames (a
reader thread keeps a few frames queued; numpy releases the GIL). Interval detectors then turn
the per-frame series into findings with frame-exact in/out points.

What is exact and what is sampled (every statistic is computed on every frame, so in/out points
stay exact to the frame; only the *area* some statistics look at is thinned):

* full resolution: black share, EBU R 103 level excursions (luma and chroma planes);
* a grid of every ``grid_step``-th pixel in both directions (1/16 of the pixels at 1080p, every
  pixel at 270 lines or fewer): R'G'B' gamut share, MaxFALL (frame-average light level), freeze
  difference (quarter-size luma), bars;
* MaxCLL (PQ/HLG): exact over every pixel. The grid's brightest pixel is a lower bound; the
  frame's Y'/C extremes (already computed for the level check) give an upper bound. Only a frame
  whose upper bound exceeds the brightest light level seen so far is measured in full, and then
  cheaply: max(R',G',B') rises with Y', so per chroma site only the block's highest Y' matters
  (a block max of the luma plane, then R'G'B' at chroma resolution). The peak frame is always
  among the frames measured in full, so MaxCLL and its timecode are exact;
* interlace combing: full height (field structure must be intact), every ``2 * grid_step``-th column;
* luma mean (plots, 2-pop flash frame): the grid.

The gamut trade-off (1-in-16 at HD): every frame is analysed, so in/out points stay frame-exact;
what the grid can get wrong is the *area*. R 103 tolerates excursions on up to 1 % of the picture
(about 20 700 pixels at 1080p, about 1 300 grid samples), so a sampled share estimates that
threshold well for any excursion larger than a few grid cells: the sampling error of a share p from
n = 129 600 samples is sqrt(p(1-p)/n), 0.03 % at p = 1 %. What the grid cannot see is an
excursion narrower than the 4-pixel pitch in both directions (a thin line or a few isolated
pixels) — which R 103's 1 % area rule would not flag either. Full-resolution gamut conversion
would cost about 4x the grid pass per frame (three float planes of 2 Mpx), which the 2.5x decode
budget of the issue does not allow. Chroma is taken nearest-neighbour (no interpolation), as the
gamut check of most QC tools does; sharp colour edges in 4:2:2 can show a few tenths of a percent
of overshoot that an interpolating decoder would smooth.

Thresholds follow ffmpeg's blackdetect/freezedetect defaults and EBU R 103 code-value limits,
scaled to the stream's bit depth.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from specs.errors import MediaError
from tasks.audio.reader import prefetch
from tasks.media.ffmpeg import open_ffmpeg_pipe
from tasks.media.probe import MediaInfo, VideoStream

__all__ = ["PictureSeries", "Interval", "analyse_picture", "runs", "BLACK_PIXEL_THRESHOLD", "BLACK_PICTURE_RATIO",
           "FREEZE_NOISE", "GAMUT_TOLERANCE", "grid_step"]

BLACK_PIXEL_THRESHOLD = 0.10  # share of the nominal luma range above black (blackdetect pix_th)
BLACK_PICTURE_RATIO = 0.98  # share of black pixels for a black picture (blackdetect pic_th)
FREEZE_NOISE = 0.001  # mean |diff| as a share of the code range (freezedetect n=-60 dB)
# EBU R 103 / EBU QC 0051B: signal may go 5 % of the nominal range beyond black and white.
R103_MARGIN = 0.05
# EBU R 103 / DPP: R'G'B' may go from -5 % to 105 %.
GAMUT_TOLERANCE = 0.05
# Combing: a line differs from both neighbours (other field) in the same direction by more than this
# share of the nominal range, while the lines two away (same field) agree.
COMB_THRESHOLD = 0.04

# chroma plane size as (width divisor, height divisor) for planar YUV formats
_CHROMA_DIV = {"420": (2, 2), "422": (2, 1), "444": (1, 1), "440": (1, 2), "411": (4, 1)}
# ffprobe colour matrix tag -> colour-science YCbCr weights
_WEIGHTS = {"bt709": "ITU-R BT.709", "bt2020nc": "ITU-R BT.2020", "bt2020c": "ITU-R BT.2020",
            "smpte170m": "ITU-R BT.601", "bt470bg": "ITU-R BT.601", "smpte240m": "SMPTE-240M"}


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
    """Per-frame statistics of one video stream (small: a few numbers per frame)."""

    rate: Fraction
    bit_depth: int
    luma_mean: np.ndarray  # normalised 0..1 over the full code range
    black_share: np.ndarray  # share of pixels at or below the black threshold
    illegal_share: np.ndarray  # share of luma/chroma samples outside the R 103 range
    diff_to_previous: np.ndarray  # mean |Y - Y_prev| / code range; frame 0 is +inf
    gamut_share: np.ndarray = field(default_factory=lambda: np.zeros(0))  # grid share outside R'G'B' tolerance
    bars_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), int))  # top, bottom, left, right
    comb_share: np.ndarray = field(default_factory=lambda: np.zeros(0))  # share of samples combed across fields
    comb_ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))  # combed across / within fields
    max_nits: np.ndarray | None = None  # PQ/HLG: max(R,G,B) in cd/m2, exact on frames that could hold the peak
    mean_nits: np.ndarray | None = None  # PQ/HLG: frame-average of max(R,G,B) in cd/m2
    width: int = 0
    height: int = 0
    grid_step: int = 1
    matrix: str = "ITU-R BT.709"

    @property
    def frame_count(self) -> int:
        return int(self.luma_mean.size)


def grid_step(height: int) -> int:
    """Pixel stride of the analysis grid: 1 up to 270 lines, 4 at 1080 lines (1/16 of the pixels)."""
    return max(1, height // 270)


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


#: Kr, Kb of each matrix: ITU-R BT.709-6 item 3.2, BT.2020-2 table 4, BT.601-7 item 2.5.1, SMPTE ST 240:1999
#: (the values of colour-science's ``WEIGHTS_YCBCR``, without its 2 s import on the command line's path).
_KR_KB = {"ITU-R BT.709": (0.2126, 0.0722), "ITU-R BT.2020": (0.2627, 0.0593), "ITU-R BT.601": (0.299, 0.114),
          "SMPTE-240M": (0.2122, 0.0865)}


def _ycbcr_weights(v: VideoStream) -> tuple[str, float, float]:
    name = _WEIGHTS.get(v.color_matrix or "", "ITU-R BT.709")
    kr, kb = _KR_KB[name]
    return name, kr, kb


def _eotf(transfer: str | None) -> Callable[[np.ndarray | np.floating], np.ndarray] | None:
    """Signal 0..1 -> display light in cd/m2 for PQ and HLG (1000 cd/m2 reference display)."""
    if transfer not in ("smpte2084", "arib-std-b67"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour.models as cm
    if transfer == "smpte2084":
        return lambda x: np.asarray(cm.eotf_ST2084(x))
    return lambda x: np.asarray(cm.eotf_BT2100_HLG(x))


_PREFETCH_FRAMES = 4
# Frames in flight: queued + one being analysed + one being read; the ring is larger, so a buffer
# is never refilled while numpy still looks at it.
_RING = _PREFETCH_FRAMES + 4


def _iter_frames(info: MediaInfo, v: VideoStream, pix_fmt: str, frame_bytes: int) -> Iterator[bytearray]:
    """Raw frames read into a ring of reused buffers (no 8 MB allocation per HD frame)."""
    args = ["-i", info.path, "-map", f"0:{v.index}", "-an", "-sn", "-dn",
            "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    ring = [bytearray(frame_bytes) for _ in range(_RING)]
    with open_ffmpeg_pipe(args, what=f"decode of {info.path}") as pipe:
        _widen_pipe(pipe.fileno())
        i = 0
        while True:
            buf = ring[i % _RING]
            view = memoryview(buf)
            got = 0
            while got < frame_bytes:
                n = pipe.readinto(view[got:])
                if not n:
                    return
                got += n
            yield buf
            i += 1


def _widen_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe: an HD frame then crosses in 8 writes instead of 128 (fewer wake-ups)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default pipe works, a bit slower


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
    wc, hc = -(-w // cw), -(-h // ch)
    y_size, c_size = w * h, wc * hc
    frame_bytes = (y_size + 2 * c_size) * itemsize
    full = float((1 << depth) - 1)
    scale = 1 << (depth - 8)
    full_range = v.color_range == "pc"
    black, white, cmax = (0, int(full), int(full)) if full_range else (16 * scale, 235 * scale, 240 * scale)
    black_thr = black + BLACK_PIXEL_THRESHOLD * (white - black)
    y_lo, y_hi = black - R103_MARGIN * (white - black), white + R103_MARGIN * (white - black)
    c_lo, c_hi = black - R103_MARGIN * (cmax - black), cmax + R103_MARGIN * (cmax - black)
    expected = v.frame_count or (round((info.duration_s or 0) * float(v.frame_rate)) if info.duration_s else 0)

    step = grid_step(h)
    rows, cols = np.arange(0, h, step), np.arange(0, w, step)
    # The chroma sample under each grid pixel: a strided view when the grid lands on chroma sites.
    c_index: tuple[slice, slice] | tuple[np.ndarray, ...] = (
        (slice(None, None, step // ch), slice(None, None, step // cw)) if step % ch == 0 and step % cw == 0
        else np.ix_(rows // ch, cols // cw))
    matrix, kr, kb = _ycbcr_weights(v)
    kg = 1.0 - kr - kb
    y_off, y_rng = (0.0, full) if full_range else (16.0 * scale, 219.0 * scale)
    c_off, c_rng = (float(1 << (depth - 1)), full) if full_range else (128.0 * scale, 224.0 * scale)
    eotf = _eotf(v.color_transfer)
    comb_thr = COMB_THRESHOLD * (white - black)
    # Bounds of R'-Y', B'-Y' (above) and G'-Y' (below) per unit of normalised chroma, for MaxCLL.
    rgb_hi = 2.0 * max(1.0 - kr, 1.0 - kb)
    g_lo = 2.0 * (kr * (1.0 - kr) + kb * (1.0 - kb)) / kg
    running_cll = 0.0

    luma, blacks, illegal, diffs, gamut, bars, combs, comb_ratios, max_nits, mean_nits = ([] for _ in range(10))
    prev: np.ndarray | None = None
    n = 0
    for buf in prefetch(_iter_frames(info, v, pix_fmt, frame_bytes), depth=_PREFETCH_FRAMES):
        frame: np.ndarray = np.frombuffer(buf, dtype=dtype)
        y = frame[:y_size]
        c = frame[y_size:]
        y2 = y.reshape(h, w)
        yg = y2[::step, ::step]
        luma.append(float(yg.mean()) / full)  # for plots and the flash frame: the grid is plenty
        # Exact counts, computed only when the frame's extremes say there is something to count
        # (min/max are cheap reductions; most frames are legal and not black).
        y_min, y_max, c_min, c_max = int(y.min()), int(y.max()), int(c.min()), int(c.max())
        blacks.append(float(np.count_nonzero(y <= black_thr)) / y_size if y_min <= black_thr else 0.0)
        bad = np.count_nonzero((y < y_lo) | (y > y_hi)) if (y_min < y_lo or y_max > y_hi) else 0
        bad += np.count_nonzero((c < c_lo) | (c > c_hi)) if (c_min < c_lo or c_max > c_hi) else 0
        illegal.append(bad / float(y_size + 2 * c_size))

        # Grid: luma with the chroma sample that covers each grid pixel (nearest, no interpolation).
        cb = c[:c_size].reshape(hc, wc)[c_index].astype(np.float32)
        cr = c[c_size:].reshape(hc, wc)[c_index].astype(np.float32)
        yn = (yg.astype(np.float32) - y_off) / y_rng
        cbn, crn = (cb - c_off) / c_rng, (cr - c_off) / c_rng
        r = yn + 2.0 * (1.0 - kr) * crn
        b = yn + 2.0 * (1.0 - kb) * cbn
        g = (yn - kr * r - kb * b) / kg
        out = ((r < -GAMUT_TOLERANCE) | (r > 1 + GAMUT_TOLERANCE) | (g < -GAMUT_TOLERANCE) | (g > 1 + GAMUT_TOLERANCE)
               | (b < -GAMUT_TOLERANCE) | (b > 1 + GAMUT_TOLERANCE))
        gamut.append(float(np.count_nonzero(out)) / out.size)
        if eotf is not None:
            peak = np.clip(np.maximum(np.maximum(r, g), b), 0.0, 1.0)
            nits = eotf(peak)
            frame_max = float(nits.max())
            # MaxCLL exact: the grid gives a lower bound; the frame's extremes an upper bound. Only
            # when that bound could beat the brightest pixel seen so far is the frame measured in
            # full (max(R',G',B') rises with Y', so each chroma site's brightest pixel is the one
            # with its block's highest Y': a block max of Y' and RGB at chroma resolution).
            bound = (y_max - y_off) / y_rng + max(rgb_hi * (c_max - c_off) / c_rng, -g_lo * (c_min - c_off) / c_rng,
                                                  0.0)
            if float(eotf(np.float32(min(max(bound, 0.0), 1.0)))) > max(running_cll, frame_max):
                frame_max = max(frame_max, _exact_max_nits(y2, c, hc, wc, ch, cw, eotf, y_off, y_rng, c_off, c_rng,
                                                           kr, kb, kg))
            running_cll = max(running_cll, frame_max)
            max_nits.append(frame_max)
            mean_nits.append(float(nits.mean()))

        # Freeze: the quarter-size grid of luma; identical frames give exactly 0.
        ys = yg.astype(np.int32) if step > 1 else y2[::2, ::2].astype(np.int32)
        diffs.append(float("inf") if prev is None else float(np.abs(ys - prev).mean()) / full)
        prev = ys

        # Bars: leading/trailing rows and columns whose brightest grid sample is black.
        row_dark = y2[:, ::step].max(axis=1) <= black_thr
        col_dark = y2[::step, :].max(axis=0) <= black_thr
        bars.append((_lead(row_dark), _lead(row_dark[::-1]), _lead(col_dark), _lead(col_dark[::-1])))

        # Combing: line i differs from lines i-1 and i+1 (other field) in the same direction while
        # lines i-2 and i+2 (same field) do not — the signature of two moments in one frame.
        yc = y2[:, ::2 * step].astype(np.int32)
        mid = yc[2:-2]
        other = (mid - yc[1:-3]) * (mid - yc[3:-1])
        same = (mid - yc[:-4]) * (mid - yc[4:])
        t2 = comb_thr * comb_thr
        # Fine horizontal detail combs both ways; two moments in one frame comb across fields only.
        across = np.count_nonzero((other > t2) & (same < t2 / 4))
        within = np.count_nonzero((same > t2) & (other < t2 / 4))
        combs.append(across / float(mid.size) if mid.size else 0.0)
        comb_ratios.append(across / (within + 1.0))
        n += 1
        if progress is not None and n % 25 == 0:
            progress(n, expected)
    if not luma:
        raise MediaError(f"no frames could be decoded from {info.path}; the picture may be corrupt")
    if progress is not None:
        progress(len(luma), len(luma))
    return PictureSeries(rate=v.frame_rate, bit_depth=depth, luma_mean=np.asarray(luma),
                         black_share=np.asarray(blacks), illegal_share=np.asarray(illegal),
                         diff_to_previous=np.asarray(diffs), gamut_share=np.asarray(gamut),
                         bars_px=np.asarray(bars, dtype=int).reshape(-1, 4),
                         comb_share=np.asarray(combs), comb_ratio=np.asarray(comb_ratios),
                         max_nits=np.asarray(max_nits) if eotf else None,
                         mean_nits=np.asarray(mean_nits) if eotf else None,
                         width=w, height=h, grid_step=step, matrix=matrix)


def _exact_max_nits(y2: np.ndarray, c: np.ndarray, hc: int, wc: int, ch: int, cw: int,
                    eotf: Callable[[np.ndarray | np.floating], np.ndarray], y_off: float, y_rng: float, c_off: float,
                    c_rng: float, kr: float, kb: float, kg: float) -> float:
    """Brightest pixel of a frame, max(R, G, B) in cd/m2, over every pixel (nearest chroma)."""
    h, w = y2.shape
    ypad = y2
    if h != hc * ch or w != wc * cw:  # odd sizes: pad by edge replication to whole chroma blocks
        ypad = np.pad(y2, ((0, hc * ch - h), (0, wc * cw - w)), mode="edge")
    ymax = ypad.reshape(hc, ch, wc, cw).max(axis=(1, 3)).astype(np.float32)
    c_size = hc * wc
    cb = (c[:c_size].reshape(hc, wc).astype(np.float32) - c_off) / c_rng
    cr = (c[c_size:].reshape(hc, wc).astype(np.float32) - c_off) / c_rng
    yn = (ymax - y_off) / y_rng
    r = yn + 2.0 * (1.0 - kr) * cr
    b = yn + 2.0 * (1.0 - kb) * cb
    g = (yn - kr * r - kb * b) / kg
    peak = float(np.clip(np.maximum(np.maximum(r, g), b).max(), 0.0, 1.0))
    return float(eotf(np.float32(peak)))


def _lead(mask: np.ndarray) -> int:
    """Number of leading True values."""
    idx = np.flatnonzero(~mask)
    return int(idx[0]) if idx.size else int(mask.size)


def runs(mask: np.ndarray, min_frames: int = 1, max_gap: int = 0) -> list[Interval]:
    """Maximal runs of True in ``mask`` at least ``min_frames`` long (gaps up to ``max_gap`` bridged)."""
    m = np.asarray(mask, dtype=bool)
    if max_gap > 0:
        gaps = [iv for iv in runs(~m) if iv.frames <= max_gap and iv.start > 0 and iv.end < m.size]
        m = m.copy()
        for iv in gaps:
            m[iv.start:iv.end] = True
    if m.size == 0:
        return []
    edges = np.diff(np.concatenate(([0], m.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [Interval(int(s), int(e)) for s, e in zip(starts, ends, strict=True) if e - s >= max(1, min_frames)]
