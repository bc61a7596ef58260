"""Synthetic picture masters and mixes with known content and switchable defects.

Used by the demo, the tests and the benchmarks, so that nothing is ever downloaded and every
measured value has a known right answer.

Timeline (all positions are whole frames at the picture rate ``rate``)::

    start_timecode (FFOA - head)                      FFOA = 01:00:00:00          end
    | bars (head - 3 s) | clock "3" (1 s) |2-pop| black (2 s - 1 frame) | programme (programme_s) |

* Picture: SMPTE HD bars, a 1 s countdown clock sweep (with a "3" if a font is found), the 2-pop
  flash frame (full white with a "2") exactly ``round(2 * rate)`` frames before FFOA, black, then a
  ``testsrc2`` programme that moves in every frame (so freeze detection never false-triggers).
  ProRes 422 HQ (prores_ks profile 3, yuv422p10le), BT.709 tagged, limited range, with a QuickTime
  tmcd track starting at FFOA minus the head (00:59:56:00 for a 4 s head).
* Mix: 48 kHz 24-bit PCM BWF (WAVEFORMATEXTENSIBLE, channel mask, ``bext`` TimeReference =
  the picture's start in samples since midnight, i.e. start timecode frames x sample_rate / rate).
  Programme = seeded pink noise + a channel-specific tone under a slow envelope (LFE low-passed at
  80 Hz), scaled so its BS.1770-4 integrated loudness over the programme only equals
  ``programme_loudness_lufs``. Head is digital silence except the 2-pop: 1 kHz at -20 dBFS for
  exactly one frame on every full-range channel (not LFE). An optional line-up tone (1 kHz,
  -20 dBFS, full-range channels) can fill the bars section; it is off by default because it would
  move the whole-file loudness away from the programme loudness.

Defects are injected on request and each one is recorded in the returned :class:`SynthManifest`
with ``timecode_in`` (first affected frame) and ``timecode_out`` (first frame after it,
exclusive), at the picture rate. Positions (``at_s``) are seconds after FFOA, snapped to frames.

Outputs are written atomically (``name.partial.ext``, fsync, rename) and never overwrite an existing
file unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from specs.errors import BadInputError
from specs.layouts import SPEC_LAYOUT_NAMES, spec_layout
from specs.timecode import DROP_FRAME_RATES, Timecode, parse_frame_rate
from tasks.media.ffmpeg import FFmpegProgress, run_ffmpeg
from tasks.media.files import atomic_output

__all__ = [
    "DefectKind",
    "BlackDefect",
    "FreezeDefect",
    "SilenceDefect",
    "ClippingDefect",
    "LoudnessOffsetDefect",
    "IllegalLevelsDefect",
    "WrongChannelCountDefect",
    "ShortMixDefect",
    "Defect",
    "PICTURE_DEFECTS",
    "AUDIO_DEFECTS",
    "MasterSpec",
    "MixSpec",
    "InjectedDefect",
    "SynthManifest",
    "SampleSet",
    "make_master",
    "make_mix",
    "make_sample_set",
    "parse_defects",
    "channel_labels",
    "write_bwf",
    "to_int24",
]

DefectKind = Literal[
    "black", "freeze", "silence", "clipping", "loudness_offset", "illegal_levels",
    "wrong_channel_count", "short_mix",
]
PICTURE_DEFECTS: frozenset[str] = frozenset({"black", "freeze", "illegal_levels"})
AUDIO_DEFECTS: frozenset[str] = frozenset({"silence", "clipping", "loudness_offset", "wrong_channel_count",
                                           "short_mix"})

INT24_MAX = 2**23 - 1
INT24_MIN = -(2**23)
_FULL_SCALE = float(2**23)
_COUNTDOWN_CLOCK_S = 1  # the clock section ("3") before the 2-pop, in seconds
_TWO_POP_BEFORE_FFOA_S = 2
_MAX_RIFF_BYTES = 2**32 - 1
# Fonts drawtext may use for the countdown digits; none is required (the clock sweep is enough).
_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
)
_SAFE_FILTER_PATH = re.compile(r"^[A-Za-z0-9_/.\-]+$")


# ---------------------------------------------------------------------------------------------
# Defects
# ---------------------------------------------------------------------------------------------
class _DefectBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Timed(_DefectBase):
    at_s: float = Field(1.0, ge=0, description="start, seconds after FFOA (snapped to a frame)")
    duration_s: float = Field(1.0, gt=0, description="length in seconds (snapped to whole frames)")


class BlackDefect(_Timed):
    """Programme picture replaced by black (Y = 64 in 10-bit) while the audio keeps playing."""

    kind: Literal["black"] = "black"


class FreezeDefect(_Timed):
    """The frame at ``at_s`` repeated for ``duration_s`` (frames byte-identical after decode)."""

    kind: Literal["freeze"] = "freeze"


class SilenceDefect(_Timed):
    """Digital silence (all samples zero) on every channel."""

    kind: Literal["silence"] = "silence"


class ClippingDefect(_DefectBase):
    """A run of positive full-scale samples (+8388607) on one channel.

    The rest of the programme is re-scaled so that programme loudness stays on target.
    """

    kind: Literal["clipping"] = "clipping"
    at_s: float = Field(1.0, ge=0, description="start, seconds after FFOA (snapped to a sample)")
    duration_s: float = Field(0.005, gt=0, description="run length in seconds (snapped to samples)")
    channel: int = Field(0, ge=0, description="0-based channel index")


class LoudnessOffsetDefect(_DefectBase):
    """Whole programme ``offset_lu`` louder (positive) or quieter (negative) than the target."""

    kind: Literal["loudness_offset"] = "loudness_offset"
    offset_lu: float = 3.0


class IllegalLevelsDefect(_Timed):
    """A full-height strip at the left edge with super-white luma, ``area_share`` of the picture.

    ``luma_code_10bit`` is the 10-bit code value written (legal range is 64-940); it is generated
    at 8 bits, so the value is rounded to a multiple of 4.
    """

    kind: Literal["illegal_levels"] = "illegal_levels"
    area_share: float = Field(0.05, gt=0, le=1)
    luma_code_10bit: int = Field(1000, ge=944, le=1019)


class WrongChannelCountDefect(_DefectBase):
    """The mix is written with ``channels`` channels instead of the layout's count.

    Fewer: the first channels of the layout are kept. More: silent channels are appended.
    """

    kind: Literal["wrong_channel_count"] = "wrong_channel_count"
    channels: int = Field(8, ge=1, le=64)


class ShortMixDefect(_DefectBase):
    """The mix ends ``short_by_s`` (snapped to whole frames) before the picture."""

    kind: Literal["short_mix"] = "short_mix"
    short_by_s: float = Field(1.0, gt=0)


Defect = Annotated[
    BlackDefect | FreezeDefect | SilenceDefect | ClippingDefect | LoudnessOffsetDefect | IllegalLevelsDefect
    | WrongChannelCountDefect | ShortMixDefect,
    Field(discriminator="kind"),
]
_DEFECTS_ADAPTER: TypeAdapter[list[Any]] = TypeAdapter(list[Defect])


def parse_defects(items: Sequence[Any]) -> list[Any]:
    """Defect models from models or dicts such as ``{"kind": "black", "at_s": 1, "duration_s": 1}``.

    Raises:
        BadInputError: unknown kind or parameter.
    """
    try:
        return _DEFECTS_ADAPTER.validate_python(list(items))
    except ValueError as exc:
        raise BadInputError(f"invalid synthetic defect list: {exc}. Kinds: {', '.join(get_args(DefectKind))}") from exc


# ---------------------------------------------------------------------------------------------
# Specs and manifests
# ---------------------------------------------------------------------------------------------
class _TimingSpec(BaseModel):
    """What picture and mix share: rate, head, programme, FFOA."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: Fraction = Fraction(25)
    drop_frame: bool | None = Field(None, description="None: drop-frame for 30000/1001 and 60000/1001")
    head_s: float = Field(4.0, ge=3.0, description="bars + countdown before FFOA; at least 3 s")
    programme_s: float = Field(4.0, ge=1.0)
    ffoa_timecode: str = "01:00:00:00"

    @field_validator("rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Fraction:
        return parse_frame_rate(value)

    @property
    def is_drop_frame(self) -> bool:
        if self.drop_frame is None:
            return self.rate in DROP_FRAME_RATES
        return self.drop_frame


class MasterSpec(_TimingSpec):
    """Picture master parameters. Defaults are small and fast (320x180 25p ProRes 422 HQ)."""

    width: int = Field(320, ge=16)
    height: int = Field(180, ge=16)
    video_codec: str = "prores_ks"
    codec_args: tuple[str, ...] = ("-profile:v", "3", "-vendor", "apl0")
    pix_fmt: str = "yuv422p10le"
    container: str = "mov"

    @classmethod
    def fast_prores(cls, **kwargs: Any) -> MasterSpec:
        """ProRes 422 HQ from ffmpeg's ``prores_aw`` encoder: same profile, ~3x faster at 1080p."""
        return cls(**{"video_codec": "prores_aw", **kwargs})

    @classmethod
    def h264(cls, **kwargs: Any) -> MasterSpec:
        """A cheap H.264 8-bit 4:2:0 variant (smaller, faster; not a mastering format)."""
        base: dict[str, Any] = dict(video_codec="libx264", codec_args=("-preset", "ultrafast", "-crf", "18"),
                                    pix_fmt="yuv420p")
        return cls(**{**base, **kwargs})


class MixSpec(_TimingSpec):
    """Mix parameters: 5.1 (L R C LFE Ls Rs) or 2.0, 48 kHz 24-bit BWF."""

    layout: Literal["5.1", "2.0"] = "5.1"
    sample_rate_hz: int = Field(48000, ge=8000)
    programme_loudness_lufs: float = Field(-24.0, le=-6.0, ge=-60.0)
    two_pop_dbfs: float = Field(-20.0, le=0.0)
    lineup_tone: bool = False
    lineup_tone_dbfs: float = Field(-20.0, le=0.0)
    seed: int = 20240101


class InjectedDefect(BaseModel):
    """One defect as written: where (picture-rate timecodes, out exclusive) and with what."""

    model_config = ConfigDict(frozen=True)

    kind: DefectKind
    timecode_in: str
    timecode_out: str
    parameters: dict[str, Any] = {}


class SynthManifest(BaseModel):
    """What a generated file contains, for tests to assert against."""

    model_config = ConfigDict(frozen=True)

    path: str
    media: Literal["picture", "mix"]
    rate: Fraction
    drop_frame: bool
    ffoa_timecode: str
    start_timecode: str
    end_timecode: str  # first frame after the picture (exclusive)
    two_pop_timecode: str
    head_frames: int
    programme_frames: int
    total_frames: int
    head_s: Fraction
    programme_s: Fraction
    duration_s: Fraction  # of this file (a short mix is shorter than the picture)
    start_seconds: Fraction  # start of the picture on the timecode clock, seconds since midnight
    # picture only
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    pix_fmt: str | None = None
    # mix only
    layout: str | None = None
    channel_labels: tuple[str, ...] = ()
    channels: int | None = None
    sample_rate_hz: int | None = None
    bit_depth: int | None = None
    time_reference_samples: int | None = None
    total_samples: int | None = None
    two_pop_sample: int | None = None
    target_loudness_lufs: float | None = None
    programme_loudness_lufs: float | None = None  # measured BS.1770-4 over the programme only
    file_loudness_lufs: float | None = None  # measured over the whole file (head included)
    defects: tuple[InjectedDefect, ...] = ()

    def defect(self, kind: str) -> InjectedDefect:
        """The first injected defect of ``kind`` (KeyError if none)."""
        for d in self.defects:
            if d.kind == kind:
                return d
        raise KeyError(f"no {kind!r} defect in {self.path}")


@dataclass(frozen=True)
class SampleSet:
    """A master and its mixes as written by :func:`make_sample_set`."""

    out_dir: Path
    master: Path
    master_manifest: SynthManifest
    mixes: dict[str, Path]  # layout ("5.1", "2.0") -> path
    mix_manifests: dict[str, SynthManifest]
    manifest_json: Path

    @property
    def mix(self) -> Path:
        """The primary mix (the first written)."""
        return next(iter(self.mixes.values()))

    @property
    def mix_manifest(self) -> SynthManifest:
        return next(iter(self.mix_manifests.values()))


# ---------------------------------------------------------------------------------------------
# Timeline
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Timeline:
    rate: Fraction
    drop_frame: bool
    ffoa: Timecode
    head_frames: int
    programme_frames: int
    clock_frames: int
    two_pop_frame: int  # file frame index

    @property
    def total_frames(self) -> int:
        return self.head_frames + self.programme_frames

    @property
    def bars_frames(self) -> int:
        return self.two_pop_frame - self.clock_frames

    @property
    def start(self) -> Timecode:
        return self.ffoa - self.head_frames  # type: ignore[return-value]  # Timecode - int is a Timecode

    def tc(self, file_frame: int) -> str:
        """Timecode text of a file frame index."""
        return str(self.start + file_frame)

    def samples_at(self, file_frame: int, sample_rate_hz: int) -> int:
        """First sample of a file frame (exact for integer rates, nearest sample otherwise)."""
        return round(Fraction(file_frame) * sample_rate_hz / self.rate)


def _timeline(spec: _TimingSpec) -> _Timeline:
    rate = spec.rate
    df = spec.is_drop_frame
    ffoa = Timecode.parse(spec.ffoa_timecode, rate, drop_frame=df)
    head = round(Fraction(spec.head_s) * rate)
    programme = round(Fraction(spec.programme_s) * rate)
    clock = round(_COUNTDOWN_CLOCK_S * rate)
    two_pop = head - round(_TWO_POP_BEFORE_FFOA_S * rate)
    if two_pop - clock < 0:
        raise BadInputError(f"head_s={spec.head_s} is too short for the countdown; use head_s >= 3")
    if ffoa.frames - head < 0:
        raise BadInputError(f"head_s={spec.head_s} puts the start before 00:00:00:00 with FFOA "
                            f"{spec.ffoa_timecode}; use a shorter head or a later FFOA")
    return _Timeline(rate=rate, drop_frame=df, ffoa=ffoa, head_frames=head, programme_frames=programme,
                     clock_frames=clock, two_pop_frame=two_pop)


def _frames(seconds: float | Fraction, rate: Fraction) -> int:
    """Nearest frame, halves rounded up (so 0.5 s at 25 fps is 13 frames, never banker's 12)."""
    return int(Fraction(seconds) * rate + Fraction(1, 2))


def _span_frames(tl: _Timeline, at_s: float, duration_s: float, kind: str) -> tuple[int, int]:
    """Programme-relative [first, end) frames of a timed defect, validated to lie inside the programme."""
    first = _frames(at_s, tl.rate)
    end = first + max(1, _frames(duration_s, tl.rate))
    if end > tl.programme_frames:
        prog_s = float(Fraction(tl.programme_frames) / tl.rate)
        raise BadInputError(f"{kind} defect at_s={at_s} duration_s={duration_s} ends after the programme "
                            f"({prog_s:.3f} s); move it earlier, shorten it or lengthen programme_s")
    return first, end


def _validate_defects(tl: _Timeline, defects: Sequence[Any], channels: int | None) -> None:
    """Reject misplaced defects before anything is written (so a sample set is all or nothing)."""
    for d in defects:
        kind: str = d.kind
        if isinstance(d, _Timed):
            first, end = _span_frames(tl, d.at_s, d.duration_s, kind)
            if kind == "freeze" and end - first < 2:
                raise BadInputError("freeze defect needs at least 2 frames; lengthen duration_s")
        elif d.kind == "clipping":
            if channels is not None and d.channel >= channels:
                raise BadInputError(f"clipping channel {d.channel} does not exist in a {channels}-channel mix "
                                    "(channels are 0-based)")
            if Fraction(d.at_s) + Fraction(d.duration_s) > Fraction(tl.programme_frames) / tl.rate:
                raise BadInputError("clipping defect ends after the programme; move it earlier")
        elif d.kind == "short_mix" and _frames(d.short_by_s, tl.rate) >= tl.programme_frames:
            raise BadInputError("short_mix short_by_s must be shorter than the programme")


def _manifest_base(tl: _Timeline, spec: _TimingSpec, path: Path) -> dict[str, Any]:
    return dict(
        path=str(path), rate=tl.rate, drop_frame=tl.drop_frame, ffoa_timecode=str(tl.ffoa),
        start_timecode=str(tl.start), end_timecode=tl.tc(tl.total_frames),
        two_pop_timecode=tl.tc(tl.two_pop_frame), head_frames=tl.head_frames,
        programme_frames=tl.programme_frames, total_frames=tl.total_frames,
        head_s=Fraction(tl.head_frames) / tl.rate, programme_s=Fraction(tl.programme_frames) / tl.rate,
        start_seconds=tl.start.seconds,
    )


# ---------------------------------------------------------------------------------------------
# Atomic output
# ---------------------------------------------------------------------------------------------
def _check_target(path: Path, overwrite: bool) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise BadInputError(f"{path} already exists; pass overwrite=True or choose another path")
    if not path.parent.is_dir():
        raise BadInputError(f"output folder {path.parent} does not exist; create it first")
    return path


def _find_font() -> str | None:
    for candidate in _FONT_CANDIDATES:
        if os.path.isfile(candidate) and _SAFE_FILTER_PATH.match(candidate):
            return candidate
    return None


def _digit(font: str | None, text: str, colour: str, height: int) -> str:
    if font is None:
        return ""
    return (f",drawtext=fontfile={font}:text={text}:fontcolor={colour}:fontsize={max(8, height // 3)}"
            ":x=(w-text_w)/2:y=(h-text_h)/2")


def _picture_graph(spec: MasterSpec, tl: _Timeline, defects: Sequence[Any]) -> tuple[str, list[InjectedDefect]]:
    """The filter graph (output label ``[out]``) and the defects it injects."""
    size = f"{spec.width}x{spec.height}"
    r = f"{tl.rate.numerator}/{tl.rate.denominator}"
    font = _find_font()
    # Segments are made in 8-bit 4:2:2 (drawbox/geq/drawtext in ffmpeg 5.1 are 8-bit) and converted
    # to the output format once, after the concat.
    # Sources draw straight into limited-range YUV (no RGB conversion: cheap at HD; ffmpeg 5.1 draws
    # testsrc2/color with BT.601 coefficients, smptehdbars with BT.709; levels are what matter here). Each segment is
    # tagged limited range, else the final 8->10-bit scale may treat it as full range and squeeze
    # super-whites back into legal range.
    seg = ",format=yuv422p,setsar=1,setparams=range=tv"
    parts: list[str] = []
    labels: list[str] = []
    if tl.bars_frames > 0:
        parts.append(f"smptehdbars=s={size}:r={r},trim=end_frame={tl.bars_frames}{seg}[bars]")
        labels.append("[bars]")
    # Clock: a dark disc with a radial sweep that completes once per second; never brighter than the pop.
    # geq is per-pixel and slow, so it runs at quarter size and is scaled up.
    clock = ("geq=lum='if(lt(hypot(X-W/2,Y-H/2),H*0.42),if(lt(atan2(X-W/2,H/2-Y)+PI,2*PI*mod(T,1)),110,70),40)'"
             ":cb=128:cr=128")
    small = f"{max(16, spec.width // 8 * 2)}x{max(16, spec.height // 8 * 2)}"
    parts.append(f"color=c=black:s={small}:r={r},format=yuv444p,{clock},trim=end_frame={tl.clock_frames},"
                 f"scale={spec.width}:{spec.height}{_digit(font, '3', '0xC0C0C0', spec.height)}{seg}[clock]")
    parts.append(f"color=c=white:s={size}:r={r},trim=end_frame=1{_digit(font, '2', 'black', spec.height)}"
                 f"{seg}[pop]")
    labels += ["[clock]", "[pop]"]
    black_frames = tl.head_frames - tl.two_pop_frame - 1
    if black_frames > 0:
        parts.append(f"color=c=black:s={size}:r={r},trim=end_frame={black_frames}{seg}[gap]")
        labels.append("[gap]")

    # RGB -> Y'CbCr with the BT.709 matrix the file is tagged with (the default would be BT.601,
    # which pushes testsrc2's saturated colours out of the BT.709 gamut when decoded), and RGB
    # kept within 10-90 % so that 4:2:2 chroma overshoot at its hard colour edges stays in gamut:
    # a clean master must QC clean.
    prog = (f"testsrc2=s={size}:r={r},format=rgb24,trim=end_frame={tl.programme_frames},"
            "lutrgb=r='val*0.8+26':g='val*0.8+26':b='val*0.8+26',"
            f"scale=out_color_matrix=bt709:out_range=tv{seg}")
    injected: list[InjectedDefect] = []
    extra: list[str] = []
    # Order matters: freeze first (it copies a frame), then overlays.
    ordered = sorted((d for d in defects if d.kind in PICTURE_DEFECTS),
                     key=lambda d: {"freeze": 0, "black": 1, "illegal_levels": 2}[d.kind])
    for i, d in enumerate(ordered):
        first, end = _span_frames(tl, d.at_s, d.duration_s, d.kind)
        params: dict[str, Any] = {"at_s": float(Fraction(first) / tl.rate),
                                  "duration_s": float(Fraction(end - first) / tl.rate),
                                  "file_frame_in": tl.head_frames + first, "file_frame_out": tl.head_frames + end}
        enable = f"enable='between(n,{first},{end - 1})'"
        if d.kind == "freeze":
            # freezeframes replaces [first, end) by frame `first` of the second input.
            extra.append(f"[p{i}]split[p{i}a][p{i}b];[p{i}a][p{i}b]freezeframes=first={first}:last={end - 1}"
                         f":replace={first}[p{i + 1}]")
        elif d.kind == "black":
            extra.append(f"[p{i}]drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:{enable}[p{i + 1}]")
        else:  # illegal_levels
            strip_px = max(1, round(spec.width * d.area_share))
            # 8-bit code that becomes the requested 10-bit code (x4); >235 is above legal white.
            y8 = min(254, round(d.luma_code_10bit / 4))
            params.update(area_share=strip_px / spec.width, strip_px=strip_px, luma_code_10bit=y8 * 4,
                          region=f"x=0..{strip_px - 1},y=all")
            extra.append(f"[p{i}]geq=lum='if(lt(X,{strip_px}),{y8},lum(X,Y))':cb='cb(X,Y)':cr='cr(X,Y)'"
                         f":{enable}[p{i + 1}]")
        injected.append(InjectedDefect(kind=d.kind, timecode_in=tl.tc(tl.head_frames + first),
                                       timecode_out=tl.tc(tl.head_frames + end), parameters=params))
    parts.append(f"{prog}[p0]")
    parts += extra
    labels.append(f"[p{len(ordered)}]")
    tags = "range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"
    parts.append(f"{''.join(labels)}concat=n={len(labels)}:v=1:a=0,setpts=N/FRAME_RATE/TB,"
                 f"scale=in_range=tv:out_range=tv,format={spec.pix_fmt},setparams={tags}[out]")
    return ";".join(parts), injected


def make_master(
    path: str | Path,
    spec: MasterSpec = MasterSpec(),
    defects: Sequence[Any] = (),
    *,
    overwrite: bool = False,
    progress: Callable[[FFmpegProgress], None] | None = None,
) -> SynthManifest:
    """Write a synthetic picture master (one ffmpeg run) and describe it.

    Args:
        path: output file (``.mov`` by default container).
        spec: size, rate, head/programme durations, codec.
        defects: defect models or dicts; audio-only kinds are ignored here.
        overwrite: replace an existing file.
        progress: ffmpeg ``-progress`` callback.

    Returns:
        The manifest: timecodes, durations, injected picture defects.

    Raises:
        BadInputError: bad parameters or the file exists.
        FFmpegError: ffmpeg failed.
    """
    path = _check_target(Path(path), overwrite)
    defects = parse_defects(defects)
    tl = _timeline(spec)
    _validate_defects(tl, [d for d in defects if d.kind in PICTURE_DEFECTS], None)
    graph, injected = _picture_graph(spec, tl, defects)
    with atomic_output(path, overwrite=overwrite) as partial:
        args = ["-y", "-loglevel", "error", "-filter_complex", graph, "-map", "[out]", "-an",
                "-c:v", spec.video_codec, *spec.codec_args, "-pix_fmt", spec.pix_fmt,
                "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv",
                "-timecode", str(tl.start), "-map_metadata", "-1", "-f", spec.container, str(partial)]
        run_ffmpeg(args, progress=progress, what=f"synthetic master {path.name}")
    return SynthManifest(
        **_manifest_base(tl, spec, path), media="picture",
        duration_s=Fraction(tl.total_frames) / tl.rate, width=spec.width, height=spec.height,
        video_codec=spec.video_codec, pix_fmt=spec.pix_fmt, defects=tuple(injected),
    )


# ---------------------------------------------------------------------------------------------
# Mix
# ---------------------------------------------------------------------------------------------
# WAVEFORMATEXTENSIBLE masks (KSAUDIO_SPEAKER_*): 6 -> 0x3F, what ffmpeg calls "5.1" (L R C LFE Ls Rs);
# 4 -> quad, 8 -> 7.1; other counts carry no mask.
_MASKS = {1: 0x4, 2: 0x3, 4: 0x33, 6: 0x3F, 8: 0x63F}
_TONE_HZ = {"L": 440.0, "R": 554.37, "C": 329.63, "LFE": 40.0, "Ls": 659.25, "Rs": 783.99}
_LEVEL_DB = {"L": 0.0, "R": 0.0, "C": 0.0, "LFE": -6.0, "Ls": -3.0, "Rs": -3.0}
_KSUBFORMAT_PCM = bytes.fromhex("0100000000001000800000aa00389b71")


def channel_labels(layout: str) -> tuple[str, ...]:
    """Channel labels of a layout, in file order (``5.1`` -> L R C LFE Ls Rs)."""
    try:
        return spec_layout(layout).labels
    except KeyError:
        raise BadInputError(f"unknown layout {layout!r}; use one of {', '.join(SPEC_LAYOUT_NAMES)}") from None


def _loudness_lufs(samples: np.ndarray, labels: Sequence[str], sample_rate_hz: int) -> float | None:
    """BS.1770-4 integrated loudness of the full-range channels (pyloudnorm order L R C Ls Rs)."""
    import pyloudnorm  # imported here: only mixes need it

    order = [labels.index(x) for x in ("L", "R", "C", "Ls", "Rs") if x in labels]
    if not order or samples.shape[0] < int(0.4 * sample_rate_hz) + 1:
        return None
    value = pyloudnorm.Meter(sample_rate_hz).integrated_loudness(samples[:, order])
    return float(value) if np.isfinite(value) else None


def _programme_signal(labels: Sequence[str], n: int, sample_rate_hz: int, seed: int) -> np.ndarray:
    """Deterministic programme content: pink noise + a channel tone under a slow envelope."""
    from scipy import signal

    t = np.arange(n) / sample_rate_hz
    out = np.empty((n, len(labels)), dtype=np.float64)
    lfe_sos = signal.butter(4, 80.0, "lowpass", fs=sample_rate_hz, output="sos")
    # Paul Kellet's economy pinking filter: -3 dB/octave within ~0.5 dB, cheap and stable.
    b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
    a = [1.0, -2.494956002, 2.017265875, -0.522189400]
    for c, label in enumerate(labels):
        rng = np.random.default_rng([seed, c])
        noise = signal.lfilter(b, a, rng.standard_normal(n))
        noise /= np.sqrt(np.mean(noise**2)) or 1.0
        tone = np.sqrt(2) * np.sin(2 * np.pi * _TONE_HZ.get(label, 500.0 + 100 * c) * t)
        x = 0.7 * noise + 0.3 * tone
        if label == "LFE":
            x = signal.sosfilt(lfe_sos, x)
        envelope = 0.75 + 0.25 * np.sin(2 * np.pi * 0.7 * t + c)
        out[:, c] = x * envelope * 10 ** (_LEVEL_DB.get(label, 0.0) / 20)
    return out


def _bext_chunk(time_reference: int, sample_rate_hz: int, channels: int, description: str) -> bytes:
    """EBU Tech 3285 ``bext`` (version 1) with TimeReference and a coding history line."""
    history = f"A=PCM,F={sample_rate_hz},W=24,M={'stereo' if channels == 2 else 'multichannel'},T=deliver synth\r\n"
    body = (description.encode()[:256].ljust(256, b"\0") + b"deliver".ljust(32, b"\0")
            + b"deliver-synth".ljust(32, b"\0") + b"2000-01-01" + b"00:00:00"
            + struct.pack("<II", time_reference & 0xFFFFFFFF, time_reference >> 32)
            + struct.pack("<H", 1) + b"\0" * 64 + b"\0" * 10 + b"\0" * 180 + history.encode())
    if len(body) % 2:
        body += b"\0"
    return b"bext" + struct.pack("<I", len(body)) + body


def write_bwf(path: Path, ints: np.ndarray, sample_rate_hz: int, time_reference: int, description: str) -> None:
    """Write int24 samples (int32 array, shape (n, ch), see :func:`to_int24`) as a WAVE_FORMAT_EXTENSIBLE
    BWF whose bext chunk carries ``time_reference`` (samples since midnight, EBU Tech 3285)."""
    n, channels = ints.shape
    block_align = 3 * channels
    data_bytes = n * block_align
    fmt = struct.pack("<HHIIHHHHI16s", 0xFFFE, channels, sample_rate_hz, sample_rate_hz * block_align,
                      block_align, 24, 22, 24, _MASKS.get(channels, 0), _KSUBFORMAT_PCM)
    bext = _bext_chunk(time_reference, sample_rate_hz, channels, description)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + bext
    riff_size = 4 + len(chunks) + 8 + data_bytes + (data_bytes % 2)
    if riff_size > _MAX_RIFF_BYTES:
        raise BadInputError(f"the mix would be {riff_size / 2**30:.1f} GiB, over the 4 GiB WAV limit; "
                            "shorten programme_s")
    with open(path, "wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_bytes))
        block = 1 << 18
        for i in range(0, n, block):
            raw = np.ascontiguousarray(ints[i:i + block], dtype="<i4").view(np.uint8).reshape(-1, channels, 4)
            fh.write(raw[:, :, :3].tobytes())  # little-endian: the low three bytes are the int24
        if data_bytes % 2:
            fh.write(b"\0")


def to_int24(x: np.ndarray) -> np.ndarray:
    """Float samples (full scale 1.0) as 24-bit integers in an int32 array, rounded and clipped."""
    return np.clip(np.round(x * _FULL_SCALE), INT24_MIN, INT24_MAX).astype(np.int32)


def make_mix(
    path: str | Path,
    spec: MixSpec = MixSpec(),
    defects: Sequence[Any] = (),
    *,
    overwrite: bool = False,
) -> SynthManifest:
    """Write a synthetic BWF mix matching a :class:`MasterSpec` with the same timing fields.

    Args:
        path: output ``.wav``.
        spec: layout, loudness target, timing (must match the picture's).
        defects: defect models or dicts; picture-only kinds are ignored here.
        overwrite: replace an existing file.

    Returns:
        The manifest, with measured programme and whole-file loudness and the injected defects.

    Raises:
        BadInputError: bad parameters or the file exists.
    """
    path = _check_target(Path(path), overwrite)
    defects = [d for d in parse_defects(defects) if d.kind in AUDIO_DEFECTS]
    tl = _timeline(spec)
    sr = spec.sample_rate_hz
    labels = channel_labels(spec.layout)
    _validate_defects(tl, defects, len(labels))
    full_range = [i for i, x in enumerate(labels) if x != "LFE"]
    total = tl.samples_at(tl.total_frames, sr)
    prog0 = tl.samples_at(tl.head_frames, sr)
    audio = np.zeros((total, len(labels)), dtype=np.float64)
    prog = audio[prog0:]  # a view: programme edits write through
    prog[:] = _programme_signal(labels, total - prog0, sr, spec.seed)
    injected: list[InjectedDefect] = []

    def frame_of_sample(s: int) -> int:
        return int(Fraction(s) * tl.rate / sr)

    def record(kind: str, f_in: int, f_out: int, **params: Any) -> None:
        injected.append(InjectedDefect(kind=kind, timecode_in=tl.tc(f_in), timecode_out=tl.tc(f_out),
                                       parameters=params))

    # Silence goes in before scaling, so the gated loudness of what is left still hits the target.
    for d in (d for d in defects if d.kind == "silence"):
        first, end = _span_frames(tl, d.at_s, d.duration_s, d.kind)
        s0, s1 = tl.samples_at(tl.head_frames + first, sr), tl.samples_at(tl.head_frames + end, sr)
        audio[s0:s1] = 0.0
        record("silence", tl.head_frames + first, tl.head_frames + end, at_s=float(Fraction(first) / tl.rate),
               duration_s=float(Fraction(end - first) / tl.rate), sample_in=s0, sample_out=s1)

    target = spec.programme_loudness_lufs
    for d in (d for d in defects if d.kind == "loudness_offset"):
        target += d.offset_lu
        record("loudness_offset", tl.head_frames, tl.total_frames, offset_lu=d.offset_lu,
               target_lufs=spec.programme_loudness_lufs, actual_target_lufs=target)
    measured = _loudness_lufs(prog, labels, sr)
    if measured is None:
        raise BadInputError("the programme is silent or shorter than 0.4 s; loudness cannot be set. "
                            "Shorten the silence defect or lengthen programme_s")
    prog *= 10 ** ((target - measured) / 20)

    # Clipping: full-scale runs, then the rest is re-scaled so programme loudness stays on target.
    keep = np.ones(prog.shape, dtype=bool)
    for d in (d for d in defects if d.kind == "clipping"):
        s0 = round(d.at_s * sr)
        s1 = min(prog.shape[0], s0 + max(1, round(d.duration_s * sr)))
        prog[s0:s1, d.channel] = INT24_MAX / _FULL_SCALE
        keep[s0:s1, d.channel] = False
        f_in = frame_of_sample(prog0 + s0)
        f_out = frame_of_sample(prog0 + s1 - 1) + 1
        record("clipping", f_in, f_out, channel=d.channel, channel_label=labels[d.channel],
               sample_in=prog0 + s0, sample_out=prog0 + s1, run_samples=s1 - s0, value=INT24_MAX)
    if not keep.all():
        for _ in range(4):
            now = _loudness_lufs(prog, labels, sr)
            if now is None or abs(now - target) < 0.005:
                break
            prog[keep] *= 10 ** ((target - now) / 20)

    # Head: the 2-pop (and optional line-up tone during bars), added after scaling: fixed levels.
    t = np.arange(total) / sr
    pop0, pop1 = tl.samples_at(tl.two_pop_frame, sr), tl.samples_at(tl.two_pop_frame + 1, sr)
    pop = 10 ** (spec.two_pop_dbfs / 20) * np.sin(2 * np.pi * 1000.0 * (t[pop0:pop1] - t[pop0]))
    for c in full_range:
        audio[pop0:pop1, c] = pop
    if spec.lineup_tone and tl.bars_frames > 0:
        b1 = tl.samples_at(tl.bars_frames, sr)
        tone = 10 ** (spec.lineup_tone_dbfs / 20) * np.sin(2 * np.pi * 1000.0 * t[:b1])
        for c in full_range:
            audio[:b1, c] = tone

    ints = to_int24(audio)
    written_labels: tuple[str, ...] = labels
    for d in (d for d in defects if d.kind == "wrong_channel_count"):
        n_ch = d.channels
        if n_ch < ints.shape[1]:
            ints = ints[:, :n_ch]
            written_labels = labels[:n_ch]
        elif n_ch > ints.shape[1]:
            ints = np.concatenate([ints, np.zeros((ints.shape[0], n_ch - ints.shape[1]), np.int32)], axis=1)
            written_labels = labels + tuple(f"extra{i + 1}" for i in range(n_ch - len(labels)))
        record("wrong_channel_count", 0, tl.total_frames, expected_channels=len(labels), channels=n_ch,
               layout=spec.layout)
    for d in (d for d in defects if d.kind == "short_mix"):
        short_frames = max(1, _frames(d.short_by_s, tl.rate))
        end_sample = tl.samples_at(tl.total_frames - short_frames, sr)
        ints = ints[:end_sample]
        record("short_mix", tl.total_frames - short_frames, tl.total_frames, short_by_frames=short_frames,
               short_by_s=float(Fraction(short_frames) / tl.rate), samples=end_sample,
               missing_samples=total - end_sample)

    # Report what was written, measured from the quantised samples.
    as_float = ints.astype(np.float64) / _FULL_SCALE
    end_prog = min(ints.shape[0], total)
    programme_lufs = _loudness_lufs(as_float[prog0:end_prog], written_labels, sr)
    file_lufs = _loudness_lufs(as_float, written_labels, sr)
    time_reference = round(tl.start.seconds * sr)

    with atomic_output(path, overwrite=overwrite) as partial:
        write_bwf(partial, ints, sr, time_reference, f"deliver synthetic {spec.layout} mix")
    return SynthManifest(
        **_manifest_base(tl, spec, path), media="mix",
        duration_s=Fraction(ints.shape[0], sr), layout=spec.layout, channel_labels=written_labels,
        channels=ints.shape[1], sample_rate_hz=sr, bit_depth=24, time_reference_samples=time_reference,
        total_samples=ints.shape[0], two_pop_sample=pop0, target_loudness_lufs=spec.programme_loudness_lufs,
        programme_loudness_lufs=None if programme_lufs is None else round(programme_lufs, 3),
        file_loudness_lufs=None if file_lufs is None else round(file_lufs, 3),
        defects=tuple(injected),
    )


# ---------------------------------------------------------------------------------------------
# Sample set
# ---------------------------------------------------------------------------------------------
def make_sample_set(
    out_dir: str | Path,
    *,
    layout: Literal["5.1", "2.0"] = "5.1",
    stereo: bool = False,
    master: MasterSpec = MasterSpec(),
    programme_loudness_lufs: float = -24.0,
    defects: Sequence[Any] = (),
    overwrite: bool = False,
) -> SampleSet:
    """Write ``master.mov`` + ``mix_51.wav`` (or ``mix_20.wav``), optionally a stereo mix too.

    Every mix shares the master's timing; the same defect list goes to all files (each file takes
    the kinds that apply to it). ``manifest.json`` in ``out_dir`` holds all manifests.

    Args:
        out_dir: folder to write into (created if missing).
        layout: the primary mix layout.
        stereo: also write ``mix_20.wav`` when the primary layout is 5.1.
        master: picture parameters (timing is shared with the mixes).
        programme_loudness_lufs: mix programme loudness target.
        defects: defect models or dicts.
        overwrite: replace existing files.

    Raises:
        BadInputError: bad parameters or existing files.
        FFmpegError: ffmpeg failed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    defects = parse_defects(defects)
    layouts = [layout] + (["2.0"] if stereo and layout != "2.0" else [])
    names = {"5.1": "mix_51.wav", "2.0": "mix_20.wav"}
    paths = [out / f"master.{master.container}", *(out / names[x] for x in layouts), out / "manifest.json"]
    for p in paths:
        _check_target(p, overwrite)  # fail before writing anything
    tl = _timeline(master)
    _validate_defects(tl, defects, min(len(channel_labels(x)) for x in layouts))
    master_manifest = make_master(paths[0], master, defects, overwrite=overwrite)
    timing = master.model_dump(include=set(_TimingSpec.model_fields))
    mixes: dict[str, Path] = {}
    manifests: dict[str, SynthManifest] = {}
    for lay in layouts:
        mix_spec = MixSpec(**timing, layout=lay, programme_loudness_lufs=programme_loudness_lufs)
        mixes[lay] = out / names[lay]
        manifests[lay] = make_mix(mixes[lay], mix_spec, defects, overwrite=overwrite)
    doc = {"master": master_manifest.model_dump(mode="json"),
           "mixes": {k: v.model_dump(mode="json") for k, v in manifests.items()}}
    manifest_path = paths[-1]
    with atomic_output(manifest_path, overwrite=overwrite) as partial:
        partial.write_text(json.dumps(doc, indent=2) + "\n")
    return SampleSet(out_dir=out, master=paths[0], master_manifest=master_manifest, mixes=mixes,
                     mix_manifests=manifests, manifest_json=manifest_path)
