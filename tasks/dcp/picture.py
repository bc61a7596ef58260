"""DCP picture: the master decoded once, placed in a DCI container, R'G'B' -> X'Y'Z', JPEG 2000.

Stages, per frame:

1. ffmpeg decodes the master to 16-bit R'G'B' (``rgb48le``, full range) already scaled and padded
   into the container (:mod:`tasks.dcp.container`), as raw frames on a pipe: one decode.
2. :class:`XYZEncoder` converts R'G'B' to 12-bit X'Y'Z' per SMPTE ST 428-1 §5-7 in numpy: the
   master's transfer is decoded (BT.709 masters with the ITU-R BT.1886 EOTF, gamma 2.4, black at 0),
   its primaries matrix (colour-science) takes linear RGB to XYZ, the result is scaled to the DCDM
   reference white of 48 cd/m^2 over the 52.37 cd/m^2 normalising constant, encoded with the 1/2.6
   power and quantised to 12 bits. ffmpeg's ``xyz12le`` conversion is not used: it assumes gamma 2.2
   and skips the 48/52.37 scaling.
3. Grok encodes the codestream with the digital-cinema profile of ISO/IEC 15444-1 Amd 1 set
   explicitly (2K Rsiz 3, 5 levels, 1 guard bit as SMPTE RDD 52 asks at 2K; 4K Rsiz 4, 6 levels,
   a main-header POC and two tile-parts per component; both one tile, CPRL, 32x32 code blocks,
   128/256 precincts, 9/7 + ICT, TLM) and a rate cap of 250 Mbit/s at the DCP rate. At 2K it runs
   in-process (:mod:`tasks.dcp.grok`, libgrokj2k over ctypes: no process start, the samples handed
   over in memory); at 4K, or without the library, ``grk_compress`` (:func:`grok_args`) reads the
   planar samples as a raw file in tmpfs and :func:`insert_tlm` adds the TLM marker (ISO/IEC
   15444-1 A.7.1). Every frame is checked with :func:`tasks.dcp.codestream.check_codestream`
   before it is kept.

Bits under the noise floor (2K): on a grainy frame, most of the block coder's work is spent on the
lowest bit-planes, which are grain and which the 250 Mbit/s rate control then discards.
:func:`coded_bits` measures the picture's own noise and leaves uncoded the low bits whose rounding
step is at most a quarter of the noise sigma (at most 4); the codestream still declares 12 bits, so
every decoder reads the samples back on the 12-bit scale (:func:`tasks.dcp.grok.declare_siz`). A
clean frame (titles, test patterns, the colour patches the tests measure) keeps all 12 bits. On the
bench's grainy frames: Grok 0.40-0.44 core-s a frame at 8 coded bits against 0.82-0.88 at 12, PSNR
0.12-0.17 dB lower (3 bits: 0.52-0.55 core-s, 0.02 dB).

Where a 2K frame's CPU goes (grainy 1080p24 master, every frame at the 250 Mbit/s cap; ``python -m
bench.dcp`` prints the table): Grok's block coder (see above), the ffmpeg decode and scale about
0.06, the X'Y'Z' conversion 0.03-0.08, the hand-over to a worker, the noise estimate and the
profile check about 0.01 each; the first rate lands under the cap, so retries are rare. Grok with
its own threads costs the same core-seconds a frame as one thread, so frames run in parallel
across single-threaded worker processes: it parallelises and fails per frame.

Encoders compared here (Debian 12): ffmpeg's libopenjpeg writes 2 guard bits and cannot be told
otherwise; OpenJPEG 2.5's ``opj_compress -cinema2K 24 -GuardBits 1 -TLM`` conforms but costs about
1.5x Grok's core-seconds on a grainy 2K frame (1.5 vs 1.0), with ``-threads 2`` as without (threads
shorten one frame's wall time, not its CPU); Grok conforms and is the fastest, so it is the encoder.

Parallelism: :func:`iter_picture` keeps one decode and hands frames to a process pool, yielding the
encoded frames in frame order with a bounded number in flight (memory stays flat for a feature).
Across machines, :func:`iter_picture_distributed` maps :func:`encode_chunk` over frame ranges on a
Dask cluster and yields the frames in order; a chunk decodes only its range, so chunks are
independent and the frame grid is the master's (:func:`encode_frame_range` is the same chunk
writing files, for a shared folder).
"""

from __future__ import annotations

