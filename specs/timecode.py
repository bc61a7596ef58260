"""Rational frame rates and SMPTE timecode: the one parser of each, and the one :class:`Timecode`.

Frame rates are :class:`fractions.Fraction` (``Fraction(24000, 1001)``), never floats: 23.976 is
not 24000/1001 and the difference is a frame every ~17 minutes. Drop-frame applies to 30000/1001
and 60000/1001 only: frame numbers 0,1 (0..3 at 59.94) are skipped at the start of every minute
except every tenth minute (SMPTE ST 12-1 §4.2.2).

Everything that reads a rate (a spec's ``frame_rates``, the synthetic-media parameters) goes
through :func:`parse_frame_rate`; everything that reads timecode text (a spec's
``ffoa_timecode``, ffprobe's ``timecode`` tag, report timecodes) goes through
:func:`split_timecode` / :meth:`Timecode.parse`.

References: SMPTE ST 12-1:2014 (time and control code; drop-frame §4.2.2); SMPTE ST 428-11
(additional frame rates for D-Cinema: 24, 25, 30, 48, 50, 60, 96, 100, 120 fps and their x/1001
variants).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from specs.errors import BadInputError

__all__ = [
    "FrameRateError",
    "TimecodeError",
    "DROP_FRAME_RATES",
    "MAX_FRAME_RATE",
    "parse_frame_rate",
    "nominal_fps",
    "frames_to_seconds",
    "seconds_to_frames",
    "CANONICAL_TIMECODE_PATTERN",
    "TimecodeFields",
    "split_timecode",
    "Timecode",
]

#: Integer bases of the NTSC x/1001 family (SMPTE ST 12-1 rates and the ST 428-11 high rates);
#: decimal spellings snap to them.
_NTSC_BASES = (24, 30, 48, 60, 120)
#: A decimal within this distance of an x/1001 rate means that rate. 0.006 fps admits the
#: two-decimal spellings engineers write ("23.98" is 0.004 from 24000/1001, "47.95" 0.002 from
#: 48000/1001) and the three-decimal ones ("23.976", "29.97", "59.94", "119.88"), while the nearest
#: distinct standard rate (an integer, SMPTE ST 428-11) is 0.024 fps or more away, so no
#: spelling can snap to the wrong family. (Synthetic media used to snap within 0.0015, which
#: accepted a subset of these spellings; every value both rules accept snaps to the same rate.)
NTSC_SNAP_FPS = 0.006
DROP_FRAME_RATES = (Fraction(30000, 1001), Fraction(60000, 1001))
MAX_FRAME_RATE = 300


class FrameRateError(BadInputError):
    """A value that is not a frame rate. ``problem`` says what, ``hint`` how to write it."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(f"{problem}; {hint}")
        self.problem = problem
        self.hint = hint


