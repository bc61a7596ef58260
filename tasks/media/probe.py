"""ffprobe -> a typed :class:`MediaInfo`.

Everything downstream (QC metadata checks, layback alignment, transcodes) reads this model rather
than ffprobe's JSON, so field names carry units and frame rates are rationals.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from specs.errors import FFmpegError, MediaError
from specs.timecode import Timecode
from tasks.media.ffmpeg import run_ffprobe_json

__all__ = ["VideoStream", "AudioStream", "MediaInfo", "probe", "require_file", "pix_depth", "tagged_light_level",
           "COLOUR_TAGS", "colour_tag"]

_PIX_DEPTH = re.compile(r"p(\d+)(le|be)?$")


#: The four colour tags: spec ``picture.colour`` field -> :class:`VideoStream` attribute (ITU-T H.273 §8).
COLOUR_TAGS = {"primaries": "color_primaries", "transfer": "color_transfer", "matrix": "color_matrix",
               "range": "color_range"}
# ffprobe's words for a code point that says nothing: unspecified (2) and the reserved values (ITU-T H.273 §8).
_UNTAGGED = ("", "unknown", "unspecified", "reserved", "reserved0")


def colour_tag(value: str | None) -> str | None:
    """``value`` as a colour tag, ``None`` where it says nothing (missing, unspecified or reserved)."""
    return None if value is None or value in _UNTAGGED else value


class VideoStream(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    codec: str
    codec_tag: str | None = None  # the container's FourCC, e.g. hvc1 / hev1 for HEVC in MOV/MP4
    profile: str | None = None
    width: int
    height: int
    sample_aspect_ratio: Fraction = Fraction(1)
    frame_rate: Fraction
    avg_frame_rate: Fraction | None = None  # frames / duration; differs from frame_rate when the rate varies
    # Why the frame rate is variable (None: constant): r_frame_rate vs avg_frame_rate and the packet durations.
    variable_rate: str | None = None
    frame_count: int | None = None
    field_order: str | None = None  # progressive, tt, bb, tb, bt (ffprobe's words)
    scan: Literal["progressive", "interlaced", "unknown"] = "unknown"
    pix_fmt: str | None = None
    bit_depth: int | None = None
    chroma_subsampling: str | None = None  # 4:2:0, 4:2:2, 4:4:4
    color_primaries: str | None = None
    color_transfer: str | None = None
    color_matrix: str | None = None
    color_range: str | None = None  # tv (limited) / pc (full)
    duration_s: float | None = None
    has_mastering_display: bool = False
    has_content_light_level: bool = False
    bit_rate_bps: int | None = None  # ffprobe's stream bit_rate, else the container's minus the audio


class AudioStream(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    codec: str
    channels: int
    channel_layout: str | None = None
    sample_rate_hz: int
    bit_depth: int | None = None
    duration_s: float | None = None
    language: str | None = None
    bit_rate_bps: int | None = None


class MediaInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    format_name: str
    size_bytes: int
    duration_s: float | None
    video: list[VideoStream] = []
    audio: list[AudioStream] = []
    timecode_tracks: int = 0
    start_timecode: str | None = None  # from the tmcd track / container tag, as written
    bwf_time_reference_samples: int | None = None  # BWF bext TimeReference (samples since midnight)

    @property
    def primary_video(self) -> VideoStream | None:
        return self.video[0] if self.video else None

    def start_seconds(self) -> Fraction | None:
        """Start time of the media on the timecode clock, in seconds since midnight."""
        if self.bwf_time_reference_samples is not None and self.audio:
            return Fraction(self.bwf_time_reference_samples, self.audio[0].sample_rate_hz)
        if self.start_timecode and self.primary_video:
            return Timecode.parse(self.start_timecode, self.primary_video.frame_rate).seconds
        return None


def require_file(path: str | Path, what: str = "file") -> Path:
    """The path as a readable regular file, or a :class:`MediaError` saying what to fix."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{what} not found: {p}. Check the path.")
    if not p.is_file():
        raise MediaError(f"{what} is not a regular file: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"{what} is empty (0 bytes): {p}")
    return p


def _fraction(text: Any, default: Fraction | None = None) -> Fraction | None:
    if not text or text in ("0/0", "N/A"):
        return default
    try:
        value = Fraction(str(text).replace(":", "/"))
    except (ValueError, ZeroDivisionError):
        return default
    return value if value > 0 else default


def _float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _chroma(pix_fmt: str | None) -> str | None:
    if not pix_fmt:
        return None
    for key, value in (("420", "4:2:0"), ("422", "4:2:2"), ("444", "4:4:4"), ("411", "4:1:1")):
        if key in pix_fmt:
            return value
    if pix_fmt.startswith(("rgb", "bgr", "gbr")):
        return "4:4:4"
    if pix_fmt.startswith("gray"):
        return "4:0:0"
    return None


def pix_depth(pix_fmt: str | None, raw: Any = None) -> int | None:
    """Bits per component: ffprobe's ``bits_per_raw_sample`` when given, else from the pixel format name."""
    if str(raw or "").isdigit() and int(raw) > 0:
        return int(raw)
    if not pix_fmt:
        return None
    m = _PIX_DEPTH.search(pix_fmt)  # yuv422p10le -> 10; yuv420p -> 8
    return int(m.group(1)) if m else 8


def _light_level(side: list[dict[str, Any]]) -> tuple[float | None, float | None] | None:
    """(MaxCLL, MaxFALL) in cd/m2 of a content light level side data entry, None without one.

    A value of 0 means "unknown" (CTA-861.3 §3.2.1; x265 writes 0,0 when max-cll is not given): None."""
    for d in side:
        if "max_content" in d:
            return (float(d["max_content"] or 0) or None), (float(d.get("max_average") or 0) or None)
    return None


def _has_light_level(side: list[dict[str, Any]]) -> bool:
    """MaxCLL/MaxFALL present and meaningful (not 0,0)."""
    level = _light_level(side)
    return level is not None and any(level)


def _bit_rate(text: Any) -> int | None:
    """A bit rate in bit/s from ffprobe's text (``N/A`` or missing -> None)."""
    return int(text) if str(text or "").isdigit() and int(text) > 0 else None


def _video_bit_rate_from_format(video: list[VideoStream], audio: list[AudioStream],
                                fmt: dict[str, Any]) -> list[VideoStream]:
    """Fill a single video stream's missing bit rate from the container's, minus every audio stream's.

    Only when every audio stream's bit rate is known (PCM always is): otherwise the difference would
    be wrong, and a bit rate we cannot know stays None (QC reports it as not measured)."""
    total = _bit_rate(fmt.get("bit_rate"))
    if len(video) != 1 or video[0].bit_rate_bps is not None or total is None:
        return video
    if any(a.bit_rate_bps is None for a in audio):
        return video
    rest = total - sum(a.bit_rate_bps or 0 for a in audio)
    return [video[0].model_copy(update={"bit_rate_bps": rest})] if rest > 0 else video


def _video(s: dict[str, Any]) -> VideoStream:
    field_order = s.get("field_order")
    scan = "unknown"
    if field_order == "progressive":
        scan = "progressive"
    elif field_order in ("tt", "bb", "tb", "bt"):
        scan = "interlaced"
    side = s.get("side_data_list") or []
    side_types = {d.get("side_data_type", "") for d in side}
    rate = _fraction(s.get("r_frame_rate")) or _fraction(s.get("avg_frame_rate")) or Fraction(25)
    frames: Any = s.get("nb_frames")
    return VideoStream(
        index=int(s["index"]),
        codec=s.get("codec_name", "unknown"),
        codec_tag=s.get("codec_tag_string") if s.get("codec_tag_string") not in (None, "[0][0][0][0]") else None,
        profile=s.get("profile"),
        width=int(s.get("width") or 0),
        height=int(s.get("height") or 0),
        sample_aspect_ratio=_fraction(s.get("sample_aspect_ratio"), Fraction(1)) or Fraction(1),
        frame_rate=rate,
        avg_frame_rate=_fraction(s.get("avg_frame_rate")),
        frame_count=int(frames) if str(frames or "").isdigit() else None,
        field_order=field_order,
        scan=scan,
        pix_fmt=s.get("pix_fmt"),
        bit_depth=pix_depth(s.get("pix_fmt"), s.get("bits_per_raw_sample")),
        chroma_subsampling=_chroma(s.get("pix_fmt")),
        color_primaries=s.get("color_primaries"),
        color_transfer=s.get("color_transfer"),
        color_matrix=s.get("color_space"),
        color_range=s.get("color_range"),
        duration_s=_float(s.get("duration")),
        has_mastering_display="Mastering display metadata" in side_types,
        has_content_light_level=_has_light_level(side),
        bit_rate_bps=_bit_rate(s.get("bit_rate")),
    )


def _audio(s: dict[str, Any]) -> AudioStream:
    bits: Any = s.get("bits_per_raw_sample") or s.get("bits_per_sample")
    bit_depth = int(bits) if str(bits or "").isdigit() and int(bits) > 0 else None
    return AudioStream(
        index=int(s["index"]),
        codec=s.get("codec_name", "unknown"),
        channels=int(s.get("channels") or 0),
        channel_layout=s.get("channel_layout"),
        sample_rate_hz=int(s.get("sample_rate") or 0),
        bit_depth=bit_depth,
        duration_s=_float(s.get("duration")),
        language=(s.get("tags") or {}).get("language"),
        bit_rate_bps=_bit_rate(s.get("bit_rate")),
    )


def probe(path: str | Path, what: str = "media file") -> MediaInfo:
    """Probe ``path`` with ffprobe.

    Raises:
        MediaError: the file is missing, empty, or not media ffprobe can read (bad input, exit 2).
    """
    p = require_file(path, what)
    from tasks.audio.reader import wav_truncation  # local: the audio package imports this module

    cut = wav_truncation(p)
    if cut is not None:
        raise MediaError(f"{what} {p} is truncated: its header declares {cut[0]} bytes of audio but only {cut[1]} "
                         "follow; copy or export the complete file again")
    try:
        doc = run_ffprobe_json(["-show_format", "-show_streams", str(p)])
    except FFmpegError as exc:
        last = exc.stderr_tail.splitlines()[-1] if exc.stderr_tail else exc
        raise MediaError(f"{what} {p} is not readable media ({last}). "
                         "Check that it is a complete, uncorrupted media file.") from exc
    streams = doc.get("streams") or []
    fmt = doc.get("format") or {}
    video = [_video(s) for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)]
    audio = [_audio(s) for s in streams if s.get("codec_type") == "audio"]
    video = _video_bit_rate_from_format(video, audio, fmt)
    video = [v.model_copy(update={"variable_rate": _variable_rate(p, v)}) for v in video]
    if not video and not audio:
        raise MediaError(f"{what} {p} has no video or audio streams; is it the right file?")
    fmt_tags = {k.lower(): v for k, v in (fmt.get("tags") or {}).items()}
    timecode = None
    tmcd = 0
    for s in streams:
        tags = {k.lower(): v for k, v in (s.get("tags") or {}).items()}
        if s.get("codec_tag_string") == "tmcd" or (s.get("codec_type") == "data" and "timecode" in tags):
            tmcd += 1
        if timecode is None and tags.get("timecode"):
            timecode = tags["timecode"]
    timecode = timecode or fmt_tags.get("timecode")
    tref: Any = fmt_tags.get("time_reference")
    return MediaInfo(
        path=str(p),
        format_name=fmt.get("format_name", "unknown"),
        size_bytes=int(fmt.get("size") or p.stat().st_size),
        duration_s=_float(fmt.get("duration")),
        video=video,
        audio=audio,
        timecode_tracks=tmcd,
        start_timecode=timecode,
        bwf_time_reference_samples=int(tref) if str(tref or "").isdigit() else None,
    )