import collections
import functools
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from specs.errors import InfrastructureError, MediaError
from tasks.dcp.codestream import check_codestream, max_frame_bytes, parse_codestream
from tasks.dcp.container import Placement
from tasks.dcp.grok import declare_siz, encode_j2k, grok_library
from tasks.media.ffmpeg import open_ffmpeg_pipe, read_exact

__all__ = [
    "DCP_RATES",
    "PicturePlan",
    "XYZEncoder",
    "xyz_encoder",
    "rgb48_to_xyz12",
    "rgb48_to_xyz12_planar",
    "decode_args",
    "encode_codestream",
    "noise_sigma",
    "coded_bits",
    "requantise",
    "MAX_DROPPED_BITS",
    "insert_tlm",
    "iter_picture",
    "encode_picture",
    "encode_frame_range",
    "encode_chunk",
    "iter_picture_distributed",
    "frame_path",
    "GROK",
    "frame_ranges",
    "check_colour",
    "dcp_rate_of",
    "grok_args",
    "scratch_dir",
]

#: Frame rates a DCP may carry (SMPTE ST 428-21 / ST 429-2: 24, 25, 30 and the HFR 48, 50, 60).
DCP_RATES = (24, 25, 30, 48, 50, 60)

#: The JPEG 2000 encoder binary (override with DELIVER_GRK_COMPRESS).
GROK = "grk_compress"

#: Low bits of the 12 that :func:`coded_bits` may leave uncoded under a grainy picture's noise.
MAX_DROPPED_BITS = 4

# DCDM encoding, SMPTE ST 428-1 §7: CV = 4095 * (L * XYZ / 52.37)^(1/2.6) with white at L = 48 cd/m^2.
DCDM_WHITE_CD_M2 = 48.0
DCDM_NORMALISING_CD_M2 = 52.37
DCDM_GAMMA = 2.6

# Master primaries (ffprobe's words) -> colour-science colourspace names.
_PRIMARIES = {"bt709": "ITU-R BT.709", "smpte432": "P3-D65", "bt2020": "ITU-R BT.2020"}
# Master transfers decoded with the BT.1886 reference EOTF (gamma 2.4, Lb = 0).
_BT1886_TRANSFERS = {"bt709", "bt1886", "smpte170m", "bt470bg", "bt2020-10", "bt2020-12", "gamma22", "gamma28"}
_HDR_TRANSFERS = {"smpte2084": "PQ (SMPTE ST 2084)", "arib-std-b67": "HLG (ITU-R BT.2100)"}


@dataclass(frozen=True)
class PicturePlan:
    """What the picture encode needs: small, picklable, the same on every worker."""

    placement: Placement
    fps: int  # the DCP's frame rate
    frame_count: int
    primaries: str = "bt709"  # the master's (ffprobe words)
    transfer: str = "bt709"
    matrix: str = "bt709"  # Y'CbCr matrix of the master, for ffmpeg's conversion to R'G'B'
    range: Literal["tv", "pc"] = "tv"
    is_rgb: bool = False
    master_rate: Fraction | None = None  # the master's frame rate when a speed change makes it differ from fps
    max_dropped_bits: int = 0  # low bits a grainy frame may leave uncoded (coded_bits); 0: the full 12 bits

    @property
    def profile(self) -> Literal["2k", "4k"]:
        return self.placement.container.resolution

    @property
    def width(self) -> int:
        return self.placement.container.width

    @property
    def height(self) -> int:
        return self.placement.container.height


def check_colour(primaries: str | None, transfer: str | None) -> None:
    """Refuse masters whose colour this module cannot take to X'Y'Z' (exit 2)."""
    if transfer in _HDR_TRANSFERS:
        raise MediaError(f"the master is HDR {_HDR_TRANSFERS[transfer]}: a DCP is made from an SDR grade "
                         "(48 cd/m^2 white); give an SDR (BT.709/BT.1886) master or a DCI trim pass")
    if transfer not in (None, "unknown", *_BT1886_TRANSFERS):
        raise MediaError(f"the master's transfer '{transfer}' cannot be decoded for a DCP: "
                         "give a BT.709/BT.1886 master")
    if primaries not in (None, "unknown", *_PRIMARIES):
        raise MediaError(f"the master's primaries '{primaries}' are not BT.709, P3-D65 or BT.2020")


