"""JPEG 2000 codestream marker parser and the digital-cinema profile check, per frame.

Parses the main header and the tile-part headers of a raw codestream (ISO/IEC 15444-1 Annex A:
SOC, SIZ A.5.1, COD A.6.1, QCD A.6.4, POC A.6.6, TLM A.7.1, SOT A.4.2) and checks them against the
2K/4K digital-cinema profiles of ISO/IEC 15444-1 Amd 1 as SMPTE RDD 52 (the Bv2.1 application
profile) narrows them. ``check_codestream`` is what DCP verification runs on every frame it reads
back from a track file; it returns the problems, empty when the frame conforms.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

__all__ = [
    "Profile",
    "Codestream",
    "TilePart",
    "parse_codestream",
    "check_codestream",
    "max_frame_bytes",
    "max_tile_part_bytes",
    "PROGRESSIONS",
]

Profile = Literal["2k", "4k"]

# ISO/IEC 15444-1 Table A.16: progression order codes in COD/POC.
PROGRESSIONS = ("LRCP", "RLCP", "RPCL", "PCRL", "CPRL")

# ISO/IEC 15444-1 Amd 1 Table A.10 (Rsiz): the digital-cinema capabilities.
_RSIZ = {"2k": 3, "4k": 4}
_LEVELS = {"2k": 5, "4k": 6}
# RDD 52 / libdcp practice: 1 guard bit at 2K, 2 at 4K.
_GUARD_BITS = {"2k": 1, "4k": 2}
# One tile-part per component at 2K; at 4K two per component (2K resolutions, then the 4K level).
_TILE_PARTS = {"2k": 3, "4k": 6}
# ISO/IEC 15444-1 Amd 1: total 250 Mbit/s, per component 200 Mbit/s.
_MAX_BITS_PER_S = 250_000_000
_MAX_COMPONENT_BITS_PER_S = 200_000_000


def max_frame_bytes(fps: int | Fraction = 24) -> int:
    """Bytes a frame may take: 250 Mbit/s (DCI DCSS §4.4.2, RDD 52) over the frame or edit rate
    (1,302,083 at 24 fps)."""
    return int(Fraction(_MAX_BITS_PER_S, 8) / fps)


def max_tile_part_bytes(fps: int = 24) -> int:
    """Bytes one component's tile-part may take: 200 Mbit/s over the frame rate."""
    return _MAX_COMPONENT_BITS_PER_S // (8 * fps)


@dataclass
class TilePart:
    tile: int
    index: int  # TPsot
    count: int  # TNsot (0: unknown)
    length: int  # Psot: SOT marker to the end of the tile-part


@dataclass
class Codestream:
    """What the main header and tile-part headers say (ISO/IEC 15444-1 Annex A)."""

    size_bytes: int
    rsiz: int = 0
    width: int = 0
    height: int = 0
    origin: tuple[int, int] = (0, 0)
    tile_size: tuple[int, int] = (0, 0)
    tile_origin: tuple[int, int] = (0, 0)
    components: list[tuple[int, int, int]] = field(default_factory=list)  # (bit depth, dx, dy)
    coding_style: int = -1  # Scod
    progression: str = ""
    layers: int = 0
    mct: int = -1
    levels: int = -1
    code_block: tuple[int, int] = (0, 0)
    code_block_style: int = -1
    transform: int = -1  # 0: 9/7 irreversible, 1: 5/3 reversible
    precincts: list[tuple[int, int]] = field(default_factory=list)  # (PPx, PPy), lowest resolution first
    guard_bits: int = -1
    quantization_style: int = -1
    cod_count: int = 0
    qcd_count: int = 0
    coc_count: int = 0
    poc_main: list[tuple[int, int, int, int, int, str]] = field(default_factory=list)
    poc_in_tiles: int = 0
    tlm: list[int] = field(default_factory=list)  # tile-part lengths the TLM markers list
    tile_parts: list[TilePart] = field(default_factory=list)
    eoc: bool = False


class _Truncated(ValueError):
    pass


def _u(fmt: str, data: bytes, pos: int) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    if pos + size > len(data):
        raise _Truncated(f"codestream ends inside a marker segment at byte {pos}")
    return struct.unpack_from(fmt, data, pos)


