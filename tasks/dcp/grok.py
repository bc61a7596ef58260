"""Grok's JPEG 2000 encoder called in-process (ctypes over Debian's libgrokj2k1), with the digital-cinema
parameters set field by field.

Why not ``grk_compress``: its command line cannot set the number of guard bits, which it only sets to 1
(what SMPTE RDD 52 asks at 2K) for a 12-bit image under its cinema preset; and why the library at all:
the encoder's coarsest step sizes are tied to the image's declared precision (the 9/7 quantiser steps
are Grok's defaults relative to the sample range), and :func:`encode_j2k` needs to encode a frame
whose 12-bit samples were rounded to fewer bits (see :mod:`tasks.dcp.picture`). In-process, a frame
also costs no process start, no raw file written and read back.

The structures mirror ``grok.h`` of libgrokj2k 10.0 field for field (their sizes are checked against
the library's at load; a different major version is refused and the caller falls back to the CLI).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["GrokLibrary", "grok_library", "encode_j2k", "declare_siz", "GROK_SONAME"]

#: The shared library Debian's grokj2k-tools brings (libgrokj2k1, Grok 10.0).
GROK_SONAME = "libgrokj2k.so.1"

_MAX_LAYERS = 100
_COMMENTS = 256
_MAXRLVLS = 33
_PATH_LEN = 4096
_CPRL = 4  # GRK_PROG_ORDER
_FMT_J2K = 1  # GRK_SUPPORTED_FILE_FMT
_CLRSPC_UNKNOWN = 0
_PCRD_OPT = 1  # GRK_RATE_CONTROL_ALGORITHM: bisect over the convex hull's feasible truncation points
_CSTY_PRECINCTS = 0x01  # Scod bit 0: precincts defined (ISO/IEC 15444-1 Table A.13)

_u8, _u16, _u32, _u64, _i32 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32
_bool, _int, _dbl, _ptr = ctypes.c_bool, ctypes.c_int, ctypes.c_double, ctypes.c_void_p


class _Progression(ctypes.Structure):
    _fields_ = [("progression", _int), ("progressionString", ctypes.c_char * 5), ("specifiedCompressionPocProg", _int),
                ("tileno", _u32), ("tx0", _u32), ("ty0", _u32), ("tx1", _u32), ("ty1", _u32),
                ("compS", _u16), ("compE", _u16), ("resS", _u8), ("resE", _u8), ("precS", _u64), ("precE", _u64),
                ("layS", _u16), ("layE", _u16), ("tpCompS", _u16), ("tpCompE", _u16), ("tpResS", _u8), ("tpResE", _u8),
                ("tpPrecE", _u64), ("tpLayE", _u16), ("tp_txS", _u32), ("tp_txE", _u32), ("tp_tyS", _u32),
                ("tp_tyE", _u32), ("dx", _u32), ("dy", _u32), ("comp_temp", _u16), ("res_temp", _u8),
                ("prec_temp", _u64), ("lay_temp", _u16), ("tx0_temp", _u32), ("ty0_temp", _u32)]


class _RawCparameters(ctypes.Structure):
    _fields_ = [("width", _u32), ("height", _u32), ("numcomps", _u16), ("prec", _u8), ("sgnd", _bool), ("comps", _ptr)]


class _Cparameters(ctypes.Structure):
    _fields_ = [("tile_size_on", _bool), ("tx0", _u32), ("ty0", _u32), ("t_width", _u32), ("t_height", _u32),
                ("numlayers", _u16), ("allocationByRateDistoration", _bool), ("layer_rate", _dbl * _MAX_LAYERS),
                ("allocationByQuality", _bool), ("layer_distortion", _dbl * _MAX_LAYERS),
                ("comment", _ptr * _COMMENTS), ("comment_len", _u16 * _COMMENTS),
                ("is_binary_comment", _bool * _COMMENTS), ("num_comments", ctypes.c_size_t),
                ("csty", _u8), ("numgbits", _u8), ("prog_order", _int), ("progression", _Progression * _MAXRLVLS),
                ("numpocs", _u32), ("numresolution", _u8), ("cblockw_init", _u32), ("cblockh_init", _u32),
                ("cblk_sty", _u8), ("irreversible", _bool), ("roi_compno", _i32), ("roi_shift", _u32),
                ("res_spec", _u32), ("prcw_init", _u32 * _MAXRLVLS), ("prch_init", _u32 * _MAXRLVLS),
                ("infile", ctypes.c_char * _PATH_LEN), ("outfile", ctypes.c_char * _PATH_LEN),
                ("image_offset_x0", _u32), ("image_offset_y0", _u32), ("subsampling_dx", _u8),
                ("subsampling_dy", _u8), ("decod_format", _int), ("cod_format", _int), ("raw_cp", _RawCparameters),
                ("max_comp_size", _u32), ("enableTilePartGeneration", _bool), ("newTilePartProgressionDivider", _u8),
                ("mct", _u8), ("mct_data", _ptr), ("max_cs_size", _u64), ("rsiz", _u16), ("framerate", _u16),
                ("write_capture_resolution_from_file", _bool), ("capture_resolution_from_file", _dbl * 2),
                ("write_capture_resolution", _bool), ("capture_resolution", _dbl * 2),
                ("write_display_resolution", _bool), ("display_resolution", _dbl * 2), ("apply_icc_", _bool),
                ("rateControlAlgorithm", _int), ("numThreads", _u32), ("deviceId", _i32), ("duration", _u32),
                ("kernelBuildOptions", _u32), ("repeats", _u32), ("writePLT", _bool), ("writeTLM", _bool),
                ("verbose", _bool)]


class _ImageComp(ctypes.Structure):
    _fields_ = [("x0", _u32), ("y0", _u32), ("w", _u32), ("stride", _u32), ("h", _u32), ("dx", _u8), ("dy", _u8),
                ("prec", _u8), ("sgnd", _bool), ("type", _int), ("association", _int), ("Xcrg", _u16),
                ("Ycrg", _u16), ("data", ctypes.POINTER(_i32))]


class _IoBuf(ctypes.Structure):
    _fields_ = [("data_", _ptr), ("offset_", ctypes.c_size_t), ("len_", ctypes.c_size_t),
                ("allocLen_", ctypes.c_size_t), ("pooled_", _bool), ("index_", _u32)]


class _Image(ctypes.Structure):
    _fields_ = [("wrapper", _ptr), ("x0", _u32), ("y0", _u32), ("x1", _u32), ("y1", _u32), ("numcomps", _u16),
                ("color_space", _int), ("paletteApplied_", _bool), ("channelDefinitionApplied_", _bool),
                ("has_capture_resolution", _bool), ("capture_resolution", _dbl * 2),
                ("has_display_resolution", _bool), ("display_resolution", _dbl * 2), ("decompressFormat", _int),
                ("forceRGB", _bool), ("upsample", _bool), ("precision", _ptr), ("numPrecision", _u32),
                ("hasMultipleTiles", _bool), ("splitByComponent", _bool), ("decompressNumComps", _u16),
                ("decompressWidth", _u32), ("decompressHeight", _u32), ("decompressPrec", _u8),
                ("decompressColourSpace", _int), ("interleavedData", _IoBuf), ("rowsPerStrip", _u32),
                ("rowsPerTask", _u32), ("packedRowBytes", _u64), ("meta", _ptr), ("comps", ctypes.POINTER(_ImageComp))]


class _StreamParams(ctypes.Structure):
    _fields_ = [("file", ctypes.c_char_p), ("buf", _ptr), ("len", ctypes.c_size_t)]


# sizeof() of each structure in libgrokj2k 10.0 on x86-64/AArch64 (LP64), from grok.h.
_SIZES = {_Cparameters: 17880, _Image: 192, _ImageComp: 48, _StreamParams: 24, _Progression: 144}


class GrokLibrary:
    """The loaded library with its prototypes (one per process)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        lib.grk_version.restype = ctypes.c_char_p
        lib.grk_initialize.argtypes = [ctypes.c_char_p, _u32]
        lib.grk_initialize.restype = _bool
        lib.grk_compress_set_default_params.argtypes = [ctypes.POINTER(_Cparameters)]
        lib.grk_image_new.argtypes = [_u16, ctypes.POINTER(_ImageComp), _int]
        lib.grk_image_new.restype = ctypes.POINTER(_Image)
        lib.grk_compress_init.argtypes = [ctypes.POINTER(_StreamParams), ctypes.POINTER(_Cparameters),
                                          ctypes.POINTER(_Image)]
        lib.grk_compress_init.restype = _ptr
        lib.grk_compress.argtypes = [_ptr, _ptr]
        lib.grk_compress.restype = _bool
        lib.grk_object_unref.argtypes = [_ptr]
        lib.grk_object_unref.restype = None
        self.version = lib.grk_version().decode()
        # One thread: frames run in parallel across processes. (Its result only says whether the
        # optional T1 plugin loaded; there is none.)
        lib.grk_initialize(None, 1)


