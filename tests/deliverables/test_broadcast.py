"""Broadcast mezzanines: AVC-Intra 100 in MXF with mono tracks, interlaced masters kept interlaced, screeners
deinterlaced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specs.errors import BadInputError, SpecError
from specs.loader import load_spec
from specs.model import AudioMap, Deliverable
from tasks.deliverables.make import transcode_all
from tasks.deliverables.naming import RunFields
from tasks.media.ffmpeg import run_ffmpeg, run_ffprobe_json
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, MixSpec, make_mix, make_sample_set
from tests.deliverables.helpers import married, read_track

FIELDS = RunFields(title="FILM", version="v2", date="2031-01-02")
INTERLACED_PRORES = ("-profile:v", "3", "-vendor", "apl0", "-flags", "+ildct", "-field_order", "tt")


@pytest.fixture(scope="module")
def hdf(tmp_path_factory):
    """A 1080i25 ProRes master (3 s head + 1 s programme) married to its mix for the ARD/ZDF spec."""
    tmp = tmp_path_factory.mktemp("hdf")
    spec = load_spec("ard-zdf")
    media = make_sample_set(tmp / "media", layout="5.1", stereo=True,
                            master=MasterSpec(width=1920, height=1080, ffoa_timecode="10:00:00:00", head_s=3,
                                              programme_s=1, codec_args=INTERLACED_PRORES))
    return spec, married(media.master, list(media.mixes.values()), spec, tmp / "layback.mov")


def test_ard_zdf_mezzanine_is_avc_intra_100_mxf_interlaced_at_the_master_timecode(hdf, tmp_path):
    spec, master = hdf
    assert (master.primary_video.scan, master.primary_video.field_order) == ("interlaced", "tt")
    result = transcode_all(spec.deliverables, spec, master, tmp_path, fields=FIELDS)
    mezz = next(r for r in result.deliverables if r.id == "hdf02a")
    assert Path(mezz.path).suffix == ".mxf" and "full decode clean" in mezz.checks
    info = probe(mezz.path)
    v = info.primary_video
    assert (v.codec, v.profile, v.pix_fmt, v.field_order) == ("h264", "High 4:2:2 Intra", "yuv422p10le", "tt")
    assert info.start_timecode == "09:59:57:00"  # include_head: the whole master, from its first frame
    # AVC-Intra 100 at 1080i25: 111.5 Mbit/s of essence (SMPTE RP 2027); MXF KLV overhead on top, within 10 %.
    assert 100e6 <= v.bit_rate_bps <= 123e6
    packets = run_ffprobe_json(["-select_streams", "v:0", "-show_entries", "packet=flags", mezz.path])["packets"]
    assert len(packets) == 100 and all("K" in p["flags"] for p in packets)  # intra-only: every frame a key frame
    # HDF02a: 8 mono tracks, ch 1-2 the stereo mix, ch 3-8 the 5.1 in L R C LFE Ls Rs order, each bit for bit
    # the master's channel (PCM, the whole master: no trim).
    assert [(a.codec, a.channels) for a in info.audio] == [("pcm_s24le", 1)] * 8
    _assert_mono_tracks_are(mezz.path, master.path, [(0, ch) for ch in range(2)] + [(1, ch) for ch in range(6)])
    screener = probe(next(r for r in result.deliverables if r.id == "sichtkopie").path)
    assert screener.primary_video.scan == "progressive"


def _assert_mono_tracks_are(path: str, master_path: str, sources: list[tuple[int, int]]) -> None:
    """Mono track k of ``path`` is, bit for bit, channel sources[k][1] of master track sources[k][0]."""
    for k, (track, ch) in enumerate(sources):
        got = read_track(Path(path), k, start_s=3.2, duration_s=0.5)[:, 0]
        want = read_track(Path(master_path), track, start_s=3.2, duration_s=0.5)[:, ch]
        assert np.max(np.abs(want)) > 0.001  # programme audio, not silence
        np.testing.assert_array_equal(got, want)


def test_dpp_as11_essence_is_avc_intra_100_with_two_stereo_pairs_as_four_mono_tracks(tmp_path):
    spec = load_spec("dpp-as11")
    timing = dict(ffoa_timecode="10:00:00:00", head_s=3, programme_s=1)
    media = make_sample_set(tmp_path / "media", layout="2.0",
                            master=MasterSpec(width=1920, height=1080, codec_args=INTERLACED_PRORES, **timing))
    pair_2 = make_mix(tmp_path / "media" / "pair2.wav", MixSpec(layout="2.0", seed=7, **timing)).path
    master = married(media.master, [media.mixes["2.0"], pair_2], spec, tmp_path / "layback.mov")
    made = transcode_all(spec.deliverables, spec, master, tmp_path / "pkg", fields=FIELDS).deliverables
    result = {r.id: r for r in made}
    info = probe(result["as11-essence"].path)
    v = info.primary_video
    assert (v.codec, v.profile, v.field_order, info.start_timecode) == ("h264", "High 4:2:2 Intra", "tt", "09:59:57:00")
    assert [(a.codec, a.channels) for a in info.audio] == [("pcm_s24le", 1)] * 4
    _assert_mono_tracks_are(result["as11-essence"].path, master.path, [(0, 0), (0, 1), (1, 0), (1, 1)])
    assert probe(result["viewing-copy"].path).primary_video.scan == "progressive"


def _combing(path: str, t_s: float, w: int, h: int) -> float:
    """Mean |line - next line| (8-bit) of a frame of vertical stripes: 0 when both fields show one instant."""
    raw = run_ffmpeg(["-v", "error", "-ss", str(t_s), "-i", path, "-frames:v", "1", "-pix_fmt", "gray",
                      "-f", "rawvideo", "-"], capture_stdout=True).stdout
    y = np.frombuffer(raw, np.uint8).reshape(h, w).astype(np.float64)
    return float(np.mean(np.abs(y[:-1] - y[1:])))


def test_interlaced_master_stays_interlaced_in_the_mezzanine_and_is_deinterlaced_for_the_screener(tmp_path):
    spec = load_spec("ebu-r128")
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode="10:00:00:00", head_s=4, programme_s=2))
    # Real interlaced content: vertical stripes moving 8 px per field, 50 fields/s woven into 25 frames/s,
    # coded as interlaced ProRes, top field first. Adjacent lines belong to different instants: combing.
    woven = tmp_path / "woven.mov"
    stripes = "nullsrc=s=320x180:r=50:d=12,geq=lum='128+100*sin(2*PI*(X+8*N)/32)':cb=128:cr=128"
    run_ffmpeg(["-f", "lavfi", "-i", f"{stripes},tinterlace=mode=interleave_top,setpts=N/25/TB",
                "-frames:v", "150", "-c:v", "prores_ks", *INTERLACED_PRORES, "-pix_fmt", "yuv422p10le",
                "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv",
                "-r", "25", "-timecode", "09:59:56:00", "-f", "mov", str(woven)])
    master = married(woven, list(media.mixes.values()), spec, tmp_path / "layback.mov")
    deliverables = [
        Deliverable(id="mezz", kind="mezzanine", container="mov", name="{title}_{id}.mov",
                    video={"codec": "libx264", "pix_fmt": "yuv422p10le", "crf": 10},
                    audio=[AudioMap(from_track="main-51", codec="pcm_s24le")]),
        Deliverable(id="prores", kind="mezzanine", container="mov", name="{title}_{id}.mov",
                    video={"codec": "prores_ks", "profile": "hq", "pix_fmt": "yuv422p10le"}),
        Deliverable(id="screener", kind="screener", container="mp4", name="{title}_{id}.mp4",
                    video={"codec": "libx264", "pix_fmt": "yuv420p", "crf": 18},
                    audio=[AudioMap(from_track="stereo-20", codec="aac")]),
    ]
    result = {r.id: r for r in transcode_all(deliverables, spec, master, tmp_path / "pkg", fields=FIELDS).deliverables}
    mezz, screener = probe(result["mezz"].path).primary_video, probe(result["screener"].path).primary_video
    assert (mezz.scan, mezz.field_order) == ("interlaced", "tt")
    prores = probe(result["prores"].path).primary_video
    assert (prores.codec, prores.scan, prores.field_order) == ("prores", "interlaced", "tt")
    assert screener.scan == "progressive"
    # Fields intact in the mezzanine (as combed as the master); the screener's picture is one frame in time.
    master_comb = _combing(master.path, 5.0, 320, 180)
    assert master_comb > 40  # stripes 8 px apart between the fields: tens of code values line to line
    for kept in ("mezz", "prores"):
        assert _combing(result[kept].path, 1.0, 320, 180) == pytest.approx(master_comb, rel=0.1)
    assert _combing(result["screener"].path, 1.0, 320, 180) < 0.1 * master_comb


@pytest.mark.parametrize(("video", "message"), [
    ("{codec: libx264, profile: high422, pix_fmt: yuv422p10le, bitrate_kbps: 112000}", "long-GOP cannot go in mxf"),
    ("{codec: libx264, avc_intra_class: 100, bitrate_kbps: 112000}", "sets the bit rate itself"),
    ("{codec: libx264, avc_intra_class: 50, pix_fmt: yuv422p10le}", "AVC-Intra 50 is yuv420p10le"),
    ("{codec: prores_ks, avc_intra_class: 100}", "needs codec libx264"),
])
def test_spec_rejects_a_broadcast_encode_ffmpeg_cannot_write_correctly(video, message, tmp_path):
    base = (Path(__file__).resolve().parents[2] / "specs" / "ard-zdf.yaml").read_text(encoding="utf-8")
    broken = base.replace("{codec: libx264, avc_intra_class: 100, pix_fmt: yuv422p10le}", video, 1)
    assert broken != base
    (tmp_path / "broken.yaml").write_text(broken, encoding="utf-8")
    with pytest.raises(SpecError, match=message):
        load_spec(tmp_path / "broken.yaml")


def test_mono_tracks_cannot_carry_a_loudness_target():
    with pytest.raises(ValueError, match="measured on the whole mix"):
        AudioMap(from_track="main-51", codec="pcm_s24le", mono_tracks=True, loudness_target_lufs=-23)


def test_avc_intra_from_a_master_of_another_size_is_refused_before_encoding(tmp_path):
    spec = load_spec("ard-zdf")
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            master=MasterSpec(ffoa_timecode="10:00:00:00", head_s=3, programme_s=1))
    master = married(media.master, list(media.mixes.values()), spec, tmp_path / "layback.mov")
    with pytest.raises(BadInputError, match="AVC-Intra 100 is 1920x1080 or 1280x720, not 320x180"):
        transcode_all(spec.deliverables, spec, master, tmp_path / "pkg", fields=FIELDS)
    assert not (tmp_path / "pkg").exists() or not any((tmp_path / "pkg").iterdir())