@dataclass(frozen=True)
class XYZEncoder:
    """R'G'B' (16-bit) -> X'Y'Z' (12-bit) per SMPTE ST 428-1, as a lookup table and a 3x3 matrix."""

    eotf_lut: np.ndarray  # 65536 float32: linear light of each 16-bit code (white = 1)
    matrix: np.ndarray  # 3x3 float32: linear RGB -> XYZ, scaled by 48/52.37 (white Y = 48/52.37)

    def __call__(self, rgb48: np.ndarray) -> np.ndarray:
        """(H, W, 3) R'G'B' -> (3, H, W) planar X'Y'Z'."""
        return rgb48_to_xyz12_planar(rgb48, self)


@functools.lru_cache(maxsize=8)
def xyz_encoder(primaries: str = "bt709", transfer: str = "bt709") -> XYZEncoder:
    """The converter for a master's primaries and transfer (cached per process)."""
    with warnings.catch_warnings():  # colour warns that matplotlib is absent
        warnings.simplefilter("ignore")
        import colour

    check_colour(primaries, transfer)
    space = colour.RGB_COLOURSPACES[_PRIMARIES.get(primaries, "ITU-R BT.709")]
    matrix = np.asarray(space.matrix_RGB_to_XYZ, dtype=np.float64) * (DCDM_WHITE_CD_M2 / DCDM_NORMALISING_CD_M2)
    # ITU-R BT.1886 Annex 1 with Lw = 1, Lb = 0: L = V^2.4.
    codes = np.arange(65536, dtype=np.float64) / 65535.0
    lut = np.power(codes, 2.4)
    return XYZEncoder(lut.astype(np.float32), matrix.astype(np.float32))


def rgb48_to_xyz12_planar(rgb48: np.ndarray, encoder: XYZEncoder) -> np.ndarray:
    """(H, W, 3) uint16 R'G'B' -> (3, H, W) uint16 12-bit X'Y'Z' codes, component-planar, vectorised.

    ``eotf_inverse_DCDM`` of colour-science computes the same 4095 * (XYZ/52.37)^(1/2.6); it is done
    here in float32 in place, as a feature has ~170,000 frames of 6.5 million samples each. The
    planar result is what the encoder reads (raw planar input), so no interleaved copy is made.
    """
    height, width, _ = rgb48.shape
    linear = encoder.eotf_lut[rgb48].reshape(-1, 3)  # (N, 3) float32
    xyz = encoder.matrix @ linear.T  # (3, N): one BLAS call on a transposed view
    np.clip(xyz, 0.0, 1.0, out=xyz)
    np.power(xyz, np.float32(1.0 / DCDM_GAMMA), out=xyz)
    xyz *= np.float32(4095.0)
    np.rint(xyz, out=xyz)
    return xyz.astype(np.uint16).reshape(3, height, width)


def rgb48_to_xyz12(rgb48: np.ndarray, encoder: XYZEncoder) -> np.ndarray:
    """(H, W, 3) uint16 R'G'B' -> (H, W, 3) uint16 12-bit X'Y'Z' codes (an interleaved view of the planar)."""
    return rgb48_to_xyz12_planar(rgb48, encoder).transpose(1, 2, 0)


# --------------------------------------------------------------------------------------------
# Decode
# --------------------------------------------------------------------------------------------


def decode_args(master: Path, plan: PicturePlan, start: int = 0, count: int | None = None) -> list[str]:
    """ffmpeg arguments: frames ``start .. start+count`` as raw rgb48le, scaled and padded.

    The seek lands half a frame before the wanted frame, so with ffmpeg's exact input seeking the
    first frame out is frame ``start`` of the master's own grid.
    """
    p = plan.placement
    c = p.container
    in_range = "pc" if plan.is_rgb else plan.range
    matrix = {"bt709": "bt709", "bt2020nc": "bt2020", "bt2020c": "bt2020", "smpte170m": "bt601",
              "bt470bg": "bt601"}.get(plan.matrix, "bt709")
    vf = (f"scale={p.active_width}:{p.active_height}:flags=lanczos+accurate_rnd+full_chroma_int"
          f":in_color_matrix={matrix}:in_range={in_range}:out_range=pc,setsar=1,format=rgb48le,"
          f"pad={c.width}:{c.height}:{p.x}:{p.y}:black")
    args: list[str] = []
    if start > 0:
        rate = plan.master_rate or Fraction(plan.fps)
        args += ["-ss", f"{float((start - Fraction(1, 2)) / rate):.6f}"]
    args += ["-i", str(master), "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", vf, "-fps_mode", "passthrough"]
    frames = plan.frame_count - start if count is None else count
    args += ["-frames:v", str(frames), "-pix_fmt", "rgb48le", "-f", "rawvideo", "pipe:1"]
    return args


