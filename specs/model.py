"""The delivery-spec model: strict, typed, with units in every name.

A spec says what a distributor accepts (``picture``, ``audio``, ``timing``, ``checks``) and what to
make for it (``deliverables``). Every model forbids unknown keys and is frozen. Values carry their
unit in the key name (``target_lufs``, ``max_true_peak_dbtp``, ``head_black_s``); a value written
with a unit (``"-23 LUFS"``) or in the wrong unit (``"-23 dB"``) is refused with a message that
says how to write it. Frame rates are :class:`fractions.Fraction` (``24000/1001``; a decimal
``29.97`` is snapped to ``30000/1001``).

The QC engine reads a :class:`Spec` and asks ``spec.check("picture.black")`` for the severity and
thresholds of each check in :data:`KNOWN_CHECKS`; ``spec.for_facts(facts)`` applies the spec's
conditional ``when:`` rules to the probed facts of a master.

References: EBU R 128 (2020) and Tech 3343; ITU-R BS.1770-4; EBU R 103 (2020); SMPTE ST 12-1
(drop-frame timecode). See ``specs/README.md`` for authors.
"""

from __future__ import annotations

import difflib
import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from specs.errors import SpecError
from specs.layouts import CHANNEL_LABELS, SPEC_LAYOUT_NAMES, spec_layout
from specs.severity import CheckSeverity, Severity
from specs.timecode import (
    CANONICAL_TIMECODE_PATTERN,
    DROP_FRAME_RATES,
    FrameRateError,
    Timecode,
    TimecodeError,
    TimecodeFields,
    parse_frame_rate,
    split_timecode,
)

__all__ = [
    "SCHEMA_VERSION",
    "KNOWN_CHECKS",
    "CheckInfo",
    "HdrMode",
    "NAME_TEMPLATE_FIELDS",
    "Tolerance",
    "Range",
    "Provenance",
    "Colour",
    "PictureSpec",
    "LoudnessSpec",
    "AudioTrackSpec",
    "AudioSpec",
    "TimingSpec",
    "CheckSpec",
    "VideoEncode",
    "AVC_INTRA_PIX_FMT",
    "AVC_INTRA_PROFILE",
    "AudioMap",
    "BurnIn",
    "Watermark",
    "Deliverable",
    "Condition",
    "Override",
    "WhenRule",
    "ManualCheck",
    "DeliveryDocument",
    "Spec",
    "check_name_template",
    "render_deliverable_name",
    "did_you_mean",
]

#: The spec file format version this code reads and writes (YAML key ``schema``).
SCHEMA_VERSION = 1

HdrMode = Literal["none", "hdr10", "hlg", "dolby-vision"]


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> str | None:
    """A hint ``did you mean 'x'?`` for the closest of ``choices``, or ``None``."""
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f"did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [lowered[c] for c in difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)]
    return f"did you mean '{close[0]}'?" if close else None


def _problem(message: str, hint: str | None = None, **ctx: Any) -> PydanticCustomError:
    """A validation error whose message says what is wrong; ``hint`` says how to fix it."""
    context: dict[str, Any] = dict(ctx)
    if hint:
        context["hint"] = hint
    return PydanticCustomError("deliver", message, context)


# --------------------------------------------------------------------------------------------
# Numbers with units
# --------------------------------------------------------------------------------------------

_NUMBER_WITH_UNIT = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%µ/]+)?\s*$")


def _unit_number(unit: str, lo: float | None, hi: float | None, *, sign_hint: str | None = None,
                 integer: bool = False) -> Callable[[Any], Any]:
    """A before-validator for a number in ``unit``, bounded by [lo, hi] (inclusive)."""

    def parse(value: Any) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            if value is None:
                return value
            raise _problem(f"expected a number in {unit}, got {type(value).__name__} {value!r}",
                           f"write a plain number, e.g. {_example(lo, hi, integer)}")
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            match = _NUMBER_WITH_UNIT.match(value.replace("\u2212", "-"))
            if not match:
                raise _problem(f"'{value}' is not a number (this value is in {unit})",
                               f"write a plain number, e.g. {_example(lo, hi, integer)}")
            if match.group(2):
                given = match.group(2)
                if given.lower() in (unit.lower(), "lkfs" if unit == "LUFS" else unit.lower()):
                    raise _problem(f"'{value}' carries a unit; the key name already says {unit}",
                                   f"write {match.group(1)} without the unit")
                raise _problem(f"'{value}' is in {given} but this value is in {unit}",
                               f"convert to {unit} and write the plain number (the unit is in the key name)")
            number = float(match.group(1))
        else:
            raise _problem(f"expected a number in {unit}, got {value!r}", None)
        if math.isnan(number) or math.isinf(number):
            raise _problem(f"{value!r} is not a finite number", f"write a number in {unit}")
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            bounds = f"between {lo:g} and {hi:g}" if lo is not None and hi is not None else (
                f"at least {lo:g}" if lo is not None else f"at most {hi:g}")
            hint = sign_hint.format(neg=-abs(number)) if sign_hint and number > 0 and (hi is not None and hi <= 0) \
                else f"a value in {unit} is {bounds}"
            raise _problem(f"{number:g} {unit} is out of range (must be {bounds} {unit})", hint)
        if integer:
            if number != int(number):
                raise _problem(f"{number:g} must be a whole number of {unit}", f"write {round(number)}")
            return int(number)
        return number

    return parse


def _example(lo: float | None, hi: float | None, integer: bool) -> str:
    if lo is not None and hi is not None:
        value = (lo + hi) / 2
    else:
        value = lo if lo is not None else (hi if hi is not None else 1)
    return str(int(value)) if integer or float(value).is_integer() else f"{value:g}"


def _unit(unit: str, lo: float | None = None, hi: float | None = None, *, sign_hint: str | None = None,
          integer: bool = False) -> Any:
    bounds: dict[str, Any] = {}
    if lo is not None:
        bounds["ge"] = lo
    if hi is not None:
        bounds["le"] = hi
    return (Field(description=f"unit: {unit}", **bounds),
            BeforeValidator(_unit_number(unit, lo, hi, sign_hint=sign_hint, integer=integer)))


_NEG = "loudness and peak levels are negative; did you mean {neg:g}?"
Lufs = Annotated[float, *_unit("LUFS", -70.0, 0.0, sign_hint=_NEG)]
Dbtp = Annotated[float, *_unit("dBTP", -30.0, 0.0, sign_hint=_NEG)]
Seconds = Annotated[float, *_unit("s", 0.0, 86_400.0)]
Percent = Annotated[float, *_unit("%", 0.0, 100.0)]
Hertz = Annotated[int, *_unit("Hz", 8_000, 384_000, integer=True)]
Bits = Annotated[int, *_unit("bit", 8, 32, integer=True)]
Pixels = Annotated[int, *_unit("px", 16, 16_384, integer=True)]
Kbps = Annotated[int, *_unit("kbit/s", 1, 10_000_000, integer=True)]
Frames = Annotated[int, *_unit("frames", 0, 1_000_000, integer=True)]

# --------------------------------------------------------------------------------------------
# Frame rates and timecode
# --------------------------------------------------------------------------------------------

def _frame_rate(value: Any) -> Fraction:
    """:func:`specs.timecode.parse_frame_rate` as a validator: its problem and hint for the linter."""
    try:
        return parse_frame_rate(value)
    except FrameRateError as exc:
        raise _problem(exc.problem, exc.hint) from None


def _rate_to_json(rate: Fraction) -> int | str:
    return rate.numerator if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


FrameRate = Annotated[
    Fraction,
    BeforeValidator(_frame_rate),
    PlainSerializer(_rate_to_json, when_used="json"),
    WithJsonSchema({
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
            {"type": "string", "pattern": r"^\s*\d+(\s*/\s*\d+)?\s*$|^\s*\d*\.\d+\s*$"},
        ],
        "description": "frames per second: 25, \"24000/1001\" or 29.97 (snapped to 30000/1001)",
        "examples": [25, "24000/1001", "30000/1001", 50],
    }),
]

