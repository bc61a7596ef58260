"""Colour tags: an untagged (or partly tagged) ProRes master is taken to be in the spec's colour space, QC says so
(``metadata.colour_untagged``), its deliverables carry the spec's tags in the bitstream and the container, and
MediaInfo (an independent reader) agrees with ffprobe and with the spec. Verification fails a deliverable whose
tags are missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from specs.errors import VerificationError
from specs.loader import load_spec
from specs.model import AudioMap, CheckSpec, Deliverable, Spec
from tasks.deliverables.graph import deliverable_args
from tasks.deliverables.make import transcode_all
from tasks.deliverables.shape import assumed_colour, converted_colour, expected_duration_s
from tasks.deliverables.verify import verify_deliverable
from tasks.media.ffmpeg import run_ffmpeg, run_ffprobe_json
from tasks.media.probe import MediaInfo, colour_tag, probe
from tasks.media.synth import MasterSpec, make_sample_set
from tasks.qc.metadata import check_metadata
from tests.deliverables.helpers import FIELDS, married

BT709 = {"primaries": "bt709", "transfer": "bt709", "matrix": "bt709", "range": "tv"}
# MediaInfo's words for ffprobe's (MediaInfo 23.04 JSON: colour_primaries, transfer_characteristics, ...).
MEDIAINFO_709 = {"colour_primaries": "BT.709", "transfer_characteristics": "BT.709", "matrix_coefficients": "BT.709",
                 "colour_range": "Limited"}


def untag(src: Path, dst: Path, keep: dict[str, str] | None = None) -> Path:
    """``src``'s picture re-encoded as a tool that writes no colour tags does: ProRes frame header unspecified and
    no ``colr`` atom (``keep``: ffmpeg option -> value of the tags to write after all)."""
    tags = {"color_primaries": "unknown", "color_trc": "unknown", "colorspace": "unknown",  # setparams: 2
            **(keep or {})}
    start = probe(src).start_timecode
    params = ":".join(f"{k}={v}" for k, v in tags.items())
    out_tags = [x for k, v in (keep or {}).items() for x in (f"-{k}", v)]
    run_ffmpeg(["-v", "error", "-i", str(src), "-map", "0:v:0", "-vf", f"setparams={params}", "-c:v", "prores_ks",
                "-profile:v", "3", "-vendor", "apl0", "-pix_fmt", "yuv422p10le", *out_tags,
                *(["-timecode", start] if start else []), "-map_metadata", "-1", "-f", "mov", str(dst)],
               what="untagged master")
    return dst


def mediainfo_json(path: str | Path) -> dict[str, dict[str, str]]:
    """MediaInfo's General, first Video and every Audio track (``Audio`` -> list) of ``path``."""
    doc = json.loads(subprocess.run(["mediainfo", "--Output=JSON", str(path)], check=True, capture_output=True,
                                    text=True).stdout)
    tracks = doc["media"]["track"]
    out: dict = {"General": next(t for t in tracks if t["@type"] == "General"),
                 "Video": next((t for t in tracks if t["@type"] == "Video"), {}),
                 "Audio": [t for t in tracks if t["@type"] == "Audio"]}
    return out


needs_mediainfo = pytest.mark.skipif(shutil.which("mediainfo") is None,
                                     reason="mediainfo not installed (Debian: apt-get install mediainfo; make test "
                                            "installs it)")


@pytest.fixture(scope="module")
def untagged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, MediaInfo, Path]:
    root = tmp_path_factory.mktemp("untagged")
    spec = load_spec("netflix")  # picture.colour: bt709 / bt709 / bt709 / tv
    media = make_sample_set(root / "media", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode="01:00:00:00", head_s=4, programme_s=2))
    picture = untag(Path(media.master), root / "untagged.mov")
    master = married(picture, list(media.mixes.values()), spec, root / "layback.mov")
    return spec, master, root


