"""DCP picture: X'Y'Z' code values measured in decoded J2K frames, codestream checks, containers.

The expected X'Y'Z' values are computed here from first principles (ITU-R BT.709 chromaticities,
ITU-R BT.1886 EOTF, SMPTE ST 428-1 encoding), not with the code under test or colour-science.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from specs.errors import MediaError
from tasks.dcp.codestream import check_codestream, max_frame_bytes, parse_codestream
from tasks.dcp.container import CONTAINERS, choose_container, place_picture
from tasks.dcp.grok import encode_j2k, grok_library
from tasks.dcp.picture import (
    MAX_DROPPED_BITS,
    PicturePlan,
    coded_bits,
    encode_codestream,
    encode_frame_range,
    encode_picture,
    frame_ranges,
    insert_tlm,
    noise_sigma,
    rgb48_to_xyz12,
    xyz_encoder,
)

pytestmark = pytest.mark.skipif(shutil.which("grk_compress") is None or shutil.which("opj_decompress") is None,
                                reason="grokj2k-tools and libopenjp2-tools are needed (make setup)")

FLAT = CONTAINERS[("2k", "flat")]
W, H = FLAT.width, FLAT.height


def _npm_bt709() -> np.ndarray:
    """RGB -> XYZ normalised primary matrix from BT.709 chromaticities and D65 (SMPTE RP 177 §3)."""
    prim = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)]
    wx, wy = 0.3127, 0.3290
    p = np.array([[x / y for x, y in prim], [1.0, 1.0, 1.0], [(1 - x - y) / y for x, y in prim]])
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return p * np.linalg.solve(p, white)


def _expected_xyz12(code16: tuple[int, int, int]) -> np.ndarray:
    """SMPTE ST 428-1: CV = round(4095 * (48 * XYZ / 52.37)^(1/2.6)), BT.1886 L = V^2.4."""
    rgb = (np.array(code16, dtype=np.float64) / 65535.0) ** 2.4
    xyz = _npm_bt709() @ rgb
    return np.round(4095.0 * (np.clip(xyz * 48.0 / 52.37, 0, 1)) ** (1 / 2.6))


GREY18 = round(0.18 ** (1 / 2.4) * 65535)
PATCHES = {
    "white": (65535, 65535, 65535),
    "grey18": (GREY18, GREY18, GREY18),
    "red": (65535, 0, 0),
    "green": (0, 65535, 0),
    "blue": (0, 0, 65535),
}


def _patch_master(path: Path, frames: int = 1) -> None:
    """A lossless 16-bit RGB master (PNG in MOV) at the flat container size: five vertical bands."""
    band = W // len(PATCHES)
    img = np.zeros((H, W, 3), dtype=np.uint16)
    for i, rgb in enumerate(PATCHES.values()):
        img[:, i * band:(i + 1) * band] = rgb
    raw = img.astype(">u2").tobytes() * frames
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb48be", "-s", f"{W}x{H}",
                    "-r", "24", "-i", "pipe:0", "-c:v", "png", "-pix_fmt", "rgb48be", str(path)],
                   input=raw, check=True)


def _decode_j2c(path: Path, tmp: Path) -> np.ndarray:
    """Decode with OpenJPEG (an independent decoder); 12-bit values from its 16-bit PPM."""
    out = tmp / (path.stem + ".ppm")
    subprocess.run(["opj_decompress", "-i", str(path), "-o", str(out)], check=True, capture_output=True)
    data = out.read_bytes()
    fields, pos = [], 2
    while len(fields) < 3:  # skip the comment line OpenJPEG writes
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(int(data[pos:end]))
        pos = end
    width, height, maxval = fields
    assert maxval == 4095
    return np.frombuffer(data[pos + 1:], dtype=">u2").reshape(height, width, 3)


def test_bt709_white_matches_the_published_dcdm_values() -> None:
    # The published DCDM code values of D65 white at 48 cd/m^2 (e.g. libdcp, DCP-o-matic): 3883 3960 4092.
    assert _expected_xyz12(PATCHES["white"]).tolist() == [3883, 3960, 4092]


def test_xyz_code_values_in_decoded_frames(tmp_path: Path) -> None:
    master = tmp_path / "patches.mov"
    _patch_master(master)
    plan = PicturePlan(place_picture(W, H, Fraction(1), FLAT), fps=24, frame_count=1, is_rgb=True, range="pc")
    frames = encode_picture(master, plan, 1, tmp_path / "j2c")
    assert len(frames) == 1
    assert check_codestream(frames[0].read_bytes()) == []
    decoded = _decode_j2c(frames[0], tmp_path)
    band = W // len(PATCHES)
    for i, (name, rgb) in enumerate(PATCHES.items()):
        centre = decoded[H // 2 - 100:H // 2 + 100, i * band + 100:(i + 1) * band - 100].reshape(-1, 3)
        measured = centre.mean(axis=0)
        expected = _expected_xyz12(rgb)
        assert np.all(np.abs(measured - expected) <= 2), f"{name}: measured {measured}, expected {expected}"


def test_vectorised_conversion_agrees_with_colour_science() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour

    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 65536, size=(64, 64, 3), dtype=np.uint16)
    ours = rgb48_to_xyz12(rgb, xyz_encoder("bt709", "bt709")).astype(np.int32)
    linear = (rgb / 65535.0) ** 2.4
    xyz = linear @ np.asarray(colour.RGB_COLOURSPACES["ITU-R BT.709"].matrix_RGB_to_XYZ).T * 48.0
    ref = np.asarray(colour.models.eotf_inverse_DCDM(xyz, out_int=True)).astype(np.int32)
    assert np.abs(ours - ref).max() <= 1


def test_hdr_master_refused() -> None:
    with pytest.raises(MediaError, match="HDR"):
        xyz_encoder("bt2020", "smpte2084")


def _noise_ppm(path: Path) -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 4096, size=(H, W, 3), dtype=np.uint16)
    path.write_bytes(b"P6\n%d %d\n4095\n" % (W, H) + img.astype(">u2").tobytes())


def test_two_guard_bits_at_2k_caught(tmp_path: Path) -> None:
    """OpenJPEG's cinema preset keeps its default of 2 guard bits: RDD 52 wants 1 at 2K."""
    src = tmp_path / "f.ppm"
    _noise_ppm(src)
    out = tmp_path / "f.j2k"
    subprocess.run(["opj_compress", "-i", str(src), "-o", str(out), "-cinema2K", "24", "-TLM"],
                   check=True, capture_output=True)
    data = out.read_bytes()
    assert parse_codestream(data).guard_bits == 2
    problems = check_codestream(data, "2k", 24)
    assert problems == ["2 guard bits, RDD 52 (Bv2.1) needs 1 at 2K"]


