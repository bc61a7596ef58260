"""ContentTitleText by the ISDCF Digital Cinema Naming Convention (v9.x).

``Title_ContentType-Version[-rate]_Aspect[-image]_Audio-Subs_Territory-Rating_Audio_Resolution_Studio_Date_
Facility_Standard_PackageType``, e.g. ``MyFilm_FTR-1_F_EN-XX_US-13_51_2K_DLV_20261207_DLV_SMPTE_OV``.
Every field is built from the spec and run fields and checked against the convention's character rules,
so a bad field is refused before any encode (exit 2) rather than named wrongly.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from fractions import Fraction

from specs.errors import BadInputError

__all__ = ["DcpNameFields", "content_title_text", "isdcf_title", "aspect_code", "audio_code", "CONTENT_KINDS"]

#: ISDCF content type code -> ST 429-7 ContentKind.
CONTENT_KINDS = {"FTR": "feature", "TLR": "trailer", "TSR": "teaser", "PRO": "promo", "TST": "test",
                 "RTG-F": "rating", "SHR": "short", "ADV": "advertisement", "XSN": "transitional", "PSA": "psa",
                 "POL": "policy", "EPS": "episode", "CLP": "clip", "EVT": "event"}
#: Container (stored size) -> ISDCF aspect code: F flat 1.85, S scope 2.39, C full container 1.90.
_ASPECTS = {(1998, 1080): "F", (3996, 2160): "F", (2048, 858): "S", (4096, 1716): "S", (2048, 1080): "C",
            (4096, 2160): "C"}
_AUDIO = {"5.1": "51", "7.1": "71", "2.0": "20", "mono": "10"}


def aspect_code(width: int, height: int) -> str:
    try:
        return _ASPECTS[(width, height)]
    except KeyError:
        raise BadInputError(f"{width}x{height} is not a DCI container (1998x1080, 2048x858, 2048x1080 or 4K)") \
            from None


def audio_code(layout: str) -> str:
    try:
        return _AUDIO[layout]
    except KeyError:
        raise BadInputError(f"sound layout {layout!r} has no ISDCF audio code; use 5.1 or 7.1") from None


def isdcf_title(title: str) -> str:
    """The title field: letters and digits in CamelCase, at most 14 characters (ISDCF §1)."""
    words = re.findall(r"[A-Za-z0-9]+", title)
    short = "".join(w[:1].upper() + w[1:] for w in words)[:14]
    if not short:
        raise BadInputError(f"title {title!r} has no letters or digits for the ISDCF name")
    return short


@dataclass(frozen=True)
class DcpNameFields:
    title: str
    width: int
    height: int
    layout: str
    edit_rate: Fraction
    content_kind: str = "FTR"
    version: int = 1
    audio_language: str = "EN"
    subtitle_language: str = "XX"  # XX: no subtitles
    territory: str = "INT"
    rating: str = ""
    studio: str = "DLV"
    facility: str = "DLV"
    date: dt.date | None = None
    package_type: str = "OV"  # OV original version, VF version file

    @property
    def resolution(self) -> str:
        return "4K" if self.width > 2048 else "2K"


def _check(name: str, value: str, pattern: str, hint: str) -> str:
    if not re.fullmatch(pattern, value):
        raise BadInputError(f"ISDCF name field {name} = {value!r}: {hint}")
    return value


def content_title_text(f: DcpNameFields) -> str:
    """The ISDCF ContentTitleText. Raises BadInputError naming the field that breaks the convention."""
    kind = _check("content kind", f.content_kind.upper(), "|".join(re.escape(k) for k in CONTENT_KINDS),
                  f"one of {', '.join(CONTENT_KINDS)}")
    if not 1 <= f.version <= 9:
        raise BadInputError(f"ISDCF name field version = {f.version}: a single digit 1-9")
    rate = f.edit_rate
    # Frame rate is named only when it is not 24 (ISDCF §2, "-25", "-48"...).
    rate_part = "" if rate == 24 else f"-{rate.numerator // rate.denominator}" if rate.denominator == 1 else ""
    content = f"{kind}-{f.version}{rate_part}"
    lang = (_check("audio language", f.audio_language.upper(), "[A-Z]{2,3}", "2-3 letters (e.g. EN, DE, QMS)") + "-"
            + _check("subtitle language", f.subtitle_language.upper(), "[A-Z]{2,3}", "2-3 letters, XX for none"))
    territory = _check("territory", f.territory.upper(), "[A-Z]{2,3}", "2-3 letters (e.g. US, GB, INT)")
    if f.rating:
        territory += "-" + _check("rating", f.rating.upper(), r"[A-Z0-9+]{1,3}", "1-3 letters/digits (e.g. 13, PG)")
    studio = _check("studio", f.studio.upper(), "[A-Z0-9]{2,4}", "2-4 letters/digits")
    facility = _check("facility", f.facility.upper(), "[A-Z0-9]{2,4}", "2-4 letters/digits")
    package = _check("package type", f.package_type.upper(), "OV|VF", "OV or VF")
    date = (f.date or dt.datetime.now(dt.UTC).date()).strftime("%Y%m%d")
    return "_".join([isdcf_title(f.title), content, aspect_code(f.width, f.height), lang, territory,
                     audio_code(f.layout), f.resolution, studio, date, facility, "SMPTE", package])