# --------------------------------------------------------------------------------------------
# Encode
# --------------------------------------------------------------------------------------------


def _grok_binary() -> str:
    binary = os.environ.get("DELIVER_GRK_COMPRESS", GROK)
    if shutil.which(binary) is None:
        raise InfrastructureError(f"{binary} not found: install Debian's grokj2k-tools "
                                  "(apt-get install grokj2k-tools) or set DELIVER_GRK_COMPRESS")
    return binary


def grok_args(plan: PicturePlan, ratio: float) -> list[str]:
    """The digital-cinema profile spelt out (ISO/IEC 15444-1 Amd 1 Table A.45, SMPTE RDD 52).

    2K: Rsiz 3, 5 levels, one tile-part per component, 1 guard bit (Grok's Rsiz 3 default).
    4K: Rsiz 4, 6 levels, and one main-header POC with two progressions (the 2K resolutions, then
    the 4K level), so each component has two tile-parts: 6 in all (ISO/IEC 15444-1 Amd 1 A.3.4,
    RDD 52); 2 guard bits.
    """
    levels = 5 if plan.profile == "2k" else 6
    # Precincts: 256x256 at every resolution but the lowest (128x128); Grok lists them from the highest.
    precincts = ",".join(["[256,256]"] * levels + ["[128,128]"])
    args = ["-F", f"{plan.width},{plan.height},3,12,u", "-n", str(levels + 1), "-b", "32,32", "-c", precincts,
            "-p", "CPRL", "-I", "-Y", "1", "-u", "C", "-r", f"{ratio:.4f}", "-H", "1"]
    if plan.profile == "2k":
        return [*args, "-Z", "3"]
    return [*args, "-Z", "4", "-P", f"T0=0,0,1,{levels},3,CPRL/T0={levels},0,1,{levels + 1},3,CPRL"]


def scratch_dir(work_dir: Path) -> Path:
    """Where the encoder's per-frame input and output go: DELIVER_DCP_SCRATCH, else /dev/shm (memory:
    ~15 MB a frame in flight never touches the disk), else ``work_dir``."""
    configured = os.environ.get("DELIVER_DCP_SCRATCH")
    if configured:
        return Path(configured)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return work_dir


def insert_tlm(data: bytes) -> bytes:
    """Add a TLM marker segment to the main header (ISO/IEC 15444-1 A.7.1) if there is none.

    One entry per tile-part: Ttlm 8 bits (tile index), Ptlm 32 bits (tile-part length), i.e.
    Stlm = ST 1, SP 1. The main header ends at the first SOT, where the segment goes.
    """
    cs = parse_codestream(data)
    if cs.tlm:
        return data
    pos = 2
    while data[pos:pos + 2] != b"\xff\x90":
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    entries = b"".join(tp.tile.to_bytes(1, "big") + tp.length.to_bytes(4, "big") for tp in cs.tile_parts)
    segment = b"\xff\x55" + (4 + len(entries)).to_bytes(2, "big") + b"\x00\x50" + entries
    return data[:pos] + segment + data[pos:]


def noise_sigma(xyz12: np.ndarray) -> float:
    """The picture's own noise (film grain, sensor noise) in code values: a robust sigma estimate.

    The 2x2 diagonal difference a - b - c + d cancels flat areas and straight gradients and, on white
    noise, has twice the noise's sigma; its median absolute value over every 8th row pair, times 1.4826
    (MAD to sigma for a normal distribution), halved, estimates sigma. The least noisy component counts.
    A frame that is mostly flat (titles, black, test patterns) has a median of 0.
    """
    sigmas = []
    for plane in xyz12:
        a = plane[0:-1:8].astype(np.int32)
        b = plane[1::8].astype(np.int32)
        rows = min(len(a), len(b))
        d = a[:rows, :-1] - a[:rows, 1:] - b[:rows, :-1] + b[:rows, 1:]
        sigmas.append(1.4826 * float(np.median(np.abs(d))) / 2.0)
    return min(sigmas)


def coded_bits(xyz12: np.ndarray, sigma: float | None = None, max_dropped: int = MAX_DROPPED_BITS) -> int:
    """How many of the 12 bits a sample are worth coding: the bits under the picture's noise floor are not.

    ``d`` low bits are dropped while the rounding step 2^d is at most a quarter of the noise sigma: the
    rounding noise (2^d / sqrt(12) RMS) then adds under 0.6 % to the noise power already in the
    picture, and the rate control would discard those bit-planes at 250 Mbit/s anyway; coding them is
    most of the block coder's work on a grainy frame. At most ``max_dropped`` bits; a clean frame
    keeps all 12.
    """
    if max_dropped <= 0:
        return 12
    sigma = noise_sigma(xyz12) if sigma is None else sigma
    dropped = 0
    while dropped < min(max_dropped, MAX_DROPPED_BITS) and 2 ** (dropped + 1) * 4 <= sigma:
        dropped += 1
    return 12 - dropped