def test_untagged_master_is_reported_and_taken_as_the_specs_colour_space(untagged) -> None:
    spec, master, _ = untagged
    v = master.primary_video
    assert [colour_tag(x) for x in (v.color_primaries, v.color_transfer, v.color_matrix)] == [None, None, None]
    assert b"colr" not in Path(master.path).read_bytes()  # no QuickTime colour atom at all
    found = [f for f in check_metadata(master, spec) if f.check.startswith("metadata.colour")]
    assert [(f.check, f.severity.value) for f in found] == [("metadata.colour_untagged", "warning")]
    assert found[0].message == ("the master carries no colour primaries/transfer/matrix tags; taken as the spec's "
                                "primaries bt709, transfer bt709, matrix bt709, and the deliverables are tagged so")
    assert found[0].actual == "missing: primaries, transfer, matrix"
    assert assumed_colour(spec, master) == {"primaries": "bt709", "transfer": "bt709", "matrix": "bt709"}
    checks = {**spec.checks, "metadata.colour_untagged": CheckSpec(severity="error")}
    strict = spec.model_copy(update={"checks": checks})
    assert [f.severity.value for f in check_metadata(master, strict) if f.check == "metadata.colour_untagged"] == [
        "error"]


@needs_mediainfo
def test_mezzanine_and_screener_of_an_untagged_master_carry_the_specs_tags(untagged, tmp_path) -> None:
    spec, master, _ = untagged
    todo = [d for d in spec.deliverables if d.id in ("mezzanine", "screener")]
    result = transcode_all(todo, spec, master, tmp_path / "pkg", fields=FIELDS)
    assert [r.id for r in result.deliverables] == ["mezzanine", "screener"]
    for r, d in zip(result.deliverables, todo, strict=True):
        assert "colour bt709/bt709/bt709/tv in the bitstream and the container" in r.checks
        ff = probe(r.path)
        fv = ff.primary_video
        # The bitstream (ProRes frame header / H.264 VUI) as the decoder reads it ...
        assert (fv.color_primaries, fv.color_transfer, fv.color_matrix, fv.color_range) == tuple(BT709.values())
        # ... and the container (colr nclc in MOV, nclx in MP4) without decoding.
        box = run_ffprobe_json(["-nofind_stream_info", "-select_streams", "v:0", "-show_entries",
                                "stream=color_primaries,color_transfer,color_space", r.path])["streams"][0]
        assert (box["color_primaries"], box["color_transfer"], box["color_space"]) == ("bt709",) * 3
        assert {"mov": b"colrnclc", "mp4": b"colrnclx"}[d.container] in Path(r.path).read_bytes()
        mi = mediainfo_json(r.path)
        video = mi["Video"]
        # ProRes (SMPTE RDD 36) and the nclc atom have no range field: MediaInfo states the range of the H.264 only.
        want = MEDIAINFO_709 | ({"colour_range": None} if fv.codec == "prores" else {})
        assert {k: video.get(k) for k in MEDIAINFO_709} == want, (d.id, video)
        # Both readers (container and stream) agree: MediaInfo names the source of each tag.
        assert video["colour_primaries_Source"] == "Container / Stream", (d.id, video)
        assert video["Format"] == {"prores": "ProRes", "h264": "AVC"}[fv.codec]
        assert Fraction(video["FrameRate_Num"]) / Fraction(video["FrameRate_Den"]) == fv.frame_rate == Fraction(25)
        # Durations within one frame (40 ms) of ffprobe's and of the programme (the whole 6 s master: the Netflix
        # spec names no FFOA; the screener's AAC adds a priming frame of 21 ms).
        assert float(mi["General"]["Duration"]) == pytest.approx(ff.duration_s, abs=0.04)
        assert float(video["Duration"]) == pytest.approx(expected_duration_s(d, spec, master), abs=0.04) == 6.0
        assert [int(a["Channels"]) for a in mi["Audio"]] == [a.channels for a in ff.audio] == (
            [6, 2] if d.id == "mezzanine" else [2])


