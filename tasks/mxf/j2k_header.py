"""The JPEG 2000 main-header fields SMPTE ST 422 §5.4 copies into the JPEG2000PictureSubDescriptor.

Only the SIZ, COD and QCD marker segments of the main header (ISO/IEC 15444-1 Annex A.5/A.6) are read;
codestream conformance is checked elsewhere.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["J2KMainHeader", "parse_main_header"]

SOC, SOT, SIZ, COD, QCD = 0xFF4F, 0xFF90, 0xFF51, 0xFF52, 0xFF5C


@dataclass(frozen=True)
class J2KMainHeader:
    rsiz: int
    width: int  # Xsiz - XOsiz
    height: int
    xsiz: int
    ysiz: int
    xosiz: int
    yosiz: int
    xtsiz: int
    ytsiz: int
    xtosiz: int
    ytosiz: int
    components: tuple[tuple[int, int, int], ...]  # (Ssiz, XRsiz, YRsiz) per component
    cod: bytes  # the COD segment after Lcod (Scod, SGcod, SPcod)
    qcd: bytes  # the QCD segment after Lqcd (Sqcd, SPqcd)


def parse_main_header(data: bytes) -> J2KMainHeader:
    """Read SIZ/COD/QCD from a codestream's main header. Raises ValueError if it is not a J2K codestream."""
    if len(data) < 4 or struct.unpack(">H", data[:2])[0] != SOC:
        raise ValueError("not a JPEG 2000 codestream (no SOC marker)")
    pos, segments = 2, dict[int, bytes]()
    while pos + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[pos:pos + 4])
        if marker == SOT:
            break
        segments.setdefault(marker, data[pos + 4:pos + 2 + length])
        pos += 2 + length
    if SIZ not in segments or COD not in segments or QCD not in segments:
        raise ValueError("JPEG 2000 main header lacks SIZ, COD or QCD")
    siz = segments[SIZ]
    if len(siz) < 36:
        raise ValueError("JPEG 2000 SIZ marker segment is truncated")
    rsiz, xs, ys, xo, yo, xt, yt, xto, yto, csiz = struct.unpack(">HIIIIIIIIH", siz[:36])
    comps = tuple(tuple(siz[36 + 3 * i:39 + 3 * i]) for i in range(csiz))
    return J2KMainHeader(rsiz, xs - xo, ys - yo, xs, ys, xo, yo, xt, yt, xto, yto,
                         tuple((c[0], c[1], c[2]) for c in comps), segments[COD], segments[QCD])