def parse_codestream(data: bytes) -> Codestream:
    """Parse a raw J2K codestream's markers; raises ValueError when it is not one."""
    cs = Codestream(size_bytes=len(data))
    if data[:2] != b"\xff\x4f":
        raise ValueError("not a JPEG 2000 codestream: no SOC marker (FF4F) at byte 0")
    if data[2:4] != b"\xff\x51":
        raise ValueError("SIZ (FF51) must follow SOC (ISO/IEC 15444-1 A.5.1)")
    pos = 2
    in_main = True
    while pos < len(data):
        (marker,) = _u(">H", data, pos)
        if marker == 0xFFD9:
            cs.eoc = True
            break
        if marker >> 8 != 0xFF:
            raise ValueError(f"expected a marker at byte {pos}, found {marker:04X}")
        (length,) = _u(">H", data, pos + 2)
        body = pos + 4
        end = pos + 2 + length
        if end > len(data):
            raise _Truncated(f"marker {marker:04X} at byte {pos} runs past the end of the codestream")
        if marker == 0xFF51:  # SIZ, A.5.1
            (cs.rsiz, xs, ys, xo, yo, xt, yt, xto, yto, csiz) = _u(">HIIIIIIIIH", data, body)
            cs.width, cs.height = xs - xo, ys - yo
            cs.origin, cs.tile_size, cs.tile_origin = (xo, yo), (xt, yt), (xto, yto)
            for c in range(csiz):
                ssiz, dx, dy = _u(">BBB", data, body + 36 + 3 * c)
                cs.components.append(((ssiz & 0x7F) + 1, dx, dy))
        elif marker == 0xFF52:  # COD, A.6.1
            cs.cod_count += 1
            scod, prog, layers, mct, levels, xcb, ycb, cbstyle, transform = _u(">BBHBBBBBB", data, body)
            cs.coding_style, cs.layers, cs.mct, cs.levels = scod, layers, mct, levels
            cs.progression = PROGRESSIONS[prog] if prog < len(PROGRESSIONS) else f"unknown({prog})"
            cs.code_block = (1 << (xcb + 2), 1 << (ycb + 2))
            cs.code_block_style, cs.transform = cbstyle, transform
            if scod & 0x01:  # user-defined precincts, one byte per resolution (Table A.21)
                for r in range(levels + 1):
                    (pp,) = _u(">B", data, body + 10 + r)
                    cs.precincts.append((pp & 0x0F, pp >> 4))
            else:
                cs.precincts = [(15, 15)] * (levels + 1)
        elif marker == 0xFF53:  # COC
            cs.coc_count += 1
        elif marker == 0xFF5C:  # QCD, A.6.4: guard bits are the top 3 bits of Sqcd
            cs.qcd_count += 1
            (sqcd,) = _u(">B", data, body)
            cs.guard_bits, cs.quantization_style = sqcd >> 5, sqcd & 0x1F
        elif marker == 0xFF5F:  # POC, A.6.6 (Csiz < 257: one-byte component indices)
            if not in_main:
                cs.poc_in_tiles += 1
            else:
                for p in range(body, end - 6, 7):
                    rs, cs_, lye, re_, ce, pp = _u(">BBHBBB", data, p)
                    cs.poc_main.append((rs, cs_, lye, re_, ce,
                                        PROGRESSIONS[pp] if pp < len(PROGRESSIONS) else f"unknown({pp})"))
        elif marker == 0xFF55:  # TLM, A.7.1
            (_ztlm, stlm) = _u(">BB", data, body)
            st, sp = (stlm >> 4) & 0x3, (stlm >> 6) & 0x1
            entry = st + (4 if sp else 2)
            for p in range(body + 2, end - entry + 1, entry):
                ptlm = data[p + st:p + entry]
                cs.tlm.append(int.from_bytes(ptlm, "big"))
        elif marker == 0xFF90:  # SOT, A.4.2: Psot jumps to the next tile-part
            in_main = False
            isot, psot, tpsot, tnsot = _u(">HIBB", data, body)
            cs.tile_parts.append(TilePart(isot, tpsot, tnsot, psot))
            if psot == 0:  # last tile-part runs to EOC
                break
            pos += psot
            continue
        pos = end
    return cs