def test_only_an_untagged_master_gets_labels_in_the_graph(untagged, tmp_path) -> None:
    """A tagged master's graph is unchanged (no setparams: its deliverables stay bit-identical); an untagged
    master's frames are labelled first, and the output options carry the spec's tags."""
    spec, master, root = untagged
    mezz = next(d for d in spec.deliverables if d.id == "mezzanine")
    args = deliverable_args(mezz, spec, master, tmp_path / "m.mov", title="FILM")
    graph = args[args.index("-filter_complex") + 1]
    assert "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv" in graph
    for flag in ("-color_primaries", "-color_trc", "-colorspace"):
        assert args[args.index(flag) + 1] == "bt709"
    media = make_sample_set(tmp_path / "tagged", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode="01:00:00:00", head_s=4, programme_s=2))
    tagged = married(media.master, list(media.mixes.values()), spec, tmp_path / "tagged.mov")
    assert assumed_colour(spec, tagged) == {}
    assert "setparams" not in " ".join(deliverable_args(mezz, spec, tagged, tmp_path / "t.mov", title="FILM"))


def test_partly_tagged_master_gets_the_missing_tags_from_the_spec(untagged, tmp_path) -> None:
    spec, master, root = untagged
    partial = probe(untag(Path(master.path), tmp_path / "partial.mov",
                          keep={"color_primaries": "bt709"}))
    pv = partial.primary_video
    assert (pv.color_primaries, colour_tag(pv.color_transfer), colour_tag(pv.color_matrix)) == ("bt709", None, None)
    assert assumed_colour(spec, partial) == {"transfer": "bt709", "matrix": "bt709"}
    found = [f for f in check_metadata(partial, spec) if f.check.startswith("metadata.colour")]
    assert [(f.check, f.severity.value, f.actual) for f in found] == [
        ("metadata.colour_untagged", "warning", "missing: transfer, matrix")]
    assert "taken as the spec's transfer bt709, matrix bt709" in found[0].message


def test_untagged_master_without_a_spec_colour_is_reported(untagged) -> None:
    base, master, _ = untagged
    spec = base.model_copy(update={"picture": base.picture.model_copy(update={"colour": None})})
    found = [f for f in check_metadata(master, spec) if f.check.startswith("metadata.colour")]
    assert [(f.check, f.severity.value) for f in found] == [("metadata.colour_untagged", "warning")]
    assert "the spec states no picture.colour: its deliverables go out untagged" in found[0].message


def test_verification_fails_a_deliverable_without_the_specs_tags(untagged) -> None:
    """The married untagged master has the mezzanine's shape (ProRes HQ, 5.1 + 2.0 PCM) but no colour tags:
    verified as the mezzanine, it fails on every missing tag, in the bitstream and in the colr atom."""
    spec, master, _ = untagged
    mezz = next(d for d in spec.deliverables if d.id == "mezzanine")
    with pytest.raises(VerificationError) as err:
        verify_deliverable(mezz, spec, master.path, master.duration_s, master=master)
    text = str(err.value)
    for what in ("color primaries", "color transfer", "color matrix"):
        assert f"{what} missing instead of bt709" in text
        assert f"colr atom {what} missing instead of bt709" in text


# --- A tagged master in another SDR colour space than the spec's: converted, not relabelled ---------------------

# Chromaticities (x, y) of the red, green and blue primaries: SMPTE 170M (SMPTE RP 145, ITU-T H.273 Table 2 value 6)
# and ITU-R BT.709-6 §1.3; both D65 white (0.3127, 0.3290).
_SMPTE_170M_XY = ((0.630, 0.340), (0.310, 0.595), (0.155, 0.070))
_BT709_XY = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
_D65_XY = (0.3127, 0.3290)
_RED_75 = (0.75, 0.0, 0.0)  # 75 % red bar, R'G'B' (SMPTE RP 219 bars' 75 % level)
_PATCH_TOLERANCE_8BIT = 3  # code values: 10 -> 8 bit rounding, 4:2:x chroma filtering, H.264 quantisation


