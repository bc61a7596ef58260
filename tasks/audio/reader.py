"""Block readers for audio: flat memory whatever the programme length.

Two sources, one shape: every reader yields ``numpy`` arrays ``[frames, channels]`` (float32 by
default) of at most ``block_frames`` frames, so a meter or a gain stage never holds more than one
block (plus a little filter history) in memory.

* :func:`iter_soundfile_blocks` — WAV / BWF / RF64 / FLAC through libsndfile (``soundfile``).
* :func:`iter_ffmpeg_blocks` — one audio stream of any container ffmpeg can read (MOV, MXF, MP4,
  ...), decoded to raw ``f32le`` on a pipe opened by :func:`tasks.media.ffmpeg.open_ffmpeg_pipe`.
* :func:`prefetch` — runs a reader in a background thread so decoding overlaps measurement
  (libsndfile and ffmpeg's pipe release the GIL while they work).

Channel order is whatever the source stores; :func:`wav_channel_mask` reads the
WAVE_FORMAT_EXTENSIBLE ``dwChannelMask`` so callers can map channels to speaker positions.
"""

from __future__ import annotations

import os
import queue
import struct
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

import numpy as np
import soundfile as sf

from specs.errors import MediaError
from tasks.media.ffmpeg import open_ffmpeg_pipe, read_exact

__all__ = [
    "MIN_MEASURABLE_S",
    "wav_truncation",
    "check_measurable",
    "DEFAULT_BLOCK_FRAMES",
    "SoundFileInfo",
    "soundfile_info",
    "wav_channel_mask",
    "iter_soundfile_blocks",
    "iter_ffmpeg_blocks",
    "prefetch",
]

#: 32768 frames (~0.68 s at 48 kHz): large enough that per-call overhead vanishes, small enough
#: that a 6-channel float32 block (768 KiB) stays in cache for the filter passes.
DEFAULT_BLOCK_FRAMES = 1 << 15

# WAVE_FORMAT_EXTENSIBLE speaker bits, in the order channels appear in the file (Microsoft
# KSMEDIA.H / ffmpeg channel names).
WAVE_SPEAKER_POSITIONS: tuple[str, ...] = (
    "FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR",
    "TC", "TFL", "TFC", "TFR", "TBL", "TBC", "TBR",
)


@dataclass(frozen=True)
class SoundFileInfo:
    """What libsndfile says about a file, plus the WAVE channel mask when there is one."""

    path: str
    sample_rate_hz: int
    channels: int
    frames: int
    format: str
    subtype: str
    channel_mask: int | None


def soundfile_info(path: str | Path) -> SoundFileInfo:
    """Header of a libsndfile-readable file.

    Raises:
        MediaError: the file is missing or libsndfile cannot read it (bad input, exit 2).
    """
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"audio file not found: {p}. Check the path.")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise MediaError(f"audio file {p} is not readable by libsndfile ({exc}); "
                         "is it a complete WAV/BWF/FLAC file?") from exc
    return SoundFileInfo(path=str(p), sample_rate_hz=int(info.samplerate), channels=int(info.channels),
                         frames=int(info.frames), format=str(info.format), subtype=str(info.subtype),
                         channel_mask=wav_channel_mask(p))