def requantise(xyz12: np.ndarray, bits: int) -> np.ndarray:
    """12-bit codes rounded to ``bits`` bits (the top code clipped)."""
    if bits == 12:
        return xyz12
    shift = 12 - bits
    out = xyz12 + np.uint16(1 << (shift - 1))
    out >>= np.uint16(shift)
    np.minimum(out, np.uint16((1 << bits) - 1), out=out)
    return out


def _within_cap(encode_once: Callable[[float], bytes], raw_bytes: float, plan: PicturePlan) -> bytes:
    """Encode at the rate that lands under the byte cap; retry at a 10 % lower rate when a frame is over.
    Each result is checked with :func:`check_codestream` before it is kept."""
    cap = max_frame_bytes(plan.fps) - 1024  # headroom for TLM and rate-control slack
    ratio = raw_bytes / cap
    problems: list[str] = []
    for _attempt in range(3):
        data = encode_once(ratio)
        problems = check_codestream(data, plan.profile, plan.fps)
        if not problems:
            return data
        if not any("bytes, over" in p for p in problems):
            break
        ratio *= 1.1
    raise InfrastructureError(f"the JPEG 2000 encoder made a non-conforming frame: {'; '.join(problems)}")


def encode_codestream(xyz12: np.ndarray, plan: PicturePlan, work_dir: Path) -> bytes:
    """One planar (3, H, W) X'Y'Z' frame -> a checked J2K codestream.

    2K with libgrokj2k 10 present: in-process (:mod:`tasks.dcp.grok`), the samples handed over in
    memory, at :func:`coded_bits` bits declared back as 12 in SIZ (the decoder scales them up, see
    :func:`tasks.dcp.grok.declare_siz`). Otherwise (4K, which needs a POC, or no library): the
    ``grk_compress`` command on a raw 12-bit planar file in tmpfs (Grok's ``.rawl``: no header, no
    byte swap), its codestream given a TLM marker. The rate is set from the uncompressed size so
    that the frame lands under the cap the first time.
    """
    _, height, width = xyz12.shape
    scratch = scratch_dir(work_dir)
    if plan.profile == "2k" and grok_library() is not None:
        bits = coded_bits(xyz12, max_dropped=plan.max_dropped_bits)
        samples = requantise(xyz12, bits)

        def in_process(ratio: float) -> bytes:
            try:
                data = encode_j2k(samples, bits, levels=5, ratio=ratio, scratch=scratch)
            except OSError as exc:
                raise InfrastructureError(f"libgrokj2k: {exc}") from exc
            return declare_siz(data, 12, 3)

        return _within_cap(in_process, width * height * 3 * bits / 8, plan)

    fd, name = tempfile.mkstemp(suffix=".rawl", prefix="deliver-dcp-", dir=scratch)
    src = Path(name)
    dst = src.with_suffix(".j2k")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(np.ascontiguousarray(xyz12, dtype="<u2").data)

        def command(ratio: float) -> bytes:
            cmd = [_grok_binary(), "-i", str(src), "-o", str(dst), *grok_args(plan, ratio)]
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
            if proc.returncode != 0 or not dst.exists():
                tail = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
                raise InfrastructureError(f"grk_compress failed (exit {proc.returncode}): {' '.join(tail)}")
            return insert_tlm(dst.read_bytes())

        return _within_cap(command, width * height * 3 * 12 / 8, plan)
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)


def frame_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"{index:08d}.j2c"


_WORKER_ENCODER: XYZEncoder | None = None


def _init_worker(encoder: XYZEncoder) -> None:
    """Pool initializer: the converter comes from the parent (no colour-science import per worker)."""
    global _WORKER_ENCODER
    _WORKER_ENCODER = encoder


def _encode_frame(raw: bytes, plan: PicturePlan, index: int, out_dir: Path) -> Path:
    """Worker: raw rgb48le bytes -> X'Y'Z' -> J2K file for frame ``index``."""
    rgb = np.frombuffer(raw, dtype="<u2").reshape(plan.height, plan.width, 3)
    encoder = _WORKER_ENCODER or xyz_encoder(plan.primaries, plan.transfer)
    xyz = encoder(rgb)
    data = encode_codestream(xyz, plan, out_dir)
    final = frame_path(out_dir, index)
    # A work file, not a deliverable: write then rename so a reader never sees half a frame.
    partial = final.with_name(final.stem + ".partial.j2c")
    partial.write_bytes(data)
    os.replace(partial, final)
    return final