def _rgb_to_xyz(primaries: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Linear RGB -> CIE XYZ for ``primaries`` and D65 (SMPTE RP 177 §3.3)."""
    cols = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in primaries]).T
    wx, wy = _D65_XY
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return cols * np.linalg.solve(cols, white)


def _bt709_ycbcr_8bit(rgb_601: tuple[float, float, float], *, clip: bool = True) -> np.ndarray:
    """The colour that R'G'B' ``rgb_601`` shows in SMPTE 170M primaries, encoded as 8-bit limited-range BT.709 Y'CbCr:
    to linear light with the BT.1886 display EOTF (gamma 2.4, as zimg converts display-referred), to BT.709
    primaries through XYZ, back with gamma 1/2.4, then the BT.709-6 Table 4 matrix and §4.6 quantisation. SMPTE 170M
    red lies just outside BT.709 (its blue goes slightly negative in linear light). ``clip``: that component is
    clipped to 0, BT.709's gamut boundary (what Debian 12's ffmpeg 5.1.9 zscale does, measured); otherwise the curve
    is mirrored below zero so Y'CbCr keeps the out-of-gamut colour (what earlier builds did). They differ by 6 code
    values of Cb; a relabel misses both by more (test_expected_bt709_encoding_differs_from_a_relabel)."""
    linear = np.array(rgb_601) ** 2.4
    rgb709 = np.linalg.solve(_rgb_to_xyz(_BT709_XY), _rgb_to_xyz(_SMPTE_170M_XY) @ linear)
    if clip:
        rgb709 = np.clip(rgb709, 0.0, None)
    r, g, b = np.sign(rgb709) * np.abs(rgb709) ** (1 / 2.4)
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return np.array([16 + 219 * y, 128 + 224 * (b - y) / 1.8556, 128 + 224 * (r - y) / 1.5748])


def _off_bt709(got: np.ndarray, rgb_601: tuple[float, float, float]) -> float:
    """Code values between ``got`` and the nearer of the two BT.709 encodings of ``rgb_601`` (clipped, mirrored)."""
    return min(float(np.abs(got - _bt709_ycbcr_8bit(rgb_601, clip=c)).max()) for c in (True, False))


def _bt601_ycbcr_8bit(rgb: tuple[float, float, float]) -> np.ndarray:
    """R'G'B' ``rgb`` as 8-bit limited-range BT.601 Y'CbCr (ITU-R BT.601-7 Table 3): what a relabel would keep."""
    r, g, b = rgb
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.array([16 + 219 * y, 128 + 224 * (b - y) / 1.772, 128 + 224 * (r - y) / 1.402])


def _patch_ycbcr_8bit(path: str | Path) -> np.ndarray:
    """Mean Y'CbCr (8-bit code values) of an 8x8 patch at the left edge, a third down (clear of the centred
    burn-ins and watermark) of the first frame, as decoded, without any colour conversion."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-vf",
                          "crop=8:8:8:ih/3,format=yuv444p16le", "-f", "rawvideo", "-"],
                         check=True, capture_output=True).stdout
    planes = np.frombuffer(raw, dtype="<u2").reshape(3, 8, 8).astype(float) / 256.0
    return np.array(planes.mean(axis=(1, 2)))


def _bt601_master(src: Path, dst: Path) -> Path:
    """``src``'s length and timecode, the picture a full-frame 75 % red in SMPTE 170M, tagged so in the ProRes
    frame header and the colr atom (as a standard-definition up-conversion delivers it)."""
    info = probe(src)
    v = info.primary_video
    assert v is not None
    tags = {"color_primaries": "smpte170m", "color_trc": "smpte170m", "colorspace": "smpte170m"}
    rate = f"{v.frame_rate.numerator}/{v.frame_rate.denominator}"
    colour = "0x" + "".join(f"{round(c * 255):02X}" for c in _RED_75)
    vf = ("format=rgb24,scale=out_color_matrix=bt601:out_range=tv,format=yuv422p10le,"
          + "setparams=" + ":".join(f"{k}={x}" for k, x in tags.items()) + ":range=tv")
    run_ffmpeg(["-v", "error", "-f", "lavfi", "-i", f"color=c={colour}:s={v.width}x{v.height}:r={rate}",
                "-t", f"{info.duration_s}", "-vf", vf, "-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0",
                *[x for k, x in tags.items() for x in (f"-{k}", x)], "-color_range", "tv",
                *(["-timecode", info.start_timecode] if info.start_timecode else []), "-f", "mov", str(dst)],
               what="BT.601 master")
    return dst


