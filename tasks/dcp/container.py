"""DCI image containers and how a master's picture is placed in one.

The containers are the DCI Digital Cinema System Specification v1.4 §3.2.1.2 image structure
(SMPTE ST 428-1 §7): 2K 2048x1080 full, 1998x1080 flat, 2048x858 scope, and their 4K doubles. A
master is scaled to fit (its display aspect kept) and centred; the rest of the container is black,
which in X'Y'Z' is code 0. The active area is what the CPL's MainPictureActiveArea (SMPTE ST 429-16)
reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from specs.errors import MediaError

__all__ = ["Container", "Placement", "CONTAINERS", "choose_container", "place_picture"]

Resolution = Literal["2k", "4k"]
Fit = Literal["flat", "scope", "full", "auto"]


@dataclass(frozen=True)
class Container:
    resolution: Resolution
    name: Literal["flat", "scope", "full"]
    width: int
    height: int

    @property
    def aspect(self) -> Fraction:
        return Fraction(self.width, self.height)

    @property
    def isdcf_aspect(self) -> str:
        """The ISDCF naming convention's aspect field: F (flat), S (scope), C (full container)."""
        return {"flat": "F", "scope": "S", "full": "C"}[self.name]


# DCI DCSS v1.4 §3.2.1.2 / SMPTE ST 428-1 §7.
CONTAINERS: dict[tuple[Resolution, str], Container] = {
    ("2k", "flat"): Container("2k", "flat", 1998, 1080),
    ("2k", "scope"): Container("2k", "scope", 2048, 858),
    ("2k", "full"): Container("2k", "full", 2048, 1080),
    ("4k", "flat"): Container("4k", "flat", 3996, 2160),
    ("4k", "scope"): Container("4k", "scope", 4096, 1716),
    ("4k", "full"): Container("4k", "full", 4096, 2160),
}


@dataclass(frozen=True)
class Placement:
    """Where the master's picture lands in the container, in container pixels."""

    container: Container
    active_width: int
    active_height: int
    x: int
    y: int


def _display_aspect(width: int, height: int, sample_aspect: Fraction) -> Fraction:
    return Fraction(width, height) * (sample_aspect or Fraction(1))


def choose_container(width: int, height: int, sample_aspect: Fraction, resolution: Resolution,
                     fit: Fit) -> Container:
    """The container the spec names, or with ``auto`` the one whose aspect is nearest the master's.

    A 1.78 or 1.85 master goes in flat, 1.90 in full, 2.35-2.40 in scope (the usual DCP mastering
    choice: least black around the picture).
    """
    if fit != "auto":
        return CONTAINERS[(resolution, fit)]
    aspect = _display_aspect(width, height, sample_aspect)
    candidates = [CONTAINERS[(resolution, name)] for name in ("flat", "full", "scope")]
    return min(candidates, key=lambda c: abs(c.aspect - aspect))


def place_picture(width: int, height: int, sample_aspect: Fraction, container: Container,
                  scale: bool = True) -> Placement:
    """Fit the master into the container keeping its display aspect, centred.

    With ``scale=False`` the picture goes in pixel for pixel (only padded), as when the master is
    already a DCDM-sized picture; a master larger than the container is then refused, as is one
    with non-square pixels.
    """
    if width <= 0 or height <= 0:
        raise MediaError(f"the master has no picture size ({width}x{height})")
    if not scale:
        if sample_aspect not in (Fraction(1), Fraction(0)):
            raise MediaError(f"the master's pixels are not square (SAR {sample_aspect}) and the spec forbids "
                             "scaling: set dcp.scale: fit")
        if width > container.width or height > container.height:
            raise MediaError(f"the {container.resolution.upper()} {container.name} container "
                             f"({container.width}x{container.height}) cannot hold the {width}x{height} master "
                             "without scaling: set dcp.scale: fit, or a larger container/resolution")
        active_w, active_h = width, height
    else:
        aspect = _display_aspect(width, height, sample_aspect)
        # Even sizes: the CPL's active area (ST 429-16) is centred in whole pixel pairs, as Bv2.1 checks ask.
        if aspect >= container.aspect:
            active_w = container.width
            active_h = min(container.height, 2 * round(container.width / aspect / 2))
        else:
            active_h = container.height
            active_w = min(container.width, 2 * round(container.height * aspect / 2))
    return Placement(container, active_w, active_h, (container.width - active_w) // 2,
                     (container.height - active_h) // 2)