def test_frame_over_the_byte_limit_caught(tmp_path: Path) -> None:
    """The profile's structure without its Rsiz (Grok then caps nothing): a 2K noise frame over the limit."""
    src = tmp_path / "f.ppm"
    _noise_ppm(src)
    out = tmp_path / "f.j2k"
    precincts = ",".join(["[256,256]"] * 5 + ["[128,128]"])
    subprocess.run(["grk_compress", "-i", str(src), "-o", str(out), "-n", "6", "-b", "32,32", "-c", precincts,
                    "-p", "CPRL", "-I", "-Y", "1", "-u", "C", "-r", "2", "-H", "1"],
                   check=True, capture_output=True)
    data = insert_tlm(out.read_bytes())
    assert len(data) > max_frame_bytes(24) == 1_302_083
    problems = check_codestream(data, "2k", 24)
    assert any(p.startswith(f"frame is {len(data)} bytes, over 1302083") for p in problems), problems
    assert any("tile-part" in p and "over 1041666" in p for p in problems), problems
    # Without the TLM marker that insert_tlm added, that is reported too.
    assert "no TLM marker: RDD 52 (Bv2.1) needs one in the main header" in check_codestream(out.read_bytes())


def test_other_profile_breaks_caught(tmp_path: Path) -> None:
    """LRCP progression, 64x64 code blocks, the reversible wavelet, and a truncated stream."""
    src = tmp_path / "f.ppm"
    _noise_ppm(src)
    out = tmp_path / "f.j2k"
    subprocess.run(["grk_compress", "-i", str(src), "-o", str(out), "-r", "40", "-H", "1"],
                   check=True, capture_output=True)
    data = out.read_bytes()
    problems = "\n".join(check_codestream(data))
    for words in ("progression LRCP", "code blocks 64x64", "reversible 5/3", "Rsiz 0", "1 tile-parts"):
        assert words in problems
    truncated = check_codestream(data[:len(data) // 2])
    assert "no EOC marker: the codestream is truncated" in truncated or truncated[0].startswith("invalid codestream")


def test_parallel_and_chunked_encodes_give_the_same_frames(tmp_path: Path) -> None:
    master = tmp_path / "m.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=24", "-frames:v", "4",
                    "-c:v", "prores_ks", "-pix_fmt", "yuv422p10le", "-color_primaries", "bt709",
                    "-color_trc", "bt709", "-colorspace", "bt709", str(master)], check=True)
    plan = PicturePlan(place_picture(1920, 1080, Fraction(1), FLAT), fps=24, frame_count=4)
    whole = encode_picture(master, plan, 2, tmp_path / "whole")
    assert [p.name for p in whole] == [f"{n:08d}.j2c" for n in range(4)]
    chunks = [p for s, c in frame_ranges(4, 3) for p in encode_frame_range(master, plan, s, c, tmp_path / "chunk")]
    assert [p.read_bytes() for p in whole] == [p.read_bytes() for p in chunks]
    for p in whole:
        assert check_codestream(p.read_bytes()) == []
    # The picture is pillarboxed: 39 black columns each side of the 1920 active width.
    decoded = _decode_j2c(whole[0], tmp_path)
    assert decoded[:, :35].max() <= 2 and decoded[:, -35:].max() <= 2
    assert decoded[:, 45:-45].mean() > 500