def _timecode_fields(text: Any) -> TimecodeFields:
    """A spec's timecode text: two digits each, ``;`` before the frames for drop-frame, hours 00-23."""
    try:
        fields = split_timecode(text)
    except TimecodeError as exc:
        raise _problem(exc.problem, exc.hint) from None
    if not fields.canonical:
        raise _problem(f"'{text}' is not a timecode", "write HH:MM:SS:FF, e.g. 10:00:00:00 (HH:MM:SS;FF for "
                       "drop-frame)")
    if fields.hours > 23 or fields.minutes > 59 or fields.seconds > 59:
        raise _problem(f"'{text}' is not a valid timecode (hours 00-23, minutes and seconds 00-59)",
                       "write HH:MM:SS:FF, e.g. 10:00:00:00")
    return fields


def _timecode(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, str):
        raise _problem(f"timecode must be text like \"10:00:00:00\", got {value!r}",
                       "quote it: \"10:00:00:00\"")
    _timecode_fields(value)
    return value.strip()


#: Timecode as a spec writes it (text; it becomes a :class:`specs.timecode.Timecode` once the
#: master's rate is known).
TimecodeText = Annotated[str, BeforeValidator(_timecode), WithJsonSchema(
    {"type": "string", "pattern": CANONICAL_TIMECODE_PATTERN,
     "examples": ["10:00:00:00", "01:00:00:00", "00:59:59;28"]})]