def iter_picture(master: Path, plan: PicturePlan, workers: int, out_dir: Path, start: int = 0,
                 count: int | None = None) -> Iterator[Path]:
    """Encode frames ``start .. start+count`` and yield their .j2c paths in frame order.

    One ffmpeg decode feeds ``workers`` processes; at most ``2 x workers`` frames are in flight.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    total = plan.frame_count - start if count is None else count
    frame_bytes = plan.width * plan.height * 6
    encoder = xyz_encoder(plan.primaries, plan.transfer)  # refuses HDR before ffmpeg starts
    # Spawned, not forked: a process that already ran Grok holds its thread pool, which a fork would not copy.
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(encoder,)) if workers > 1 else None
    pending: collections.deque[Future[Path]] = collections.deque()
    try:
        with open_ffmpeg_pipe(decode_args(master, plan, start, total), what="DCP picture decode") as pipe:
            buf = bytearray(frame_bytes)
            for n in range(start, start + total):
                if read_exact(pipe, buf) < frame_bytes:
                    raise MediaError(f"{master} ended at frame {n}: the DCP needs {start + total} frames")
                if pool is None:
                    yield _encode_frame(bytes(buf), plan, n, out_dir)
                    continue
                pending.append(pool.submit(_encode_frame, bytes(buf), plan, n, out_dir))
                while len(pending) >= 2 * workers:
                    yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def encode_picture(master: Path, plan: PicturePlan, workers: int, out_dir: Path) -> list[Path]:
    """Every frame of the DCP picture as ordered .j2c files under ``out_dir``."""
    return list(iter_picture(master, plan, workers, out_dir))


def encode_frame_range(master: Path, plan: PicturePlan, start: int, count: int, out_dir: Path) -> list[Path]:
    """The chunk function for encoding across machines: frames ``start .. start+count``, one process.

    Each chunk seeks and decodes only its own frames, so a Dask ``client.map`` or a Prefect
    ``task.map`` over ``frame_ranges`` gives the same files as one local encode.
    """
    return list(iter_picture(master, plan, 1, out_dir, start, count))


def encode_chunk(master: Path, plan: PicturePlan, start: int, count: int) -> list[bytes]:
    """A Dask task: frames ``start .. start+count`` as codestream bytes (no shared work folder needed)."""
    with tempfile.TemporaryDirectory(prefix="deliver-dcp-chunk-") as tmp:
        out: list[bytes] = []
        for path in iter_picture(master, plan, 1, Path(tmp), start, count):
            out.append(path.read_bytes())
            path.unlink()
        return out


def iter_picture_distributed(master: Path, plan: PicturePlan, client: Any, start: int = 0,
                             count: int | None = None, chunk: int = 48) -> Iterator[bytes]:
    """Frames ``start .. start+count`` encoded as ``chunk``-frame ranges on a Dask cluster, yielded in order.

    At most two chunks per worker are in flight, so the caller (the track-file writer) holds a bounded
    number of frames however long the master. Each chunk decodes only its range (see ``decode_args``),
    so the frames are the ones one local encode makes, byte for byte.
    """
    total = plan.frame_count - start if count is None else count
    xyz_encoder(plan.primaries, plan.transfer)  # refuses an HDR master here, before any worker starts
    ranges = [(start + s, c) for s, c in frame_ranges(total, chunk)]
    in_flight = 2 * max(1, len(client.scheduler_info().get("workers", {})))
    pending: collections.deque[Any] = collections.deque()
    try:
        for s, c in ranges:
            pending.append(client.submit(encode_chunk, master, plan, s, c, pure=False))
            while len(pending) >= in_flight:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def frame_ranges(frame_count: int, chunk: int) -> list[tuple[int, int]]:
    """(start, count) chunks covering ``frame_count`` frames in order."""
    return [(s, min(chunk, frame_count - s)) for s in range(0, frame_count, chunk)]


def dcp_rate_of(rate: Fraction) -> int | None:
    """The DCP rate equal to ``rate``, or None when a speed change would be needed (23.976 -> 24)."""
    return int(rate) if rate.denominator == 1 and int(rate) in DCP_RATES else None
