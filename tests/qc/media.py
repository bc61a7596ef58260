"""Tiny generated masters for the QC tests: synth picture + mixes married with one ffmpeg run.

Defects the generator does not make (out-of-gamut, phase inversion, silent centre, interlaced
content, a wrong frame-rate tag) are made here by post-processing generated media.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf

from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.synth import SampleSet, make_sample_set
from tasks.media.timecode import Timecode

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