@pytest.fixture(scope="module")
def bt601(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, MediaInfo]:
    root = tmp_path_factory.mktemp("bt601")
    spec = load_spec("netflix")
    media = make_sample_set(root / "media", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode="01:00:00:00", head_s=3, programme_s=1))
    picture = _bt601_master(Path(media.master), root / "bt601.mov")
    return spec, married(picture, list(media.mixes.values()), spec, root / "layback.mov")


def test_expected_bt709_encoding_differs_from_a_relabel() -> None:
    """The test's arithmetic: a relabel (BT.601 code values under BT.709 tags) would miss the tolerance."""
    assert _off_bt709(_bt601_ycbcr_8bit(_RED_75), _RED_75) > 2 * _PATCH_TOLERANCE_8BIT


def test_bt601_master_is_reported_as_converted(bt601) -> None:
    spec, master = bt601
    v = master.primary_video
    assert (v.color_primaries, v.color_transfer, v.color_matrix) == ("smpte170m",) * 3
    assert converted_colour(spec, master) == (("smpte170m", "smpte170m", "smpte170m", "tv"),
                                              ("bt709", "bt709", "bt709", "tv"))
    found = [f for f in check_metadata(master, spec) if f.check.startswith("metadata.colour")]
    assert [(f.check, f.expected, f.actual) for f in found] == [
        ("metadata.colour", "bt709", "smpte170m")] * 3
    assert found[0].message == ("colour primaries tag is smpte170m, spec wants bt709; the picture deliverables are "
                                "converted from smpte170m/smpte170m/smpte170m/tv to bt709/bt709/bt709/tv "
                                "(primaries/transfer/matrix/range)")


@needs_mediainfo
def test_bt601_master_gives_bt709_deliverables_with_the_same_colours(bt601, tmp_path) -> None:
    """Mezzanine (ProRes 4:2:2 10-bit) and screener (H.264 4:2:0 8-bit) of the BT.601 master: tagged BT.709 in the
    bitstream, the container and by MediaInfo, and the red patch decodes to the BT.709 encoding of the same
    colour within ±3 code values (8-bit)."""
    spec, master = bt601
    assert np.abs(_patch_ycbcr_8bit(master.path) - _bt601_ycbcr_8bit(_RED_75)).max() <= 1  # the master's own
    todo = [d for d in spec.deliverables if d.id in ("mezzanine", "screener")]
    result = transcode_all(todo, spec, master, tmp_path / "pkg", fields=FIELDS)
    assert [r.id for r in result.deliverables] == ["mezzanine", "screener"]
    for r in result.deliverables:
        assert "colour bt709/bt709/bt709/tv in the bitstream and the container" in r.checks
        fv = probe(r.path).primary_video
        assert (fv.color_primaries, fv.color_transfer, fv.color_matrix, fv.color_range) == tuple(BT709.values())
        box = run_ffprobe_json(["-nofind_stream_info", "-select_streams", "v:0", "-show_entries",
                                "stream=color_primaries,color_transfer,color_space", r.path])["streams"][0]
        assert (box["color_primaries"], box["color_transfer"], box["color_space"]) == ("bt709",) * 3
        video = mediainfo_json(r.path)["Video"]
        want_mi = MEDIAINFO_709 | ({"colour_range": None} if fv.codec == "prores" else {})
        assert {k: video.get(k) for k in MEDIAINFO_709} == want_mi, (r.id, video)
        got = _patch_ycbcr_8bit(r.path)
        assert _off_bt709(got, _RED_75) <= _PATCH_TOLERANCE_8BIT, (r.id, got.round(2), _bt709_ycbcr_8bit(_RED_75))


