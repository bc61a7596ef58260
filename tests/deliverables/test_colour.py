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

import pytest

from specs.errors import VerificationError
from specs.loader import load_spec
from specs.model import CheckSpec, Spec
from tasks.deliverables.graph import deliverable_args
from tasks.deliverables.make import transcode_all
from tasks.deliverables.shape import assumed_colour, expected_duration_s
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