def wav_channel_mask(path: str | Path) -> int | None:
    """``dwChannelMask`` of a WAVE_FORMAT_EXTENSIBLE (RIFF, RF64 or BW64) file, else ``None``.

    Only the chunk headers are read (a few hundred bytes), never the audio data. ``None`` for
    plain WAVE_FORMAT_PCM/IEEE_FLOAT files, a zero mask, and non-WAVE files.

    References:
        Microsoft, "WAVEFORMATEXTENSIBLE" (KSAUDIO_SPEAKER_* channel masks); EBU Tech 3306 (RF64).
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
                return None
            for _ in range(64):  # fmt comes first in practice; never walk the whole file
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    body = fh.read(min(size, 64))
                    if len(body) >= 24 and struct.unpack("<H", body[:2])[0] == 0xFFFE:
                        mask = struct.unpack("<I", body[20:24])[0]
                        return mask or None
                    return None
                fh.seek(size + (size & 1), 1)  # chunks are word-aligned
    except OSError:
        return None
    return None


#: The shortest audio a loudness can be measured on: one 400 ms gating block (ITU-R BS.1770-4 §2.8;
#: EBU Tech 3341 §2.3 momentary loudness). A shorter file gives no value at all.
MIN_MEASURABLE_S = 0.4


def wav_truncation(path: str | Path) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of audio when a RIFF WAVE file's ``data`` chunk promises more bytes
    than the file holds (a copy or export cut short), else ``None``.

    A size of 0 or 0xFFFFFFFF (a recorder still writing, RF64/BW64 whose real size is in ``ds64``,
    EBU Tech 3306 §3) says nothing and is not checked. Only chunk headers are read.
    """
    try:
        with open(path, "rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            for _ in range(64):
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"data":
                    present = total - fh.tell()
                    return (size, present) if 0 < size < 0xFFFFFFFF and present < size else None
                fh.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


def check_measurable(path: str | Path, duration_s: float | None) -> None:
    """Refuse audio whose loudness cannot be measured: less than one gating block (a truncated WAV is
    refused by :func:`tasks.media.probe.probe`, see :func:`wav_truncation`).

    Raises:
        MediaError: naming the file and its duration (bad input, exit 2).
    """
    if duration_s is not None and duration_s < MIN_MEASURABLE_S:
        raise MediaError(f"audio file {path} lasts {duration_s * 1000:.3g} ms, shorter than one 400 ms gating block "
                         "of ITU-R BS.1770-4; nothing to measure")


def mask_positions(mask: int) -> list[str]:
    """Speaker positions (ffmpeg names) of a WAVE channel mask, in file channel order."""
    return [name for bit, name in enumerate(WAVE_SPEAKER_POSITIONS) if mask & (1 << bit)]


def iter_soundfile_blocks(path: str | Path, *, block_frames: int = DEFAULT_BLOCK_FRAMES,
                          dtype: str = "float32", start_frame: int = 0,
                          stop_frame: int | None = None) -> Generator[np.ndarray, None, None]:
    """Yield ``[frames, channels]`` blocks of a WAV/BWF/RF64/FLAC file, in order.

    Args:
        path: the file.
        block_frames: frames per block (the last block may be shorter).
        dtype: ``"float32"`` (exact for 24-bit PCM) or ``"float64"``.
        start_frame: first frame to read.
        stop_frame: frame after the last one to read (``None`` = end of file).

    Raises:
        MediaError: the file cannot be opened.
    """
    try:
        fh = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise MediaError(f"audio file {path} is not readable by libsndfile ({exc})") from exc
    with fh:
        stop = fh.frames if stop_frame is None else min(stop_frame, fh.frames)
        if start_frame:
            fh.seek(start_frame)
        remaining = stop - start_frame
        while remaining > 0:
            block = fh.read(min(block_frames, remaining), dtype=dtype, always_2d=True)
            if len(block) == 0:
                break
            remaining -= len(block)
            yield block


def iter_ffmpeg_blocks(path: str | Path, *, stream_index: int, channels: int,
                       block_frames: int = DEFAULT_BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Yield float32 ``[frames, channels]`` blocks of one audio stream decoded by ffmpeg.

    The stream is decoded at its native sample rate and channel count (no resampling, no
    remixing) to raw little-endian float32 on ffmpeg's stdout. Closing the generator early kills
    ffmpeg (see :func:`tasks.media.ffmpeg.open_ffmpeg_pipe`).

    Args:
        path: any container ffmpeg can read.
        stream_index: the ffprobe stream index (``0:<index>`` in ffmpeg ``-map`` terms).
        channels: channel count of that stream (from :func:`tasks.media.probe.probe`).
        block_frames: frames per block.

    Raises:
        FFmpegError: ffmpeg failed to decode the stream.
    """
    args = ["-i", str(path), "-map", f"0:{stream_index}", "-vn", "-sn", "-dn",
            "-c:a", "pcm_f32le", "-f", "f32le", "pipe:1"]
    frame_bytes = 4 * channels
    want = block_frames * frame_bytes
    with open_ffmpeg_pipe(args, what=f"decode of audio stream {stream_index} of {path}") as out:
        while True:
            buf = bytearray(want)
            got = read_exact(out, buf)
            usable = got - got % frame_bytes
            if usable:
                yield np.frombuffer(buf, dtype="<f4", count=usable // 4).reshape(-1, channels)
            if got < want:
                return


_END = object()
_Block = TypeVar("_Block")


def prefetch(blocks: Iterator[_Block], depth: int = 2) -> Iterator[_Block]:
    """Run a block iterator in a background thread, ``depth`` blocks ahead of the consumer.

    Decoding (libsndfile, ffmpeg pipe reads) releases the GIL, so it overlaps with the meter's
    numpy/scipy work on a second core. Exceptions from the reader are re-raised in the consumer;
    closing the returned generator stops the reader (and so kills ffmpeg).
    """
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for block in blocks:
                while not stop.is_set():
                    try:
                        q.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            q.put(_END) if not stop.is_set() else None
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            if not stop.is_set():
                q.put(exc)
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="audio-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(_Block, item)
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            thread.join(timeout=0.05)