def test_matching_master_graph_has_no_conversion(untagged, tmp_path) -> None:
    """A master already in the spec's colour space goes through no zscale (its deliverables stay bit-identical)."""
    spec, _, _ = untagged
    media = make_sample_set(tmp_path / "tagged", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode="01:00:00:00", head_s=3, programme_s=1))
    tagged = married(media.master, list(media.mixes.values()), spec, tmp_path / "tagged.mov")
    assert converted_colour(spec, tagged) is None
    mezz = next(d for d in spec.deliverables if d.id == "mezzanine")
    assert "zscale" not in " ".join(deliverable_args(mezz, spec, tagged, tmp_path / "t.mov", title="FILM"))


def test_verification_fails_a_deliverable_whose_tags_differ_from_the_spec(bt601) -> None:
    """The BT.601 master, made by hand with ffmpeg, has the mezzanine's shape (ProRes HQ, 5.1 + 2.0 PCM) but
    SMPTE 170M tags: verified as the Netflix (BT.709) mezzanine, it fails on each differing tag."""
    spec, master = bt601
    mezz = next(d for d in spec.deliverables if d.id == "mezzanine")
    with pytest.raises(VerificationError) as err:
        verify_deliverable(mezz, spec, master.path, master.duration_s, master=master)
    text = str(err.value)
    for what in ("color primaries", "color transfer", "color matrix"):
        assert f"{what} smpte170m instead of bt709" in text
        assert f"colr atom {what} smpte170m instead of bt709" in text


def _retagged(master: MediaInfo, **tags: str) -> MediaInfo:
    v = master.primary_video
    assert v is not None
    return master.model_copy(update={"video": [v.model_copy(update=tags)]})


def test_bt2020_sdr_master_is_converted_and_hdr_masters_are_not(bt601, tmp_path) -> None:
    """The graph of a BT.2020 SDR master under the BT.709 spec converts (zscale from its tags to the spec's, the
    spec's tags on the output); an HDR (PQ) master is left to the tone-map, and an SDR master under an HDR spec is
    not converted."""
    spec, master = bt601
    b2020 = _retagged(master, color_primaries="bt2020", color_transfer="bt2020-10", color_matrix="bt2020nc")
    assert converted_colour(spec, b2020) == (("bt2020", "bt2020-10", "bt2020nc", "tv"),
                                             ("bt709", "bt709", "bt709", "tv"))
    screener = next(d for d in spec.deliverables if d.id == "screener")
    args = deliverable_args(screener, spec, b2020, tmp_path / "s.mp4", title="FILM")
    graph = args[args.index("-filter_complex") + 1]
    assert "zscale=m=bt709:min=bt2020nc:p=bt709:pin=bt2020:r=tv:rin=tv:t=bt709:tin=bt2020-10[s0];[s0]format=yuv420p" \
        in graph
    assert [args[args.index(f) + 1] for f in ("-color_primaries", "-color_trc", "-colorspace", "-color_range")] == [
        "bt709", "bt709", "bt709", "tv"]
    pq = _retagged(master, color_primaries="bt2020", color_transfer="smpte2084", color_matrix="bt2020nc")
    assert converted_colour(spec, pq) is None
    pq_colour = spec.picture.colour.model_copy(update={"primaries": "bt2020", "transfer": "smpte2084",
                                                       "matrix": "bt2020nc"})
    hdr_spec = spec.model_copy(update={"picture": spec.picture.model_copy(update={"colour": pq_colour})})
    assert converted_colour(hdr_spec, master) is None