_VFR_PACKETS = 2000  # packets read to confirm a variable rate: the index of a long master is not read whole


def _variable_rate(path: Path, v: VideoStream) -> str | None:
    """Why ``v``'s frame rate is variable, or None when it is constant.

    ffprobe's ``r_frame_rate`` (the base rate) and ``avg_frame_rate`` (frames / duration) agree for a constant
    rate; only when they differ are the first packets' durations read (no decode), and more than one duration
    confirms it (an edit list or a short last frame alone moves the average, not the durations).
    Reading stops after the first ``_VFR_PACKETS`` packets."""
    if v.avg_frame_rate is None or v.avg_frame_rate == v.frame_rate:
        return None
    try:
        doc = run_ffprobe_json(["-select_streams", str(v.index), "-read_intervals", f"%+#{_VFR_PACKETS}",
                                "-show_entries", "packet=duration_time", str(path)])
    except FFmpegError:
        return None
    durations = sorted({round(float(d), 6) for pk in doc.get("packets") or []
                        if (d := pk.get("duration_time")) not in (None, "N/A")})
    # Rounding to the container's time base (25 fps in 1/15360: 614 and 615 ticks) is not a variable rate.
    if len(durations) < 2 or durations[-1] - durations[0] <= 0.1 / float(v.frame_rate):
        return None
    avg = float(v.avg_frame_rate)
    return (f"variable frame rate: r_frame_rate {v.frame_rate} but avg_frame_rate {v.avg_frame_rate} "
            f"({avg:.3f} fps), frame durations {durations[0] * 1000:.1f} to {durations[-1] * 1000:.1f} ms")


def _is_cover_art(s: dict[str, Any]) -> bool:
    return bool((s.get("disposition") or {}).get("attached_pic"))


def tagged_light_level(path: str) -> tuple[float | None, float | None]:
    """(MaxCLL, MaxFALL) in cd/m2 from the stream's (else the first frame's) content light level side data;
    a MaxCLL or MaxFALL of 0 ("unknown") is None."""
    doc = run_ffprobe_json(["-select_streams", "v:0", "-show_streams", "-show_frames", "-read_intervals", "%+#1",
                            path])
    for item in [*(doc.get("streams") or []), *(doc.get("frames") or [])]:
        level = _light_level(item.get("side_data_list") or [])
        if level is not None:
            return level
    return None, None