@functools.lru_cache(maxsize=1)
def grok_library() -> GrokLibrary | None:
    """libgrokj2k 10.x, or None (not installed, another major version, or DELIVER_GROK_LIBRARY=0)."""
    if os.environ.get("DELIVER_GROK_LIBRARY", "1") == "0":
        return None
    for name in (GROK_SONAME, ctypes.util.find_library("grokj2k")):
        if not name:
            continue
        try:
            lib = GrokLibrary(ctypes.CDLL(name))
        except OSError:
            continue
        if lib.version.split(".")[0] == "10" and all(ctypes.sizeof(s) == n for s, n in _SIZES.items()):
            return lib
    return None


def declare_siz(data: bytes, precision: int, rsiz: int) -> bytes:
    """The codestream with SIZ's Rsiz and every component's Ssiz set (ISO/IEC 15444-1 A.5.1).

    Declaring ``precision`` bits for samples coded at fewer bits scales every subband's step size by
    the same power of two (the step is 2^(R_b - exponent), R_b counted from the declared precision,
    A.6.4 / E.1.1) and the DC level shift with it (G.1.2): the decoder reads the coded samples times
    2^(precision - coded bits), i.e. back on the declared scale.
    """
    out = bytearray(data)
    siz = out.index(b"\xff\x51")
    out[siz + 4:siz + 6] = rsiz.to_bytes(2, "big")
    csiz_at = siz + 38  # marker, Lsiz, Rsiz, 8 x 32-bit sizes and offsets
    for c in range(int.from_bytes(out[csiz_at:csiz_at + 2], "big")):
        out[csiz_at + 2 + 3 * c] = precision - 1  # unsigned
    return bytes(out)