def _line_to_line(path: str | Path, t_s: float, pix_fmt: str, w: int, h: int) -> tuple[float, float]:
    """Mean |line - next line| (8-bit) of the Y' and the Cr plane of the frame at ``t_s``, decoded in its own 10-bit
    ``pix_fmt`` (no chroma resampling): the combing of moving stripes, high while the two fields show different
    instants (chroma lines alternate between the fields in interlaced 4:2:2 and 4:2:0 alike)."""
    raw = run_ffmpeg(["-v", "error", "-ss", str(t_s), "-i", str(path), "-frames:v", "1", "-pix_fmt", pix_fmt,
                      "-f", "rawvideo", "-"], capture_stdout=True).stdout
    c_rows = h if pix_fmt.startswith("yuv422") else h // 2
    planes = np.frombuffer(raw, "<u2").astype(np.float64) / 4
    y, cr = planes[:w * h].reshape(h, w), planes[w * h + c_rows * w // 2:].reshape(c_rows, w // 2)
    return float(np.mean(np.abs(y[:-1] - y[1:]))), float(np.mean(np.abs(cr[:-1] - cr[1:])))


def test_interlaced_bt601_master_is_converted_field_by_field(tmp_path) -> None:
    """An interlaced SMPTE 170M master's kept-fields 4:2:0 mezzanine is converted one field at a time: it stays
    interlaced top field first, frame for frame, tagged BT.709, and neither its luma nor its chroma fields are
    blended: the line-to-line combing of stripes moving 8 px per field stays above half the master's in the
    chroma (a frame-wise conversion resamples 4:2:0 chroma across the fields: 1 against 72 code values; the
    conversion clips the stripes' most saturated colours at BT.709's gamut, 48 with Debian 12's ffmpeg 5.1.9) and
    in the luma (the conversion changes the luma of these coloured stripes)."""
    spec = load_spec("ebu-r128")  # picture.colour bt709/bt709/bt709/tv
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode="10:00:00:00", head_s=3, programme_s=1))
    woven = tmp_path / "woven.mov"
    stripes = ("nullsrc=s=320x180:r=50:d=8,format=yuv444p,geq=lum='128+80*sin(2*PI*(X+8*N)/32)':cb=128:"
               "cr='128+80*sin(2*PI*(X+8*N)/32)'")
    tags = "setparams=color_primaries=smpte170m:color_trc=smpte170m:colorspace=smpte170m:range=tv"  # frame header
    run_ffmpeg(["-v", "error", "-f", "lavfi", "-i", f"{stripes},tinterlace=mode=interleave_top,setpts=N/25/TB",
                "-vf", tags, "-frames:v", "100", "-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0",
                "-flags", "+ildct", "-field_order", "tt", "-pix_fmt", "yuv422p10le", "-color_primaries", "smpte170m",
                "-color_trc", "smpte170m", "-colorspace", "smpte170m", "-color_range", "tv", "-r", "25",
                "-timecode", "09:59:57:00", "-f", "mov", str(woven)], what="interlaced BT.601 master")
    master = married(woven, list(media.mixes.values()), spec, tmp_path / "layback.mov")
    mezz = Deliverable(id="mezz", kind="mezzanine", container="mov", name="{title}_{id}.mov",
                       video={"codec": "libx264", "pix_fmt": "yuv420p10le", "crf": 6},
                       audio=[AudioMap(from_track="main-51", codec="pcm_s24le")])
    assert "separatefields" in " ".join(deliverable_args(mezz, spec, master, tmp_path / "m.mov", title="FILM"))
    out = transcode_all([mezz], spec, master, tmp_path / "pkg", fields=FIELDS).deliverables[0]
    assert "colour bt709/bt709/bt709/tv in the bitstream and the container" in out.checks
    v = probe(out.path).primary_video
    assert (v.scan, v.field_order, v.color_primaries, v.color_matrix) == ("interlaced", "tt", "bt709", "bt709")
    assert (v.frame_count, master.primary_video.frame_count) == (25, 100)  # the 1 s programme, the head dropped
    luma, chroma = _line_to_line(master.path, 3.5, "yuv422p10le", 320, 180)  # the programme starts at 3 s
    assert luma > 40 and chroma > 40
    out_luma, out_chroma = _line_to_line(out.path, 0.5, "yuv420p10le", 320, 180)
    assert 0.5 * chroma < out_chroma <= 1.2 * chroma
    assert out_luma > 0.5 * luma
