from fractions import Fraction

import pytest

from specs.errors import MediaError
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, MixSpec, make_master, make_mix


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    path = tmp_path_factory.mktemp("probe") / "m.mov"
    make_master(path, MasterSpec(rate=Fraction(24000, 1001), head_s=3, programme_s=1))
    return path


def test_probe_master_is_typed_and_exact(master):
    info = probe(master)
    v = info.primary_video
    assert v.codec == "prores" and v.profile == "HQ"
    assert (v.width, v.height) == (320, 180)
    assert v.frame_rate == Fraction(24000, 1001)  # rational, not 23.976
    assert v.pix_fmt == "yuv422p10le" and v.bit_depth == 10 and v.chroma_subsampling == "4:2:2"
    assert (v.color_primaries, v.color_transfer, v.color_matrix) == ("bt709", "bt709", "bt709")
    assert v.scan == "progressive"
    assert info.start_timecode == "00:59:57:00" and info.timecode_tracks == 1
    assert info.start_seconds() == Fraction(3597 * 24, 1) / Fraction(24000, 1001)


def test_probe_bwf_time_reference(tmp_path):
    mix = tmp_path / "mix.wav"
    manifest = make_mix(mix, MixSpec(layout="5.1", head_s=3, programme_s=1))
    info = probe(mix)
    a = info.audio[0]
    assert (a.channels, a.sample_rate_hz, a.bit_depth, a.channel_layout) == (6, 48000, 24, "5.1")
    assert info.bwf_time_reference_samples == manifest.time_reference_samples
    assert info.start_seconds() == Fraction(manifest.time_reference_samples, 48000)


def test_probe_interlaced_field_order(tmp_path):
    path = tmp_path / "i.mov"
    run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=0.4", "-vf", "setfield=tff",
                "-flags", "+ildct+ilme", "-c:v", "prores_ks", "-profile:v", "3", path])
    v = probe(path).primary_video
    assert v.scan == "interlaced" and v.field_order in ("tt", "tb")


@pytest.mark.parametrize("content,needle",
                         [(None, "not found"), (b"", "empty"), (b"not media at all\n", "not readable media")])
def test_probe_bad_input(tmp_path, content, needle):
    path = tmp_path / "x.mov"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError, match=needle):
        probe(path)