@pytest.mark.parametrize(("size", "sar", "name", "active"), [
    ((1920, 1080), Fraction(1), "flat", (1920, 1080)),   # 1.78: pillarboxed in flat
    ((1998, 1080), Fraction(1), "flat", (1998, 1080)),   # 1.85
    ((1920, 804), Fraction(1), "scope", (2048, 858)),    # 2.39
    ((2048, 858), Fraction(1), "scope", (2048, 858)),
    ((2048, 1080), Fraction(1), "full", (2048, 1080)),   # 1.90
    ((1440, 1080), Fraction(4, 3), "flat", (1920, 1080)),  # anamorphic 16:9
])
def test_container_chosen_by_aspect(size: tuple[int, int], sar: Fraction, name: str,
                                    active: tuple[int, int]) -> None:
    container = choose_container(*size, sar, "2k", "auto")
    assert container.name == name
    placement = place_picture(*size, sar, container)
    assert (placement.active_width, placement.active_height) == active
    assert placement.x == (container.width - active[0]) // 2 and placement.y == (container.height - active[1]) // 2


def test_scope_master_in_flat_is_letterboxed() -> None:
    placement = place_picture(1920, 804, Fraction(1), CONTAINERS[("2k", "flat")])
    assert (placement.active_width, placement.active_height, placement.y) == (1998, 836, 122)


def test_container_that_cannot_hold_the_picture_refused() -> None:
    with pytest.raises(MediaError, match="cannot hold the 2048x1080 master"):
        place_picture(2048, 1080, Fraction(1), CONTAINERS[("2k", "flat")], scale=False)
    assert place_picture(1920, 1080, Fraction(1), CONTAINERS[("2k", "flat")], scale=False).x == 39


def test_4k_flat_frame_meets_the_4k_profile_and_wraps(tmp_path: Path) -> None:
    """One 4K frame (ISO/IEC 15444-1 Amd 1 4K profile, RDD 52): Rsiz 4, 6 levels, one POC with two
    progressions, 6 tile-parts, TLM, 2 guard bits; OpenJPEG decodes it and the track file reads back 4K."""
    from tasks.dcp.verify import DcpVerification, _check_picture, scan_track
    from tasks.mxf.labels import UL
    from tasks.mxf.reader import read_track
    from tasks.mxf.writer import write_picture_track

    master = tmp_path / "m.mov"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=24", "-frames:v", "1",
                    "-c:v", "prores_ks", "-pix_fmt", "yuv422p10le", "-color_primaries", "bt709",
                    "-color_trc", "bt709", "-colorspace", "bt709", str(master)], check=True)
    flat4k = CONTAINERS[("4k", "flat")]
    plan = PicturePlan(place_picture(1920, 1080, Fraction(1), flat4k), fps=24, frame_count=1)
    [frame] = encode_picture(master, plan, 1, tmp_path / "j2c")
    data = frame.read_bytes()
    assert check_codestream(data, "4k", 24) == []
    cs = parse_codestream(data)
    assert (cs.width, cs.height, cs.rsiz, cs.levels, cs.guard_bits) == (3996, 2160, 4, 6, 2)
    assert cs.poc_main == [(0, 0, 1, 6, 3, "CPRL"), (6, 0, 1, 7, 3, "CPRL")]
    assert len(cs.tile_parts) == 6 and len(cs.tlm) == 6
    assert len(data) <= max_frame_bytes(24)
    # The 2K profile check refuses it (Rsiz, levels, tile-parts, guard bits): the two profiles are told apart.
    assert len(check_codestream(data, "2k", 24)) >= 4
    decoded = _decode_j2c(frame, tmp_path)
    assert decoded.shape == (2160, 3996, 3)
    # 1.78 in 1.85: 78 black columns each side of the 3840 active width.
    assert decoded[:, :70].max() <= 2 and decoded[:, -70:].max() <= 2 and decoded[:, 90:-90].mean() > 500

    mxf = tmp_path / "j2c_4k.mxf"
    write_picture_track([data], mxf, Fraction(24), flat4k.width, flat4k.height)
    track = read_track(mxf)
    assert track.stored_size == (3996, 2160) and track.duration == 1
    assert track.descriptor.get("PictureEssenceCoding") == UL["jp2k_4k"]
    result = DcpVerification()
    _check_picture(scan_track(mxf), track, result)
    assert result.problems == [] and result.counts["frames_checked"] == 1