class TimecodeError(BadInputError):
    """Text that is not a timecode. ``problem`` says what, ``hint`` how to write it."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(f"{problem} ({hint})")
        self.problem = problem
        self.hint = hint


# --------------------------------------------------------------------------------------------
# Frame rates
# --------------------------------------------------------------------------------------------


def parse_frame_rate(value: Any) -> Fraction:
    """A frame rate as an exact rational.

    Accepts ``25``, ``"25"``, ``"24000/1001"``, a :class:`~fractions.Fraction`, and decimal NTSC
    spellings ``23.976``/``29.97``/``59.94`` (snapped to ``x/1001``, see :data:`NTSC_SNAP_FPS`).

    Raises:
        FrameRateError: not a number, not positive, above 300 fps, or a decimal that is no
            standard rate (write those as an exact fraction).
    """
    rate: Fraction
    if isinstance(value, bool) or value is None:
        raise FrameRateError(f"{value!r} is not a frame rate", "write 25, 24000/1001 or 29.97")
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, int):
        rate = Fraction(value)
    elif isinstance(value, float):
        rate = _snap_rate(value)
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+\s*/\s*\d+", text):
            num, den = (int(p) for p in text.split("/"))
            if den == 0:
                raise FrameRateError(f"'{value}' divides by zero", "write 24000/1001, 25 or 30000/1001")
            rate = Fraction(num, den)
        elif re.fullmatch(r"\d+", text):
            rate = Fraction(int(text))
        elif re.fullmatch(r"\d*\.\d+", text):
            rate = _snap_rate(float(text))
        else:
            hint = "write the rate as a number or fraction: 25, 24000/1001, 29.97"
            if re.fullmatch(r"\d+(\.\d+)?\s*(p|i|psf|fps|hz)", text, re.IGNORECASE):
                hint = ("write the frame rate alone (e.g. 25) and put interlace/progressive in "
                        "picture.scan")
            raise FrameRateError(f"'{value}' is not a frame rate: not a number", hint)
    else:
        raise FrameRateError(f"{value!r} is not a frame rate", "write 25, 24000/1001 or 29.97")
    if rate <= 0 or rate > MAX_FRAME_RATE:
        raise FrameRateError(f"frame rate {rate} is out of range", "frame rates are between 1 and 300 fps")
    return rate


def _snap_rate(value: float) -> Fraction:
    nearest = round(value)
    if abs(value - nearest) < 1e-9:
        return Fraction(nearest)
    for base in _NTSC_BASES:
        ntsc = Fraction(base * 1000, 1001)
        if abs(value - float(ntsc)) < NTSC_SNAP_FPS:
            return ntsc
    raise FrameRateError(f"{value:g} fps is not a standard rate",
                         "write non-standard rates as an exact fraction, e.g. 30000/1001")


def nominal_fps(rate: Fraction) -> int:
    """The integer frame count per timecode second (30 for 30000/1001, SMPTE ST 12-1 §4.2)."""
    return round(rate)


def frames_to_seconds(frames: int, rate: Fraction) -> Fraction:
    return Fraction(frames) / rate


def seconds_to_frames(seconds: float | Fraction, rate: Fraction) -> int:
    """Nearest whole frame for a time in seconds."""
    return round(Fraction(seconds) * rate) if isinstance(seconds, Fraction) else round(seconds * float(rate))


# --------------------------------------------------------------------------------------------
# Timecode text
# --------------------------------------------------------------------------------------------

#: ``H:MM:SS:FF`` or ``HH:MM:SS:FF``; ``;`` (or ``,``) before the frames marks drop-frame, ``.`` is
#: a non-drop separator some tools write; three frame digits for rates above 99 fps.
_TC_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")
#: The canonical form (:attr:`TimecodeFields.canonical`), the one a spec must write; given to
#: editors as the JSON-schema pattern of spec timecodes.
CANONICAL_TIMECODE_PATTERN = r"^(\d{2}):(\d{2}):(\d{2})([:;])(\d{2})$"
_TC_HINT = "write HH:MM:SS:FF, e.g. 10:00:00:00 (HH:MM:SS;FF for drop-frame)"


@dataclass(frozen=True)
class TimecodeFields:
    """The fields of a timecode label as written (no rate applied)."""

    hours: int
    minutes: int
    seconds: int
    frames: int
    drop_frame: bool
    #: Written the way a spec must write it: two digits each, ``:`` or ``;`` before the frames.
    canonical: bool


def split_timecode(text: str) -> TimecodeFields:
    """``"HH:MM:SS:FF"`` (``;`` before frames means drop-frame) -> its fields.

    Raises:
        TimecodeError: not a timecode label.
    """
    match = _TC_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise TimecodeError(f"'{text}' is not a timecode", _TC_HINT)
    hh, mm, ss, sep, ff = match.groups()
    return TimecodeFields(int(hh), int(mm), int(ss), int(ff), sep in ";,",
                          canonical=len(hh) == 2 and len(ff) == 2 and sep in ":;")


@dataclass(frozen=True, order=True)
class Timecode:
    """A timecode as a frame count at a rate, with a drop-frame flag (SMPTE ST 12-1)."""

    frames: int
    rate: Fraction
    drop_frame: bool = False

    def __post_init__(self) -> None:
        if self.drop_frame and self.rate not in DROP_FRAME_RATES:
            raise BadInputError(f"drop-frame timecode needs 30000/1001 or 60000/1001, not {self.rate}")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, rate: Fraction | str, drop_frame: bool | None = None) -> Timecode:
        """Parse ``HH:MM:SS:FF`` (``;`` before frames means drop-frame)."""
        rate = parse_frame_rate(rate)
        try:
            fields = split_timecode(text)
        except TimecodeError:
            raise BadInputError(f"timecode {text!r} is not HH:MM:SS:FF (use ';' before frames for "
                                "drop-frame)") from None
        df = fields.drop_frame if drop_frame is None else drop_frame
        h, m, s, f = fields.hours, fields.minutes, fields.seconds, fields.frames
        fps = nominal_fps(rate)
        if m > 59 or s > 59 or f >= fps:
            raise BadInputError(f"timecode {text!r} is out of range at {fps} frames per second")
        frames = ((h * 60 + m) * 60 + s) * fps + f
        if df:
            drop = _drop_per_minute(rate)
            total_minutes = h * 60 + m
            if m % 10 != 0 and s == 0 and f < drop:
                raise BadInputError(f"timecode {text!r} does not exist in drop-frame (frames 0-{drop - 1} "
                                    "are skipped at the start of each minute not divisible by ten)")
            frames -= drop * (total_minutes - total_minutes // 10)
        return cls(frames, rate, df)

    @classmethod
    def from_seconds(cls, seconds: float | Fraction, rate: Fraction, drop_frame: bool = False) -> Timecode:
        return cls(seconds_to_frames(seconds, rate), rate, drop_frame)

    # -- arithmetic -----------------------------------------------------------------------------
    def __add__(self, frames: int) -> Timecode:
        return Timecode(self.frames + int(frames), self.rate, self.drop_frame)

    def __sub__(self, other: Timecode | int) -> Timecode | int:
        if isinstance(other, Timecode):
            return self.frames - other.frames
        return Timecode(self.frames - int(other), self.rate, self.drop_frame)

    @property
    def seconds(self) -> Fraction:
        return frames_to_seconds(self.frames, self.rate)

    # -- formatting -----------------------------------------------------------------------------
    def __str__(self) -> str:
        fps = nominal_fps(self.rate)
        frames = self.frames % (fps * 86400)  # wraps at 24 h like a VTR
        if self.drop_frame:
            drop = _drop_per_minute(self.rate)
            per_10min = fps * 600 - drop * 9
            per_min = fps * 60 - drop
            tens, rem = divmod(frames, per_10min)
            extra = 0 if rem < drop else drop * ((rem - drop) // per_min)
            frames += drop * 9 * tens + extra
        ff = frames % fps
        ss = frames // fps % 60
        mm = frames // (fps * 60) % 60
        hh = frames // (fps * 3600)
        sep = ";" if self.drop_frame else ":"
        return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}"


def _drop_per_minute(rate: Fraction) -> int:
    """Frame numbers dropped per minute: 2 at 30000/1001, 4 at 60000/1001 (SMPTE ST 12-1 §4.2.2)."""
    return 2 * nominal_fps(rate) // 30