# --------------------------------------------------------------------------------------------
# Base model and small value types
# --------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Tolerance(_Model):
    """An allowed deviation below (``minus``) and above (``plus``) a target, both >= 0.

    YAML: a number for a symmetric window (``2`` = -2/+2), or ``{minus: 3, plus: 0}``. The unit is
    the target's (LU for ``tolerance_lu``).
    """

    minus: float = Field(ge=0, description="allowed deviation below the target")
    plus: float = Field(ge=0, description="allowed deviation above the target")

    @model_validator(mode="before")
    @classmethod
    def _symmetric(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise _problem(f"tolerance must be a number or {{minus:, plus:}}, got {value!r}", "write e.g. 2")
        if isinstance(value, (int, float, str)):
            number = _unit_number("LU", 0.0, 40.0)(value)
            return {"minus": number, "plus": number}
        return value

    def contains(self, target: float, value: float) -> bool:
        """Whether ``value`` lies within ``target - minus .. target + plus``."""
        return target - self.minus <= value <= target + self.plus


_TOLERANCE_JSON = {
    "anyOf": [
        {"type": "number", "minimum": 0, "description": "symmetric: ±value"},
        {"type": "object", "additionalProperties": False, "required": ["minus", "plus"],
         "properties": {"minus": {"type": "number", "minimum": 0}, "plus": {"type": "number", "minimum": 0}}},
    ],
    "description": "±number, or {minus:, plus:} for an asymmetric window",
}
ToleranceField = Annotated[Tolerance, WithJsonSchema(_TOLERANCE_JSON)]


class Range(_Model):
    """An inclusive interval; either end may be open (``null``). The unit is in the parent key."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise _problem("a range needs min, max or both", "write {min: 1, max: 2}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _problem(f"range min {self.min:g} is greater than max {self.max:g}", "swap min and max")
        return self

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class Provenance(_Model):
    """Where the rules come from. ``confidence``: P = primary source read, S = secondary (summary,
    re-host), NC = not confirmed (common practice, to verify against the distributor's current PDF)."""

    document: str = Field(min_length=1)
    version: str | None = None
    url: str | None = None
    retrieved: date | None = None
    confidence: Literal["P", "S", "NC"]
    notes: str | None = None

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # `version: 1.4` or `version: 2015-08-07` unquoted: YAML makes a number or date; keep the text.
        if isinstance(value, (int, float, date)) and not isinstance(value, bool):
            return value.isoformat() if isinstance(value, date) else str(value)
        return value


# --------------------------------------------------------------------------------------------
# Picture
# --------------------------------------------------------------------------------------------

#: ffprobe's names (``color_primaries``, ``color_transfer``, ``color_space``).
PRIMARIES = ("bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "film", "bt2020", "smpte428",
             "smpte431", "smpte432", "jedec-p22")
TRANSFERS = ("bt709", "gamma22", "gamma28", "smpte170m", "smpte240m", "linear", "log100", "log316",
             "iec61966-2-4", "bt1361e", "iec61966-2-1", "bt2020-10", "bt2020-12", "smpte2084", "smpte428",
             "arib-std-b67")
MATRICES = ("gbr", "bt709", "fcc", "bt470bg", "smpte170m", "smpte240m", "ycgco", "bt2020nc", "bt2020c",
            "smpte2085", "chroma-derived-nc", "chroma-derived-c", "ictcp")


def _vocabulary(name: str, words: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is None or not isinstance(value, str) or value in words:
            return value
        hint = did_you_mean(value, words) or f"use ffprobe's names: {', '.join(words[:6])} ..."
        raise _problem(f"'{value}' is not a known colour {name}", hint)

    return check


class Colour(_Model):
    """Colour tags as ffprobe reports them (bt709, smpte2084, arib-std-b67, bt2020nc ...)."""

    primaries: Annotated[str | None, BeforeValidator(_vocabulary("primaries", PRIMARIES))] = None
    transfer: Annotated[str | None, BeforeValidator(_vocabulary("transfer", TRANSFERS))] = None
    matrix: Annotated[str | None, BeforeValidator(_vocabulary("matrix", MATRICES))] = None
    range: Literal["tv", "pc"] | None = Field(None, description="tv = limited (16-235), pc = full")


def _one_or_many(value: Any) -> Any:
    return [value] if value is not None and not isinstance(value, list) else value


class PictureSpec(_Model):
    """What the picture of a master must be. ``None`` means "not constrained"."""

    containers: Annotated[list[Literal["mov", "mxf", "mp4"]] | None, BeforeValidator(_one_or_many)] = None
    codec: str | None = Field(None, description="ffprobe codec_name: prores, h264, hevc, dnxhd, jpeg2000 ...")
    profiles: Annotated[list[str] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="ffprobe profile strings, e.g. [HQ] for ProRes 422 HQ")
    width: Pixels | None = None
    height: Pixels | None = None
    frame_rates: Annotated[list[FrameRate] | None, BeforeValidator(_one_or_many)] = None
    scan: Literal["progressive", "interlaced"] | None = None
    field_order: Literal["tff", "bff"] | None = Field(None, description="for interlaced pictures")
    pix_fmts: Annotated[list[str] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="ffprobe pix_fmt, e.g. yuv422p10le")
    bit_depth: Annotated[int | None, *_unit("bit", 8, 16, integer=True)] = None
    chroma_subsampling: Literal["4:2:0", "4:2:2", "4:4:4"] | None = None
    colour: Colour | None = None
    hdr: HdrMode | None = None
    display_aspect_ratios: Annotated[list[str] | None, BeforeValidator(_one_or_many)] = Field(
        None, description="allowed display aspect ratios as W:H or a decimal ratio, e.g. ['16:9', '1.85', '2.39']")
    bitrate_mbps: Range | None = Field(None, description="video bit rate window in Mbit/s")

    @field_validator("display_aspect_ratios")
    @classmethod
    def _ratios(cls, value: list[str] | None) -> list[str] | None:
        # Distributors write both forms (Amazon: 4:3, 16:9, 1.85, 2.39 ...); QC compares either.
        for ratio in value or []:
            if not re.fullmatch(r"[1-9]\d*:[1-9]\d*|[1-9]\d*(\.\d+)?", str(ratio)):
                raise _problem(f"'{ratio}' is not an aspect ratio", "write it as W:H (16:9) or a decimal (1.85)")
        return [str(r) for r in value] if value else value


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------



class LoudnessSpec(_Model):
    """A loudness rule for one track.

    ``method``: ``bs1770-4`` = ITU-R BS.1770-4 gated programme loudness (what EBU R 128 and ATSC
    A/85 measure); ``dialogue-gated`` = loudness while speech is present (Netflix and Amazon Studios
    name BS.1770-1 with Dolby Dialogue Intelligence). deliver measures it with its own open
    VAD-gated estimate (:mod:`tasks.audio.dialogue`), not with Dolby Dialogue Intelligence; its
    agreement with DI is unknown until measured against DI output. When speech covers less than
    ``min_speech_percent`` of the programme, or dialogue loudness cannot be measured, ``fallback``
    applies (Netflix: below 15 % dialogue, judge by BS.1770 programme loudness).
    """

    method: Literal["bs1770-4", "dialogue-gated"]
    target_lufs: Lufs | None = None
    tolerance_lu: ToleranceField = Field(default_factory=lambda: Tolerance(minus=1.0, plus=1.0))
    max_true_peak_dbtp: Dbtp | None = None
    lra_lu: Range | None = Field(None, description="loudness range window in LU (EBU Tech 3342)")
    max_short_term_lufs: Lufs | None = None
    max_momentary_lufs: Lufs | None = None
    min_speech_percent: Percent = Field(
        15.0, description="dialogue-gated only: below this share of speech in the programme, `fallback` applies")
    fallback: LoudnessSpec | None = Field(
        None, description="rule applied when `method` cannot be measured (dialogue-gated: too little speech)")

    @field_validator("lra_lu")
    @classmethod
    def _lra(cls, value: Range | None) -> Range | None:
        if value is not None and ((value.min is not None and value.min < 0)
                                  or (value.max is not None and value.max > 40)):
            raise _problem("lra_lu must lie within 0..40 LU", "write e.g. {min: 4, max: 18}")
        return value


class AudioTrackSpec(_Model):
    """One logical audio track (a mix) with its explicit channel order."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="stable id used by deliverables")
    label: str
    layout: str = Field(description=f"one of {', '.join(SPEC_LAYOUT_NAMES)}")
    channels: list[str] = Field(description="explicit channel order, e.g. [L, R, C, LFE, Ls, Rs]")
    loudness: LoudnessSpec | None = None

    @field_validator("label", mode="before")
    @classmethod
    def _label_text(cls, value: Any) -> Any:
        # `label: 5.1` unquoted is a number to YAML; the author meant the text.
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("layout", mode="before")
    @classmethod
    def _layout(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = f"{float(value):.1f}"  # 5.1 written unquoted
        if isinstance(value, str) and value not in SPEC_LAYOUT_NAMES:
            raise _problem(f"'{value}' is not a known layout",
                           did_you_mean(value, list(SPEC_LAYOUT_NAMES)) or f"use one of {', '.join(SPEC_LAYOUT_NAMES)}")
        return value

    @field_validator("channels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for index, label in enumerate(value):
            if label not in CHANNEL_LABELS:
                raise _problem(f"'{label}' is not a channel label",
                               did_you_mean(label, CHANNEL_LABELS) or f"use {', '.join(CHANNEL_LABELS)}",
                               field=(index,))
        duplicates = sorted({c for c in value if value.count(c) > 1})
        if duplicates:
            raise _problem(f"channel {', '.join(duplicates)} is listed twice", "list every channel once")
        return value

    @model_validator(mode="after")
    def _count(self) -> AudioTrackSpec:
        expected = spec_layout(self.layout).channels
        if len(self.channels) != expected:
            raise _problem(f"layout {self.layout} has {expected} channel(s) but channels lists {len(self.channels)}",
                           "list every channel of the layout in order, e.g. [L, R, C, LFE, Ls, Rs] for 5.1",
                           field=("channels",))
        return self


class AudioSpec(_Model):
    """The audio of a master: format and the tracks (mixes) in order."""

    codec: str | None = Field(None, description="ffprobe codec_name, e.g. pcm_s24le")
    sample_rate_hz: Hertz
    bit_depth: Bits
    tracks: list[AudioTrackSpec] = Field(min_length=1)

    @field_validator("tracks")
    @classmethod
    def _unique(cls, tracks: list[AudioTrackSpec]) -> list[AudioTrackSpec]:
        seen: set[str] = set()
        for index, track in enumerate(tracks):
            if track.id in seen:
                raise _problem(f"track id '{track.id}' is used twice", "give every track its own id",
                               field=(index, "id"))
            seen.add(track.id)
        return tracks


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


class TimingSpec(_Model):
    """Timecode anchor and head/tail structure.

    ``ffoa_timecode`` is the first frame of action (programme start). ``head_black_s``/
    ``tail_black_s`` bound the black before/after the programme (streaming: 1 frame .. 1 s).
    """

    ffoa_timecode: TimecodeText | None = None
    drop_frame: bool = False
    head_black_s: Range | None = None
    tail_black_s: Range | None = None
    max_programme_black_s: Seconds | None = None
    max_programme_silence_s: Seconds | None = None
    av_duration_tolerance_frames: Frames = 1
    av_duration_tolerance_s: Seconds | None = Field(
        None, description="audio vs video duration tolerance in seconds, for clauses written in seconds "
        "(Amazon: within 2.0 s); when set it is used instead of av_duration_tolerance_frames")
    max_layback_offset_s: Seconds | None = Field(
        None, description="layback: a mix whose BWF time reference puts its start further than this from the "
        "programme start is refused as bad input (unset: any mix that overlaps the programme is placed)")

    @model_validator(mode="after")
    def _separator(self) -> TimingSpec:
        if self.ffoa_timecode and ";" in self.ffoa_timecode and not self.drop_frame:
            raise _problem(f"'{self.ffoa_timecode}' uses ';' (drop-frame) but drop_frame is false",
                           "write HH:MM:SS:FF for non-drop-frame or set drop_frame: true",
                           field=("ffoa_timecode",))
        for key in ("head_black_s", "tail_black_s"):
            window = getattr(self, key)
            if window is not None and ((window.min or 0) < 0 or (window.max or 0) < 0):
                raise _problem(f"{key} cannot be negative", "write seconds >= 0", field=(key,))
        return self

    def ffoa_frame(self, start: Timecode, frame_count: int) -> int | None:
        """Index of the first frame of action in a master that starts at ``start`` and has ``frame_count``
        frames: 0 without ``ffoa_timecode``, ``None`` when the FFOA lies outside the master."""
        if not self.ffoa_timecode:
            return 0
        ffoa = Timecode.parse(self.ffoa_timecode, start.rate, drop_frame=start.drop_frame)
        index = ffoa.frames - start.frames
        return index if 0 <= index < frame_count else None

    def av_tolerance_frames(self, rate: Fraction) -> float:
        """The audio/video duration tolerance in frames at ``rate`` (seconds win when given)."""
        if self.av_duration_tolerance_s is not None:
            return float(self.av_duration_tolerance_s * rate)
        return float(self.av_duration_tolerance_frames)

    def av_tolerance_text(self, rate: Fraction | None = None) -> str:
        """The tolerance as the spec wrote it (plus frames at ``rate`` when written in seconds)."""
        if self.av_duration_tolerance_s is None:
            n = self.av_duration_tolerance_frames
            return f"within {n} frame{'' if n == 1 else 's'}"
        frames = f" ({self.av_tolerance_frames(rate):g} frames)" if rate is not None else ""
        return f"within {self.av_duration_tolerance_s:g} s{frames}"


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckInfo:
    """A QC check the engine knows: its default severity, what it does, which thresholds apply."""

    default_severity: CheckSeverity
    description: str
    params: tuple[str, ...] = ()


#: Every check id a spec may configure. Stable: never rename an id, add a new one.
KNOWN_CHECKS: dict[str, CheckInfo] = {
    "metadata.container": CheckInfo("error", "container is one of picture.containers"),
    "metadata.codec": CheckInfo("error", "video codec equals picture.codec"),
    "metadata.profile": CheckInfo("error", "codec profile is one of picture.profiles (e.g. ProRes HQ)"),
    "metadata.size": CheckInfo("error", "frame size equals picture.width x picture.height"),
    "metadata.pixel_aspect": CheckInfo("error", "square pixels (sample aspect ratio 1:1)"),
    "metadata.frame_rate": CheckInfo("error", "frame rate is one of picture.frame_rates (compared as rationals)"),
    "metadata.scan": CheckInfo("error", "scan type (and field order) match picture.scan / field_order"),
    "metadata.pix_fmt": CheckInfo("error", "pixel format is one of picture.pix_fmts"),
    "metadata.bit_depth": CheckInfo("error", "video bit depth equals picture.bit_depth"),
    "metadata.chroma_subsampling": CheckInfo("error", "chroma subsampling equals picture.chroma_subsampling"),
    "metadata.colour": CheckInfo("warning", "colour primaries/transfer/matrix/range tags match picture.colour"),
    "metadata.colour_untagged": CheckInfo(
        "warning", "the master lacks colour primaries/transfer/matrix/range tags: it is taken to be in "
        "picture.colour and its deliverables carry those tags (without picture.colour they go out untagged)"),
    "metadata.hdr": CheckInfo("error", "HDR mode matches picture.hdr"),
    "metadata.frame_rate_mode": CheckInfo(
        "error", "constant frame rate: ffprobe's r_frame_rate and avg_frame_rate agree, or else the packet durations "
        "do (timecode, layback placement and durations count frames at one rate; deliver refuses a variable-rate "
        "master for layback)"),
    "metadata.video_streams": CheckInfo(
        "error", "one picture stream (cover art aside): layback and deliverables carry the first only, so deliver "
        "refuses a master with more for layback"),
    "metadata.aspect_ratio": CheckInfo("warning", "display aspect ratio is one of picture.display_aspect_ratios"),
    "metadata.bitrate": CheckInfo("warning", "video bit rate lies in picture.bitrate_mbps"),
    "metadata.dolby_vision": CheckInfo("off", "Dolby Vision metadata is present (enable with a when: rule)"),
    "metadata.audio_codec": CheckInfo("error", "audio codec equals audio.codec"),
    "metadata.sample_rate": CheckInfo("error", "audio sample rate equals audio.sample_rate_hz"),
    "metadata.audio_bit_depth": CheckInfo("error", "audio bit depth equals audio.bit_depth"),
    "metadata.audio_tracks": CheckInfo("error", "number of audio tracks matches audio.tracks"),
    "metadata.audio_channels": CheckInfo("error", "channels per track match each track's layout"),
    "metadata.start_timecode": CheckInfo(
        "error", "the timecode track places timing.ffoa_timecode inside the master (and the drop-frame flag matches)"),
    "metadata.timecode_continuity": CheckInfo(
        "error", "the timecode track advances one frame per picture frame, without breaks"),
    "timing.av_duration": CheckInfo(
        "error", "audio and video durations agree within timing.av_duration_tolerance_s (when set) else "
        "timing.av_duration_tolerance_frames"),
    "timing.head_tail_black": CheckInfo(
        "error", "black before/after the programme lies in timing.head_black_s / timing.tail_black_s"),
    "picture.black": CheckInfo(
        "warning", "black inside the programme longer than min_duration_s (default timing.max_programme_black_s); "
        "threshold = pixel black level 0..1", ("min_duration_s", "threshold")),
    "picture.commercial_blacks": CheckInfo(
        "off", "black AND silence together for min_duration_s or longer inside the programme",
        ("min_duration_s",)),
    "picture.freeze": CheckInfo(
        "warning", "frozen picture for min_duration_s or longer; threshold = noise tolerance 0..1",
        ("min_duration_s", "threshold")),
    "picture.illegal_levels": CheckInfo(
        "warning", "EBU R 103 levels: threshold = allowed excursion in % of the nominal range (R 103: 5), "
        "max_share_percent = picture area allowed to exceed it (R 103: 1)", ("threshold", "max_share_percent")),
    "audio.silence": CheckInfo(
        "warning", "silence inside the programme longer than min_duration_s (default "
        "timing.max_programme_silence_s); threshold in dBFS", ("min_duration_s", "threshold")),
    "audio.clipping": CheckInfo(
        "error", "sample peaks at or above threshold dBFS (default -0.1)", ("threshold",)),
    "audio.loudness.integrated": CheckInfo("error", "integrated loudness within target_lufs ± tolerance_lu"),
    "audio.loudness.true_peak": CheckInfo("error", "true peak at most max_true_peak_dbtp"),
    "audio.loudness.lra": CheckInfo("warning", "loudness range (LRA) within lra_lu"),
    "audio.loudness.max_short_term": CheckInfo("error", "short-term loudness at most max_short_term_lufs"),
    "audio.loudness.max_momentary": CheckInfo("error", "momentary loudness at most max_momentary_lufs"),
    "picture.gamut": CheckInfo(
        "warning", "RGB gamut excursions in the tagged colour space: threshold = tolerance beyond 0..1, "
        "max_share_percent = picture area allowed outside the gamut", ("threshold", "max_share_percent")),
    "picture.letterbox": CheckInfo(
        "info", "letterbox/pillarbox bars (black borders) on the programme picture for min_duration_s or longer "
        "(default 1 s); threshold = pixel black level 0..1 of a bar (the engine uses its fixed blackdetect level "
        "today)", ("threshold", "min_duration_s")),
    "picture.interlaced": CheckInfo(
        "error", "interlaced (combed) content in a master declared progressive", ("threshold", "min_duration_s")),
    "picture.hdr_light_level": CheckInfo(
        "warning", "measured MaxCLL/MaxFALL (PQ/HLG masters) exceed the tagged values", ("threshold",)),
    "audio.phase": CheckInfo(
        "warning", "L/R correlation below threshold for min_duration_s (phase-inverted channel)",
        ("threshold", "min_duration_s")),
    "audio.dc_offset": CheckInfo("warning", "DC offset above threshold dBFS on a channel", ("threshold",)),
    "audio.channel_identity": CheckInfo(
        "error", "a channel silent or identical to another for min_duration_s or longer (default 2 s) where the "
        "layout says it carries its own signal (e.g. a 5.1 with a silent centre); threshold = silence level in "
        "dBFS", ("threshold", "min_duration_s")),
    "audio.layback_coverage": CheckInfo(
        "error", "layback: the mix, placed by its BWF time reference, leaves the programme without its sound at the "
        "head (starts after the first frame of action) or the tail (ends before the last frame) by more than "
        "threshold frames (default timing.av_duration_tolerance_s/_frames)", ("threshold",)),
    "audio.mix_bit_depth": CheckInfo(
        "warning", "layback: the mix's sample format differs from the layback master's (audio.codec, default "
        "24-bit integer PCM): 16-bit is padded, 32-bit float loses its resolution and is clipped above 0 dBFS"),
    "audio.layback_trim": CheckInfo(
        "warning", "layback: the mix, placed by its BWF time reference, runs past the picture's first or last frame "
        "by more than threshold frames (default timing.av_duration_tolerance_s/_frames); that part is trimmed",
        ("threshold",)),
    "timing.two_pop": CheckInfo(
        "warning", "2-pop beep within threshold frames of the flash frame 2 s before first frame of action",
        ("threshold",)),
    "package.imf": CheckInfo("off", "delivery must be an IMF package (not supported by deliver yet)"),
}



class CheckSpec(_Model):
    """Severity and thresholds of one QC check (see :data:`KNOWN_CHECKS` for each threshold's unit).

    ``severity`` may also be written in the spec's own vocabulary (``Blocker``); the loader maps it
    back. A missing severity takes the check's default.
    """

    severity: CheckSeverity
    min_duration_s: Seconds | None = None
    threshold: float | None = None
    max_share_percent: Percent | None = None
    clause: str | None = Field(None, description="the distributor's clause this setting comes from")

    @field_validator("threshold", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _unit_number("the check's unit", None, None)(value)
        return value


# --------------------------------------------------------------------------------------------
# Deliverables
# --------------------------------------------------------------------------------------------

# {deliverable} = {id}; {date} = the run date (ISO); {lang} = the programme language; {recipient} =
# the screener recipient given to `deliver run --recipient`.
NAME_TEMPLATE_FIELDS = ("title", "version", "id", "spec", "ext", "date", "deliverable", "lang", "recipient")
CONTAINER_EXTENSIONS = {"mov": "mov", "mp4": "mp4", "mxf": "mxf", "wav": "wav", "dcp": ""}
_AUDIO_CODECS_BY_CONTAINER = {
    "wav": ("pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le"),
    "mp4": ("aac", "alac", "ac3", "eac3"),
}


def check_name_template(template: str) -> None:
    """Refuse a template with unknown fields or one that could leave the output folder.

    Allowed: fields ``{title} {version} {id} {spec} {ext} {date} {deliverable} {lang} {recipient}``
    and relative sub-folders (``{title}/{title}_{id}.{ext}``). Refused: absolute paths, ``..``, backslashes,
    empty parts.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _problem(f"name template '{template}' is malformed: {exc}",
                       "write fields in single braces, e.g. {title}_{id}.mov; double a brace to write it literally"
                       ) from exc
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in NAME_TEMPLATE_FIELDS:
            hint = did_you_mean(field, NAME_TEMPLATE_FIELDS) or (
                "use " + ", ".join("{" + f + "}" for f in NAME_TEMPLATE_FIELDS))
            raise _problem(f"unknown field '{{{field}}}' in name template '{template}'", hint)
        if spec or conversion:
            raise _problem(f"name template field '{{{field}}}' has a format or conversion", f"write {{{field}}}")
    sample = template.format(**{f: f[0].upper() for f in NAME_TEMPLATE_FIELDS})
    reason = _escape_reason(sample)
    if reason:
        raise _problem(f"name template '{template}' {reason}",
                       "deliverable names are relative to the output folder, e.g. {title}_{version}_{id}.{ext}")


def _escape_reason(path: str) -> str | None:
    if not path.strip():
        return "is empty"
    if "\\" in path or "\x00" in path:
        return "contains a backslash or NUL; use '/' for sub-folders"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path) or path.startswith("~"):
        return "is an absolute path and would write outside the output folder"
    parts = path.split("/")
    if ".." in parts:
        return "contains '..' and could write outside the output folder"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' path component"
    return None


def render_deliverable_name(template: str, **fields: str) -> str:
    """Render a deliverable name template; the result is a relative path inside the output folder.

    Args:
        template: e.g. ``"{title}_{version}_{id}.{ext}"``.
        **fields: values for the fields the template uses (:data:`NAME_TEMPLATE_FIELDS`).

    Raises:
        SpecError: the template is unsafe or malformed, a field is missing, or a value contains a
            path separator or is ``.``/``..``.
    """
    try:
        check_name_template(template)
    except PydanticCustomError as exc:
        hint = (exc.context or {}).get("hint")
        raise SpecError(f"{exc.message()}" + (f" ({hint})" if hint else "")) from None
    for key, value in fields.items():
        text = str(value)
        if not text or "/" in text or "\\" in text or "\x00" in text or text in (".", ".."):
            raise SpecError(f"deliverable name field {key}={text!r} would change folders; use a value without "
                            "'/', '\\' or '..'")
    try:
        rendered = template.format(**{k: str(v) for k, v in fields.items()})
    except KeyError as exc:
        raise SpecError(f"name template '{template}' needs a value for {{{exc.args[0]}}}") from None
    reason = _escape_reason(rendered)
    if reason:
        raise SpecError(f"deliverable name '{rendered}' {reason}")
    return rendered


# AVC-Intra 50 is 4:2:0 10-bit (High 10 Intra); 100 and 200 are 4:2:2 10-bit (High 4:2:2 Intra).
AVC_INTRA_PIX_FMT = {50: "yuv420p10le", 100: "yuv422p10le", 200: "yuv422p10le"}
AVC_INTRA_PROFILE = {50: "High 10 Intra", 100: "High 4:2:2 Intra", 200: "High 4:2:2 Intra"}


class VideoEncode(_Model):
    """How to encode the picture of a deliverable (ffmpeg encoder names)."""

    codec: str = Field(description="ffmpeg encoder: prores_ks, libx264, libx265 ...")
    profile: str | None = Field(None, description="encoder profile: hq (prores_ks), high (libx264)")
    width: Pixels | None = None
    height: Pixels | None = None
    pix_fmt: str | None = None
    bitrate_kbps: Kbps | None = None
    crf: Annotated[int | None, *_unit("CRF", 0, 63, integer=True)] = None
    tone_map: Literal["auto", "sdr", "off"] = Field(
        "auto", description="HDR (PQ/HLG) master to SDR BT.709: auto = for 8-bit outputs; sdr = always; "
        "off = keep the master's transfer and tags")
    avc_intra_class: Literal[50, 100, 200] | None = Field(
        None, description="libx264 AVC-Intra (SMPTE RP 2027): intra-only with the class's bit rate and "
        "parameter sets; 1920x1080 or 1280x720 (class 50: 1440x1080 or 960x720)")

    @model_validator(mode="after")
    def _avc_intra(self) -> VideoEncode:
        if self.avc_intra_class is None:
            return self
        if self.codec != "libx264":
            raise _problem(f"avc_intra_class needs codec libx264, not {self.codec}", "set codec: libx264",
                           field=("codec",))
        if self.bitrate_kbps is not None or self.crf is not None:
            raise _problem("avc_intra_class sets the bit rate itself", "remove bitrate_kbps and crf",
                           field=("bitrate_kbps" if self.bitrate_kbps is not None else "crf",))
        want = AVC_INTRA_PIX_FMT[self.avc_intra_class]
        if self.pix_fmt not in (None, want):
            raise _problem(f"AVC-Intra {self.avc_intra_class} is {want}, not {self.pix_fmt}",
                           f"set pix_fmt: {want} or leave it out", field=("pix_fmt",))
        if self.profile is not None:
            raise _problem("avc_intra_class sets the H.264 profile itself", "remove profile", field=("profile",))
        return self


class AudioMap(_Model):
    """One output audio track made from a master track (``from_track`` = an ``audio.tracks`` id)."""

    from_track: str
    codec: str = Field(description="ffmpeg encoder: pcm_s24le, aac ...")
    downmix: Literal["2.0"] | None = None
    loudness_target_lufs: Lufs | None = None
    max_true_peak_dbtp: Dbtp | None = None
    mono_tracks: bool = Field(False, description="one mono track per channel, in the track's channel order "
                              "(broadcast MXF: ARD/ZDF HDF, AS-11)")

    @model_validator(mode="after")
    def _mono_loudness(self) -> AudioMap:
        if self.mono_tracks and self.loudness_target_lufs is not None:
            raise _problem("a loudness target is measured on the whole mix, not on mono tracks",
                           "correct the loudness in a deliverable without mono_tracks, or drop the target",
                           field=("mono_tracks",))
        return self


class BurnIn(_Model):
    """Text burnt into the picture (screeners)."""

    timecode: bool = False
    text: str | None = None


class Watermark(_Model):
    """A visible watermark."""

    text: str = Field(min_length=1)
    opacity: float = Field(0.3, gt=0, le=1)


#: Frame rates a DCP may carry (SMPTE ST 429-2 §6.1 and the HFR rates of SMPTE ST 428-21).
DCP_FRAME_RATES = (24, 25, 30, 48, 50, 60)
#: ISDCF Digital Cinema Naming Convention content types (CPL ContentKind, SMPTE ST 429-7 §6.5).
DCP_CONTENT_KINDS = ("FTR", "TLR", "TSR", "PRO", "TST", "RTG-F", "SHR", "ADV", "XSN", "PSA", "POL", "EPS", "CLP", "EVT")
#: Speed changes a spec may allow: at most 4.3 % (23.976 -> 25, the PAL speed-up), as in film-to-video transfer.
DCP_MAX_SPEED_CHANGE = Fraction(44, 1000)


class IsdcfFields(_Model):
    """The ISDCF Digital Cinema Naming Convention fields a spec fixes (the rest come from the run)."""

    version: int = Field(1, ge=1, le=9, description="content version digit (FTR-1, FTR-2 ...)")
    audio_language: str = Field("EN", pattern=r"^[A-Za-z]{2,3}$", description="audio language code: EN, DE, FR")
    subtitle_language: str = Field("XX", pattern=r"^[A-Za-z]{2,3}$", description="XX: no subtitles")
    territory: str = Field("INT", pattern=r"^[A-Za-z]{2,3}$", description="release territory: US, GB, INT")
    rating: str = Field("", pattern=r"^[A-Za-z0-9+]{0,3}$", description="local rating: PG, 13, blank for none")
    studio: str = Field("DLV", pattern=r"^[A-Za-z0-9]{2,4}$", description="studio code")
    facility: str = Field("DLV", pattern=r"^[A-Za-z0-9]{2,4}$", description="mastering facility code")
    package_type: Literal["OV", "VF"] = Field("OV", description="OV original version, VF version file")


class DcpSpec(_Model):
    """A SMPTE DCP (Bv2.1, SMPTE RDD 52): picture container, rate, sound, reels, naming."""

    standard: Literal["SMPTE"] = Field("SMPTE", description="packaging standard (Interop is not made)")
    resolution: Literal["2k", "4k"] = Field("2k", description="DCI resolution")
    fit: Literal["auto", "flat", "scope", "full"] = Field(
        "auto", description="DCI container (DCI DCSS §3.2.1.2): flat 1998x1080, scope 2048x858, full 2048x1080; "
        "auto: the one nearest the master's aspect")
    scale: Literal["fit", "none"] = Field(
        "fit", description="fit: scale the master into the container keeping its aspect; none: pad only "
        "(the master must fit pixel for pixel)")
    frame_rate: int | None = Field(None, description="DCP frame rate (24, 25, 30, 48, 50, 60); default: the master's")
    speed_change: bool = Field(False, description="allow playing the master at the DCP rate (23.976 -> 24, "
                               "24 -> 25): picture frame for frame, sound resampled with it")
    sound: Literal["5.1", "7.1"] = Field("5.1", description="main sound configuration (SMPTE ST 428-3 channels)")
    reels: int = Field(1, ge=1, le=99, description="number of reels of about equal length")
    content_kind: str = Field("FTR", description="ISDCF content type / CPL ContentKind: FTR, TLR, ADV ...")
    isdcf: IsdcfFields = Field(default_factory=IsdcfFields)
    # SMPTE ST 429-7 Table 2 markers RDD 52 (Bv2.1) wants in a feature; ST 429-16 composition metadata.
    ffec_timecode: TimecodeText | None = Field(
        None, description="first frame of end credits, a timecode of the master (CPL FFEC marker); none: no marker")
    ffmc_timecode: TimecodeText | None = Field(
        None, description="first frame of moving credits (the crawl), a timecode of the master (CPL FFMC marker)")
    luminance_fl: float = Field(14.0, gt=0, le=100, description="screen luminance of peak white the picture was "
                                "graded for, in foot-lamberts (ST 429-16 Luminance; 14 fL = 48 cd/m2, 2D)")
    release_territory: str | None = Field(
        None, pattern=r"^([A-Z]{2}|[0-9]{3})$", description="ST 429-16 ReleaseTerritory: an ISO 3166 region (US, GB) "
        "or a UN M.49 code (001 = world); default from isdcf.territory (INT -> 001, UK -> GB)")
    distributor: str | None = Field(None, min_length=1, description="ST 429-16 Distributor (free text)")
    chain: str | None = Field(None, min_length=1, description="ST 429-16 Chain: the exhibition chain a version is "
                              "made for (free text)")

    @model_validator(mode="after")
    def _dcp(self) -> DcpSpec:
        if self.frame_rate is not None and self.frame_rate not in DCP_FRAME_RATES:
            raise _problem(f"{self.frame_rate} fps is not a DCP rate",
                           f"use one of {', '.join(map(str, DCP_FRAME_RATES))}", field=("frame_rate",))
        if self.content_kind.upper() not in DCP_CONTENT_KINDS:
            raise _problem(f"content kind '{self.content_kind}' is not an ISDCF content type",
                           f"use one of {', '.join(DCP_CONTENT_KINDS)}", field=("content_kind",))
        if self.resolution == "4k" and self.frame_rate not in (None, 24):
            # SMPTE RDD 52 (Bv2.1) / DCI DCSS §3.1.3.2: 4K picture at 24 fps only.
            raise _problem(f"a 4K DCP plays at 24 fps only, not {self.frame_rate}",
                           "set frame_rate: 24 or resolution: 2k", field=("frame_rate",))
        if self.release_territory is None and self.territory_code() is None:
            raise _problem(f"isdcf.territory '{self.isdcf.territory}' is not an ISO 3166 region for the CPL's "
                           "ReleaseTerritory (ST 429-16)", "set release_territory (e.g. US, GB, 001)",
                           field=("release_territory",))
        return self

    def territory_code(self) -> str | None:
        """The CPL ReleaseTerritory: the spec's, else the ISDCF territory's (:func:`release_territory`)."""
        return self.release_territory or release_territory(self.isdcf.territory)


def release_territory(isdcf_territory: str) -> str | None:
    """An ISDCF territory as a CPL ReleaseTerritory (ST 429-16 §6.6: a UN M.49 region, ISO 3166 alpha-2 or
    three digits): ISDCF "INT" is the world, 001; its "UK" is ISO GB; None when it is neither."""
    territory = isdcf_territory.upper()
    named = {"INT": "001", "UK": "GB"}.get(territory, territory)
    return named if re.fullmatch(r"[A-Z]{2}|[0-9]{3}", named) else None


class Deliverable(_Model):
    """One file to make for the distributor."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    kind: Literal["mezzanine", "screener", "proxy", "audio-stem", "downmix", "dcp"]
    container: Literal["mov", "mp4", "mxf", "wav", "dcp"]
    video: VideoEncode | None = None
    dcp: DcpSpec | None = Field(None, description="kind dcp: the DCP's picture, sound, reels and naming")
    audio: list[AudioMap] = Field(default_factory=list)
    burn_in: BurnIn | None = None
    watermark: Watermark | None = None
    include_head: bool = Field(False, description="keep bars/countdown before the FFOA")
    name: str = Field(description="template with {title} {version} {id} {spec} {ext} {date} {deliverable} {lang} "
                                  "{recipient}; relative to the output folder")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        check_name_template(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _dcp_defaults(cls, data: Any) -> Any:
        """A kind dcp deliverable without dcp: gets the defaults (2K, auto container, 5.1, one reel)."""
        if isinstance(data, dict) and data.get("kind") == "dcp" and data.get("dcp") is None:
            data = {**data, "dcp": {}}
        return data

    @model_validator(mode="after")
    def _shape(self) -> Deliverable:
        if (self.kind == "dcp") != (self.container == "dcp"):
            raise _problem("a DCP is kind dcp with container dcp", "set both kind: dcp and container: dcp",
                           field=("container",))
        if self.kind == "dcp":
            return self._dcp_shape()
        if self.dcp is not None:
            raise _problem("dcp: settings belong to a kind dcp deliverable", "remove dcp: or set kind: dcp",
                           field=("dcp",))
        if self.container == "wav":
            if self.video is not None:
                raise _problem("a wav deliverable cannot have video", "remove video: or use container mov",
                               field=("video",))
        elif self.video is None and self.kind in ("mezzanine", "screener"):
            raise _problem(f"a {self.kind} needs video:", "add video: {codec: prores_ks, profile: hq}",
                           field=("kind",))
        if self.container == "mxf" and self.video is not None and self.video.codec in ("libx264", "libx265") \
                and self.video.avc_intra_class is None:
            # ffmpeg's MXF writer has no long-GOP H.264/HEVC mapping: such files decode with broken timestamps.
            raise _problem(f"{self.video.codec} long-GOP cannot go in mxf",
                           "set video: {codec: libx264, avc_intra_class: 100} (AVC-Intra) or use container mov/mp4",
                           field=("video", "codec"))
        if self.video is None and (self.burn_in or self.watermark):
            raise _problem("burn_in and watermark need video", "remove them or add video:",
                           field=("burn_in" if self.burn_in else "watermark",))
        if not self.audio and self.video is None:
            raise _problem("deliverable has neither video nor audio", "add audio: [{from_track: ..., codec: ...}]",
                           field=("audio",))
        allowed = _AUDIO_CODECS_BY_CONTAINER.get(self.container)
        for index, amap in enumerate(self.audio):
            if allowed and amap.codec not in allowed:
                raise _problem(f"audio codec '{amap.codec}' cannot go in {self.container}",
                               f"use one of {', '.join(allowed)}", field=("audio", index, "codec"))
        ext = CONTAINER_EXTENSIONS[self.container]
        if "{ext}" not in self.name and not self.name.lower().endswith("." + ext):
            raise _problem(f"name '{self.name}' does not end in .{ext} but the container is {self.container}",
                           f"end the template with .{ext} or .{{ext}}", field=("name",))
        return self

    def _dcp_shape(self) -> Deliverable:
        """A DCP: one sound track mapped as 24-bit PCM, no ffmpeg video settings, a folder name."""
        for field_name in ("video", "burn_in", "watermark"):
            if getattr(self, field_name) is not None:
                raise _problem(f"a DCP has no {field_name}: settings (JPEG 2000 and X'Y'Z' are fixed by "
                               "SMPTE ST 428-1 / ISO 15444-1 Amd 1)", f"remove {field_name}: and use dcp:",
                               field=(field_name,))
        if len(self.audio) != 1:
            raise _problem(f"a DCP carries one main sound track, {len(self.audio)} mapped",
                           "map one: audio: [{from_track: main-51, codec: pcm_s24le}]", field=("audio",))
        amap = self.audio[0]
        if amap.codec != "pcm_s24le" or amap.downmix or amap.mono_tracks:
            raise _problem("DCP sound is 24-bit PCM of the whole mix (SMPTE ST 428-2)",
                           "write codec: pcm_s24le without downmix or mono_tracks", field=("audio", 0))
        if "{ext}" in self.name or "." in self.name.rsplit("/", 1)[-1]:
            raise _problem(f"name '{self.name}' of a DCP names a folder", "drop the extension", field=("name",))
        return self


# --------------------------------------------------------------------------------------------
# Conditional rules
# --------------------------------------------------------------------------------------------


class Condition(_Model):
    """Facts probed from the master; every key given must match (AND). Lists mean "any of"."""

    frame_rate: Annotated[list[FrameRate] | None, BeforeValidator(_one_or_many)] = None
    scan: Literal["progressive", "interlaced"] | None = None
    hdr: Annotated[list[HdrMode] | None, BeforeValidator(_one_or_many)] = None
    codec: Annotated[list[str] | None, BeforeValidator(_one_or_many)] = None
    container: Annotated[list[str] | None, BeforeValidator(_one_or_many)] = None
    width: Range | None = None
    height: Range | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_fields_set:
            raise _problem("an if: condition needs at least one fact",
                           "write e.g. if: {frame_rate: 24000/1001} (facts: " + ", ".join(Condition.model_fields) + ")")
        return self

    def matches(self, facts: Mapping[str, Any]) -> bool:
        """Whether the probed ``facts`` satisfy every key of this condition (missing fact = no)."""
        for key in self.model_fields_set:
            wanted = getattr(self, key)
            if wanted is None:
                continue
            actual = facts.get(key)
            if actual is None:
                return False
            if key == "frame_rate":
                try:
                    if parse_frame_rate(actual) not in wanted:
                        return False
                except FrameRateError:
                    return False
            elif isinstance(wanted, Range):
                if not wanted.contains(float(actual)):
                    return False
            elif isinstance(wanted, list):
                if actual not in wanted:
                    return False
            elif actual != wanted:
                return False
        return True


class Override(_Model):
    """What a matching ``when`` rule changes (merged over the spec like ``extends``)."""

    picture: PictureSpec | None = None
    timing: TimingSpec | None = None
    checks: dict[str, CheckSpec] | None = None


class WhenRule(_Model):
    """``if`` the probed facts match, ``then`` apply the override. Rules apply in order."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str | None = None
    clause: str | None = None
    if_: Condition = Field(alias="if")
    then: Override


class ManualCheck(_Model):
    """A clause of the distributor's spec that deliver does not check: the operator signs it off."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    clause: str | None = None


class DeliveryDocument(_Model):
    """Paperwork the distributor requires with the files; tracked in the delivery schedule, made outside deliver."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    kind: Literal["music-cue-sheet", "eo-certificate", "chain-of-title", "closed-captions", "other"] = Field(
        description="music cue sheet, errors-and-omissions insurance certificate, chain of title, closed captions")
    description: str | None = None
    required: bool = Field(True, description="false: asked for only if available")
    clause: str | None = None


# --------------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------------

_DEFAULT_SEVERITY_NAMES: dict[str, str] = {"error": "error", "warning": "warning", "info": "info"}


class Spec(_Model):
    """A distributor delivery spec, resolved (after ``extends``)."""

    schema_version: int = Field(SCHEMA_VERSION, alias="schema", description="spec file format version")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)?$")
    extends: list[str] | str | None = None
    abstract: bool = Field(False, description="a base meant only for extends: (may be incomplete)")
    description: str
    provenance: Provenance
    sources: list[Provenance] = Field(default_factory=list, description="further documents consulted")
    severity_names: dict[Severity, str] = Field(
        default_factory=dict, description="the distributor's words for error/warning/info, e.g. Blocker/Issue/FYI")
    picture: PictureSpec
    audio: AudioSpec
    timing: TimingSpec = Field(default_factory=TimingSpec)
    checks: dict[str, CheckSpec] = Field(default_factory=dict)
    when: list[WhenRule] = Field(default_factory=list)
    manual_checks: list[ManualCheck] = Field(default_factory=list)
    documents: list[DeliveryDocument] = Field(
        default_factory=list, description="paperwork delivered with the files (the delivery schedule tracks it)")
    deliverables: list[Deliverable] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _severities(cls, data: Any) -> Any:
        """Map the spec's own severity words to error/warning/info; fill missing severities."""
        if not isinstance(data, dict):
            return data
        names = data.get("severity_names")
        aliases: dict[str, str] = {}
        if isinstance(names, dict):
            aliases = {str(v).lower(): k for k, v in names.items()
                       if isinstance(k, str) and k in _DEFAULT_SEVERITY_NAMES}
        data = dict(data)
        if "checks" in data:
            data["checks"] = _normalise_checks(data["checks"], aliases)
        if isinstance(data.get("when"), list):
            rules = []
            for rule in data["when"]:
                if isinstance(rule, dict) and isinstance(rule.get("then"), dict) and "checks" in rule["then"]:
                    rule = dict(rule)
                    rule["then"] = dict(rule["then"])
                    rule["then"]["checks"] = _normalise_checks(rule["then"]["checks"], aliases)
                rules.append(rule)
            data["when"] = rules
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Spec:
        """Cross-field rules; every problem is reported (ctx ``problems``), not just the first."""
        problems: list[tuple[tuple[Any, ...], str, str | None]] = []
        if self.schema_version != SCHEMA_VERSION:
            problems.append((("schema",), f"schema {self.schema_version} is not {SCHEMA_VERSION}",
                             f"write schema: {SCHEMA_VERSION}"))
        for key, value in self.severity_names.items():
            if not value.strip():
                problems.append((("severity_names", key), f"severity name for {key} is empty", "write e.g. Blocker"))
        _check_checks(self.checks, ("checks",), problems)
        for index, rule in enumerate(self.when):
            if rule.then.checks:
                _check_checks(rule.then.checks, ("when", index, "then", "checks"), problems)
        rule_ids = [r.id for r in self.when]
        for index, rule_id in enumerate(rule_ids):
            if rule_ids.index(rule_id) != index:
                problems.append((("when", index, "id"), f"when rule id '{rule_id}' is used twice",
                                 "give every rule its own id"))
        # Timecode: drop-frame exists only at 30000/1001 and 60000/1001 (SMPTE ST 12-1).
        rates = self.picture.frame_rates or []
        timing = self.timing
        if timing.drop_frame:
            wrong = [r for r in rates if r not in DROP_FRAME_RATES]
            if wrong:
                problems.append((("timing", "drop_frame"),
                                 f"drop-frame timecode is impossible at {_rate_text(wrong[0])} fps",
                                 "drop-frame exists only at 29.97 (30000/1001) and 59.94 (60000/1001); "
                                 "set drop_frame: false or limit picture.frame_rates"))
        if timing.ffoa_timecode:
            tc = _timecode_fields(timing.ffoa_timecode)
            m, s, f = tc.minutes, tc.seconds, tc.frames
            for rate in rates:
                nominal = math.ceil(rate)
                if f >= nominal:
                    problems.append((("timing", "ffoa_timecode"),
                                     f"frame {f:02d} does not exist at {_rate_text(rate)} fps",
                                     f"frames run 00..{nominal - 1:02d}"))
                    break
            if timing.drop_frame and rates and all(r in DROP_FRAME_RATES for r in rates):
                skipped = 4 if Fraction(60000, 1001) in rates else 2
                if s == 0 and f < skipped and m % 10 != 0:
                    problems.append((("timing", "ffoa_timecode"),
                                     f"{timing.ffoa_timecode} does not exist in drop-frame timecode",
                                     f"frames 00..{skipped - 1:02d} are dropped at the start of every minute "
                                     "except each tenth; use the next existing frame"))
        # Deliverables refer to tracks that exist.
        tracks = {t.id: t for t in self.audio.tracks}
        seen: set[str] = set()
        for d_index, deliverable in enumerate(self.deliverables):
            if deliverable.id in seen:
                problems.append((("deliverables", d_index, "id"), f"deliverable id '{deliverable.id}' is used twice",
                                 "give every deliverable its own id"))
            seen.add(deliverable.id)
            for a_index, amap in enumerate(deliverable.audio):
                where = ("deliverables", d_index, "audio", a_index)
                track = tracks.get(amap.from_track)
                if track is None:
                    problems.append((where + ("from_track",), f"deliverable '{deliverable.id}' maps unknown audio "
                                     f"track '{amap.from_track}'",
                                     did_you_mean(amap.from_track, list(tracks)) or
                                     f"audio.tracks ids are: {', '.join(tracks)}"))
                elif deliverable.dcp is not None and track.layout != deliverable.dcp.sound:
                    problems.append((where + ("from_track",), f"the {deliverable.dcp.sound} DCP "
                                     f"'{deliverable.id}' maps track '{track.id}', a {track.layout} mix",
                                     f"map a {deliverable.dcp.sound} track or set dcp.sound: {track.layout}"
                                     if track.layout in ("5.1", "7.1") else "map a 5.1 or 7.1 track"))
                elif amap.downmix == "2.0" and len(track.channels) <= 2:
                    problems.append((where + ("downmix",), f"track '{track.id}' has {len(track.channels)} "
                                     "channel(s); there is nothing to downmix",
                                     "remove downmix: or map a surround track"))
        if problems:
            raise _problem("; ".join(p[1] for p in problems), None, problems=problems)
        return self

    # ---------------------------------------------------------------- API for the QC engine

    def check(self, check_id: str) -> CheckSpec:
        """The spec's setting for ``check_id``, or the check's default (see :data:`KNOWN_CHECKS`).

        Raises:
            KeyError: ``check_id`` is not in :data:`KNOWN_CHECKS`.
        """
        if check_id in self.checks:
            return self.checks[check_id]
        if check_id not in KNOWN_CHECKS:
            raise KeyError(f"unknown check id {check_id!r}; known: {', '.join(KNOWN_CHECKS)}")
        return CheckSpec(severity=KNOWN_CHECKS[check_id].default_severity)

    def severity_name(self, severity: str) -> str:
        """The distributor's word for ``severity`` (``error`` -> ``Blocker`` for Netflix)."""
        return self.severity_names.get(cast(Severity, severity), severity)  # any other text is returned as is

    def track(self, track_id: str) -> AudioTrackSpec:
        """The audio track with ``track_id``."""
        for track in self.audio.tracks:
            if track.id == track_id:
                return track
        raise KeyError(track_id)

    def for_facts(self, facts: Mapping[str, Any]) -> Spec:
        """This spec with every ``when`` rule whose condition matches ``facts`` applied, in order.

        ``facts`` keys: ``frame_rate`` (Fraction or text), ``scan``, ``hdr``, ``codec``,
        ``container``, ``width``, ``height``. A missing fact never matches.
        """
        matching = [rule for rule in self.when if rule.if_.matches(facts)]
        if not matching:
            return self
        data = self.model_dump(mode="python", by_alias=True)
        for rule in matching:
            data = deep_merge(data, rule.then.model_dump(mode="python", by_alias=True, exclude_unset=True))
        return Spec.model_validate(data)

    def applied_rules(self, facts: Mapping[str, Any]) -> list[str]:
        """Ids of the ``when`` rules that match ``facts``."""
        return [rule.id for rule in self.when if rule.if_.matches(facts)]


def _rate_text(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator} ({float(rate):.3f})"


def _normalise_checks(checks: Any, aliases: dict[str, str]) -> Any:
    if not isinstance(checks, dict):
        return checks
    out: dict[Any, Any] = {}
    for check_id, setting in checks.items():
        if isinstance(setting, str):  # shorthand: `picture.freeze: warning`
            setting = {"severity": setting}
        if isinstance(setting, dict):
            setting = dict(setting)
            severity = setting.get("severity")
            if severity is None and check_id in KNOWN_CHECKS:
                setting["severity"] = KNOWN_CHECKS[check_id].default_severity
            elif isinstance(severity, str) and severity.lower() in aliases:
                setting["severity"] = aliases[severity.lower()]
            # Anything else is left for the Literal check, which reports it with its line.
        out[check_id] = setting
    return out


def _check_checks(checks: Mapping[str, CheckSpec], where: tuple[Any, ...],
                  problems: list[tuple[tuple[Any, ...], str, str | None]]) -> None:
    for check_id, setting in checks.items():
        info = KNOWN_CHECKS.get(check_id)
        if info is None:
            problems.append((where + (check_id,), f"unknown check id '{check_id}'",
                             did_you_mean(check_id, list(KNOWN_CHECKS)) or "see `deliver spec explain` or "
                             "specs/README.md for the list of checks"))
            continue
        for param in ("min_duration_s", "threshold", "max_share_percent"):
            if getattr(setting, param) is not None and param not in info.params:
                allowed = ", ".join(info.params) or "no thresholds"
                problems.append((where + (check_id, param), f"check {check_id} does not use {param}",
                                 f"{check_id} takes {allowed}"))


def deep_merge(base: Any, override: Any) -> Any:
    """Merge ``override`` over ``base``: mappings merge key by key; lists and scalars replace."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = deep_merge(base[key], value) if key in base else value
        return out
    return override