def _grainy_xyz(sigma: float, seed: int = 5) -> np.ndarray:
    """A planar 2K X'Y'Z' frame: a horizontal ramp 800..3200 with Gaussian grain of ``sigma`` code values."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(800, 3200, W)[None, None, :] + np.array([0, 60, -60])[:, None, None]
    noisy = ramp + rng.normal(0.0, sigma, size=(3, H, W))
    return np.clip(np.rint(noisy), 0, 4095).astype(np.uint16)


@pytest.mark.parametrize("sigma", [10.0, 40.0, 90.0])
def test_noise_floor_is_measured_and_sets_the_coded_bits(sigma: float) -> None:
    frame = _grainy_xyz(sigma)
    measured = noise_sigma(frame)
    assert abs(measured - sigma) <= 0.1 * sigma, measured
    # 2^dropped <= sigma / 4: 10 -> 1 bit dropped, 40 -> 3, 90 -> 4 (the most).
    assert coded_bits(frame) == 12 - min(MAX_DROPPED_BITS, int(np.floor(np.log2(measured / 4))))
    assert coded_bits(frame) == {10.0: 11, 40.0: 9, 90.0: 8}[sigma]
    assert coded_bits(frame, max_dropped=0) == 12 and coded_bits(frame, max_dropped=2) == max(10, coded_bits(frame))


def test_clean_pictures_keep_all_12_bits() -> None:
    flat = np.full((3, H, W), 2000, dtype=np.uint16)
    flat[:, :, W // 2:] = 3000  # an edge and flat areas: no noise
    assert noise_sigma(flat) == 0.0 and coded_bits(flat) == 12
    ramp = np.broadcast_to(np.linspace(0, 4095, W).astype(np.uint16), (3, H, W))
    assert coded_bits(ramp) == 12


@pytest.mark.skipif(grok_library() is None, reason="libgrokj2k 10 is needed (Debian libgrokj2k1)")
def test_grainy_frame_coded_at_fewer_bits_decodes_on_the_12_bit_scale(tmp_path: Path) -> None:
    """8 coded bits declared as 12 in SIZ: an independent decoder (OpenJPEG) gives back the 12-bit
    picture, as close to the source as the same frame coded at all 12 bits (within 0.3 dB PSNR)."""
    src = _grainy_xyz(90.0)
    assert coded_bits(src) == 8
    plan = PicturePlan(place_picture(W, H, Fraction(1), FLAT), fps=24, frame_count=1)
    data = encode_codestream(src, plan, tmp_path)
    assert check_codestream(data, "2k", 24) == []
    cs = parse_codestream(data)
    assert cs.components == [(12, 1, 1)] * 3 and cs.rsiz == 3 and cs.guard_bits == 1
    full = encode_j2k(src, 12, levels=5, ratio=W * H * 4.5 / (max_frame_bytes(24) - 1024), scratch=tmp_path)

    def psnr_db(codestream: bytes, name: str) -> float:
        path = tmp_path / name
        path.write_bytes(codestream)
        decoded = _decode_j2c(path, tmp_path).transpose(2, 0, 1).astype(np.float64)
        for c in range(3):  # the ramp's mean level per component comes back on the 12-bit scale
            assert abs(decoded[c].mean() - src[c].mean()) <= 2.0
        return float(10 * np.log10(4095.0 ** 2 / np.mean((decoded - src) ** 2)))

    assert psnr_db(data, "coded8.j2c") >= psnr_db(full, "coded12.j2c") - 0.3
