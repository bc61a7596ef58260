"""SMPTE timecode with rational frame rates and drop-frame (SMPTE ST 12-1).

Frame rates are :class:`fractions.Fraction` (``Fraction(24000, 1001)``), never floats: 23.976 is
not 24000/1001 and the difference is a frame every ~17 minutes. Drop-frame applies to 30000/1001
and 60000/1001 only: frame numbers 0,1 (0..3 at 59.94) are skipped at the start of every minute
except every tenth minute.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from specs.errors import BadInputError

__all__ = ["Timecode", "parse_rate", "nominal_fps", "frames_to_seconds", "seconds_to_frames"]

_TC_RE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


def parse_rate(value: str | int | float | Fraction) -> Fraction:
    """A frame rate as an exact rational: ``"24000/1001"``, ``"25"``, ``"29.97"`` (snapped).

    Decimal NTSC spellings (23.976, 29.97, 59.94, 47.952, 119.88) are snapped to their x/1001
    rational so that a spec author's "29.97" means what every engineer means.
    """
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, int):
        rate = Fraction(value)
    else:
        text = str(value).strip()
        try:
            rate = Fraction(text) if "/" in text else Fraction(text).limit_denominator(1001)
        except (ValueError, ZeroDivisionError) as exc:
            raise BadInputError(f"frame rate {value!r} is not a number; write it as 24000/1001 or 25") from exc
        if "/" not in text:
            for base in (24, 30, 48, 60, 120):
                ntsc = Fraction(base * 1000, 1001)
                if abs(float(rate) - float(ntsc)) < 0.0015:
                    rate = ntsc
                    break
    if rate <= 0:
        raise BadInputError(f"frame rate {value!r} must be positive")
    return rate


def nominal_fps(rate: Fraction) -> int:
    """The integer frame count per timecode second (30 for 30000/1001)."""
    return round(rate)


def frames_to_seconds(frames: int, rate: Fraction) -> Fraction:
    return Fraction(frames) / rate


def seconds_to_frames(seconds: float | Fraction, rate: Fraction) -> int:
    """Nearest whole frame for a time in seconds."""
    return round(Fraction(seconds) * rate) if isinstance(seconds, Fraction) else round(seconds * float(rate))


@dataclass(frozen=True, order=True)
class Timecode:
    """A timecode as a frame count at a rate, with a drop-frame flag."""

    frames: int
    rate: Fraction
    drop_frame: bool = False

    def __post_init__(self) -> None:
        if self.drop_frame and self.rate not in (Fraction(30000, 1001), Fraction(60000, 1001)):
            raise BadInputError(f"drop-frame timecode needs 30000/1001 or 60000/1001, not {self.rate}")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, rate: Fraction | str, drop_frame: bool | None = None) -> Timecode:
        """Parse ``HH:MM:SS:FF`` (``;`` before frames means drop-frame)."""
        rate = parse_rate(rate)
        match = _TC_RE.match(text.strip())
        if not match:
            raise BadInputError(f"timecode {text!r} is not HH:MM:SS:FF (use ';' before frames for drop-frame)")
        hh, mm, ss, sep, ff = match.groups()
        df = (sep in ";,") if drop_frame is None else drop_frame
        h, m, s, f = int(hh), int(mm), int(ss), int(ff)
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
    return 2 * nominal_fps(rate) // 30