def check_codestream(data: bytes, profile: Profile = "2k", fps: int = 24) -> list[str]:
    """Problems of one frame against the 2K/4K digital-cinema profile (empty list: conforms).

    ISO/IEC 15444-1 Amd 1 (Rsiz, 12-bit X'Y'Z' components, one tile, CPRL, 9/7 irreversible with
    the component transform, 32x32 code blocks, precincts 128 at the lowest resolution and 256 above,
    tile-parts, 250 Mbit/s total and 200 Mbit/s per component) and SMPTE RDD 52 (Bv2.1: TLM required,
    1 guard bit at 2K, 5 levels at 2K, 6 with one main-header POC at 4K).
    """
    try:
        cs = parse_codestream(data)
    except ValueError as exc:
        return [f"invalid codestream: {exc}"]
    problems: list[str] = []
    want_rsiz = _RSIZ[profile]
    if cs.rsiz != want_rsiz:
        problems.append(f"Rsiz {cs.rsiz}, the {profile.upper()} cinema profile needs {want_rsiz} "
                        "(ISO/IEC 15444-1 Amd 1)")
    if cs.origin != (0, 0) or cs.tile_origin != (0, 0):
        problems.append(f"image/tile origin {cs.origin}/{cs.tile_origin}, must be (0, 0)")
    if cs.tile_size != (cs.width, cs.height):
        problems.append(f"tile {cs.tile_size[0]}x{cs.tile_size[1]} is not the whole "
                        f"{cs.width}x{cs.height} image: the cinema profiles use one tile")
    if len(cs.components) != 3 or any(c != (12, 1, 1) for c in cs.components):
        problems.append(f"components {cs.components}: three 12-bit unsubsampled components needed")
    if cs.cod_count != 1 or cs.qcd_count != 1:
        problems.append(f"{cs.cod_count} COD and {cs.qcd_count} QCD markers, one each needed")
    if cs.progression != "CPRL":
        problems.append(f"progression {cs.progression or 'missing'}, the cinema profiles need CPRL")
    if cs.layers != 1:
        problems.append(f"{cs.layers} quality layers, the cinema profiles need 1")
    if cs.mct != 1:
        problems.append(f"multi-component transform flag {cs.mct}, the cinema profiles need 1")
    max_levels = _LEVELS[profile]
    if cs.levels != max_levels:
        problems.append(f"{cs.levels} decomposition levels, RDD 52 needs {max_levels} at {profile.upper()}")
    if cs.code_block != (32, 32):
        problems.append(f"code blocks {cs.code_block[0]}x{cs.code_block[1]}, the cinema profiles need 32x32")
    if cs.code_block_style != 0:
        problems.append(f"code-block style {cs.code_block_style}, the cinema profiles allow no mode switches")
    if cs.transform != 0:
        problems.append("reversible 5/3 wavelet, the cinema profiles need the 9/7 irreversible filter")
    want_precincts = [(7, 7)] + [(8, 8)] * max(cs.levels, 0)
    if cs.precincts != want_precincts:
        problems.append(f"precincts {[(1 << x, 1 << y) for x, y in cs.precincts]}: the cinema profiles "
                        "need 128x128 at the lowest resolution and 256x256 above")
    want_guard = _GUARD_BITS[profile]
    if cs.guard_bits != want_guard:
        problems.append(f"{cs.guard_bits} guard bits, RDD 52 (Bv2.1) needs {want_guard} at {profile.upper()}")
    if profile == "2k" and cs.poc_main:
        problems.append("POC marker in a 2K codestream")
    if profile == "4k" and len(cs.poc_main) != 2:
        problems.append(f"{len(cs.poc_main)} progression changes in the main header, 4K needs one POC with 2")
    if cs.poc_in_tiles:
        problems.append("POC marker in a tile-part header: it belongs in the main header")
    if not cs.tlm:
        problems.append("no TLM marker: RDD 52 (Bv2.1) needs one in the main header")
    want_parts = _TILE_PARTS[profile]
    if len(cs.tile_parts) != want_parts or any(tp.count != want_parts for tp in cs.tile_parts):
        problems.append(f"{len(cs.tile_parts)} tile-parts, {profile.upper()} needs {want_parts} "
                        "(one per component" + (" and resolution group" if profile == "4k" else "") + ")")
    if any(tp.tile != 0 for tp in cs.tile_parts):
        problems.append("tile-parts of more than one tile")
    if cs.tlm and cs.tlm != [tp.length for tp in cs.tile_parts]:
        problems.append(f"TLM lists tile-parts of {cs.tlm} bytes, the codestream has "
                        f"{[tp.length for tp in cs.tile_parts]}")
    part_limit = max_tile_part_bytes(fps)
    for tp in cs.tile_parts:
        if tp.length > part_limit:
            problems.append(f"tile-part {tp.index} is {tp.length} bytes, over {part_limit} "
                            f"(200 Mbit/s per component at {fps} fps)")
    frame_limit = max_frame_bytes(fps)
    if cs.size_bytes > frame_limit:
        problems.append(f"frame is {cs.size_bytes} bytes, over {frame_limit} (250 Mbit/s at {fps} fps)")
    if not cs.eoc:
        problems.append("no EOC marker: the codestream is truncated")
    return problems