def encode_j2k(planar: np.ndarray, precision: int, *, levels: int, ratio: float, scratch: Path,
               guard_bits: int = 1) -> bytes:
    """One (3, H, W) unsigned ``precision``-bit planar frame -> a J2K codestream (TLM written).

    The samples go to the library in memory; the codestream comes back through a file in ``scratch``
    (tmpfs), as Grok 10 reports no length for a memory output.

    Digital-cinema coding parameters (ISO/IEC 15444-1 Amd 1 Table A.45): one tile, ``levels``
    decomposition levels, 32x32 code blocks, 256x256 precincts (128x128 at the lowest resolution),
    CPRL, 9/7 irreversible + ICT, one quality layer at ``ratio`` (of the declared raw size), one
    tile-part per component, ``guard_bits``. Rsiz is left 0 here (the library refuses its cinema
    preset below 12 bits); the caller sets SIZ with :func:`declare_siz`.
    """
    lib = grok_library()
    if lib is None:
        raise OSError("libgrokj2k 10 is not available")
    g = lib.lib
    ncomp, height, width = planar.shape
    params = _Cparameters()
    g.grk_compress_set_default_params(ctypes.byref(params))
    params.cod_format = _FMT_J2K
    params.numresolution = levels + 1
    params.cblockw_init = params.cblockh_init = 32
    params.csty |= _CSTY_PRECINCTS
    params.res_spec = levels + 1
    for i in range(levels + 1):  # listed from the highest resolution down
        params.prcw_init[i] = params.prch_init[i] = 256 if i < levels else 128
    params.prog_order = _CPRL
    params.irreversible = True
    params.mct = 1
    params.numlayers = 1
    params.allocationByRateDistoration = True
    params.layer_rate[0] = ratio
    # PCRD-opt as in EBCOT (Taubman, IEEE Trans. Image Processing 9(7), 2000): only the convex-hull truncation
    # points. On grainy 2K frames at the cap, 4-7 % less CPU than Grok's default bisection over every
    # point, PSNR within 0.02 dB.
    params.rateControlAlgorithm = _PCRD_OPT
    params.numgbits = guard_bits
    params.enableTilePartGeneration = True
    params.newTilePartProgressionDivider = ord("C")
    params.writeTLM = True
    params.numThreads = 1
    params.rsiz = 0
    comps = (_ImageComp * ncomp)()
    for c in comps:
        c.dx = c.dy = 1
        c.w, c.h, c.stride = width, height, width
        c.prec = precision
        c.sgnd = False
    image = g.grk_image_new(ncomp, comps, _CLRSPC_UNKNOWN)
    if not image:
        raise MemoryError("grk_image_new failed")
    codec = None
    fd, name = tempfile.mkstemp(suffix=".j2c", prefix="deliver-dcp-", dir=scratch)
    os.close(fd)
    try:
        img = image.contents
        img.x0 = img.y0 = 0
        img.x1, img.y1 = width, height
        for i in range(ncomp):
            comp = img.comps[i]
            dst = np.ctypeslib.as_array(comp.data, shape=(comp.h, comp.stride))
            dst[:, :width] = planar[i]
        stream = _StreamParams(file=name.encode())
        codec = g.grk_compress_init(ctypes.byref(stream), ctypes.byref(params), image)
        if not codec or not g.grk_compress(codec, None):
            raise OSError("Grok could not encode the frame")
        g.grk_object_unref(codec)  # flushes and closes the file
        codec = None
        return Path(name).read_bytes()
    finally:
        if codec:
            g.grk_object_unref(codec)
        g.grk_object_unref(ctypes.cast(image, _ptr))
        Path(name).unlink(missing_ok=True)
