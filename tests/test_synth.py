"""The synthetic media generator: formats, timecodes, levels and every defect where the manifest says."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from specs.errors import BadInputError
from specs.timecode import Timecode
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.probe import probe
from tasks.media.synth import (
    INT24_MAX,
    BlackDefect,
    ClippingDefect,
    FreezeDefect,
    IllegalLevelsDefect,
    LoudnessOffsetDefect,
    MasterSpec,
    MixSpec,
    ShortMixDefect,
    SilenceDefect,
    WrongChannelCountDefect,
    make_master,
    make_mix,
    make_sample_set,
)

W, H = 320, 180
FULL_RANGE_51 = [0, 1, 2, 4, 5]  # L R C Ls Rs, pyloudnorm's channel order


def luma_frames(path: Path, width: int = W, height: int = H) -> np.ndarray:
    """Decode every frame's 10-bit Y plane: array (frames, height, width) of code values."""
    res = run_ffmpeg(["-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "yuv422p10le", "pipe:1"],
                     capture_stdout=True, what="decode for test")
    words = np.frombuffer(res.stdout, dtype="<u2")
    per_frame = width * height * 2  # Y + two half-width chroma planes
    frames = words.reshape(-1, per_frame)
    return frames[:, : width * height].reshape(-1, height, width)


def programme_lufs(data: np.ndarray, start: int, channels: list[int], rate: int = 48000) -> float:
    return pyloudnorm.Meter(rate).integrated_loudness(data[start:, channels])


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory):
    return make_sample_set(tmp_path_factory.mktemp("clean"), stereo=True)


@pytest.fixture(scope="module")
def clean_luma(clean) -> np.ndarray:
    return luma_frames(clean.master)


DEFECTS = [
    BlackDefect(at_s=0.4, duration_s=0.4),
    FreezeDefect(at_s=1.2, duration_s=0.6),
    IllegalLevelsDefect(at_s=2.2, duration_s=0.4, area_share=0.05),
    SilenceDefect(at_s=0.4, duration_s=0.4),
    ClippingDefect(at_s=2.0, duration_s=0.002, channel=1),
    LoudnessOffsetDefect(offset_lu=3.0),
    WrongChannelCountDefect(channels=8),
    ShortMixDefect(short_by_s=0.52),
]


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory):
    return make_sample_set(tmp_path_factory.mktemp("broken"), defects=DEFECTS)


@pytest.fixture(scope="module")
def broken_luma(broken) -> np.ndarray:
    return luma_frames(broken.master)


def span(defect) -> tuple[int, int]:
    return defect.parameters["file_frame_in"], defect.parameters["file_frame_out"]


# -- clean master and mix -------------------------------------------------------------------------
def test_master_format_and_timecode(clean) -> None:
    info = probe(clean.master)
    v = info.primary_video
    assert v is not None
    assert (v.codec, v.profile, v.width, v.height, v.pix_fmt) == ("prores", "HQ", W, H, "yuv422p10le")
    assert v.frame_rate == Fraction(25, 1)
    assert (v.color_primaries, v.color_transfer, v.color_matrix, v.color_range) == ("bt709",) * 3 + ("tv",)
    assert info.start_timecode == "00:59:56:00" == clean.master_manifest.start_timecode
    assert info.timecode_tracks == 1
    assert abs(info.duration_s - 8.0) <= 1 / 25
    m = clean.master_manifest
    assert (m.ffoa_timecode, m.two_pop_timecode, m.total_frames) == ("01:00:00:00", "00:59:58:00", 200)
    assert clean.manifest_json.is_file()


def test_mix_format_and_time_reference(clean) -> None:
    info = probe(clean.mixes["5.1"])
    a = info.audio[0]
    assert (a.codec, a.channels, a.sample_rate_hz, a.bit_depth, a.channel_layout) == ("pcm_s24le", 6, 48000, 24, "5.1")
    assert info.bwf_time_reference_samples == (3600 - 4) * 48000 == clean.mix_manifest.time_reference_samples
    assert info.start_seconds() == probe(clean.master).start_seconds()
    data, rate = sf.read(clean.mixes["5.1"])
    assert data.shape == (8 * 48000, 6) and rate == 48000
    stereo = probe(clean.mixes["2.0"])
    assert (stereo.audio[0].channels, stereo.bwf_time_reference_samples) == (2, (3600 - 4) * 48000)


def test_programme_loudness_and_content(clean) -> None:
    data, _ = sf.read(clean.mixes["5.1"])
    assert programme_lufs(data, 4 * 48000, FULL_RANGE_51) == pytest.approx(-24.0, abs=0.1)
    assert clean.mix_manifest.programme_loudness_lufs == pytest.approx(-24.0, abs=0.05)
    assert 20 * np.log10(np.abs(data).max()) < -6.0  # sample peaks well below full scale
    prog = data[4 * 48000:]
    assert all(not np.array_equal(prog[:, i], prog[:, j]) for i in range(6) for j in range(i + 1, 6))
    lfe = np.abs(np.fft.rfft(prog[:, 3])) ** 2
    freqs = np.fft.rfftfreq(prog.shape[0], 1 / 48000)
    assert lfe[freqs > 250].sum() < 1e-3 * lfe.sum()  # LFE is low-passed
    stereo, _ = sf.read(clean.mixes["2.0"])
    assert programme_lufs(stereo, 4 * 48000, [0, 1]) == pytest.approx(-24.0, abs=0.1)


def test_two_pop_sound_and_flash_frame(clean, clean_luma) -> None:
    data, _ = sf.read(clean.mixes["5.1"])
    pop_at = 2 * 48000  # FFOA (4 s) - 2 s
    countdown = data[1 * 48000: 4 * 48000]
    for ch in FULL_RANGE_51:
        nonzero = np.flatnonzero(countdown[:, ch]) + 48000
        assert abs(nonzero[0] - pop_at) <= 48  # ±1 ms
        assert nonzero[-1] - nonzero[0] == pytest.approx(1920, abs=48)  # one frame at 25 fps
        assert 20 * np.log10(np.abs(countdown[:, ch]).max()) == pytest.approx(-20.0, abs=0.1)
    assert not data[:4 * 48000, 3].any()  # no pop on the LFE, head otherwise silent
    assert not data[:pop_at - 48].any()
    means = clean_luma[25:100].mean(axis=(1, 2))  # clock, pop, black
    assert int(np.argmax(means)) + 25 == 50 == clean.mix_manifest.two_pop_sample // 1920
    assert means.max() > 850  # a white flash (940 is white)
    assert np.all(means[27:] < 80)  # black until FFOA


def test_programme_moves_in_every_frame(clean_luma) -> None:
    prog = clean_luma[100:].astype(np.int32)
    assert np.all(np.abs(np.diff(prog, axis=0)).reshape(99, -1).max(axis=1) > 0)
    assert prog.max() <= 940 and prog.min() >= 64  # legal in the clean master


@pytest.mark.parametrize(("rate", "start", "ffoa", "fps"), [
    (Fraction(24000, 1001), "00:59:56:00", "01:00:00:00", 24),
    (Fraction(30000, 1001), "00:59:56;00", "01:00:00;00", 30),
    (Fraction(24), "00:59:56:00", "01:00:00:00", 24),
    (Fraction(50), "00:59:56:00", "01:00:00:00", 50),
])
def test_rates_and_timecode(tmp_path: Path, rate: Fraction, start: str, ffoa: str, fps: int) -> None:
    spec = MasterSpec(rate=rate, programme_s=1.0)
    m = make_master(tmp_path / "m.mov", spec)
    info = probe(tmp_path / "m.mov")
    assert info.primary_video.frame_rate == rate
    assert info.start_timecode == start == m.start_timecode
    assert (m.ffoa_timecode, m.head_frames, m.programme_frames) == (ffoa, 4 * fps, fps)
    mix = make_mix(tmp_path / "mix.wav", MixSpec(rate=rate, programme_s=1.0))
    tc = Timecode.parse(start, rate)
    assert (probe(tmp_path / "mix.wav").bwf_time_reference_samples == round(tc.seconds * 48000)
            == mix.time_reference_samples)
    assert info.duration_s == pytest.approx(float(5 * fps / rate), abs=float(1 / rate))
    assert sf.info(str(tmp_path / "mix.wav")).frames == round(5 * fps / rate * 48000)


def test_codec_variants(tmp_path: Path) -> None:
    make_master(tmp_path / "h.mov", MasterSpec.h264(programme_s=1.0))
    make_master(tmp_path / "p.mov", MasterSpec.fast_prores(programme_s=1.0))
    h, p = probe(tmp_path / "h.mov").primary_video, probe(tmp_path / "p.mov").primary_video
    assert (h.codec, h.pix_fmt, h.color_primaries) == ("h264", "yuv420p", "bt709")
    assert (p.codec, p.profile, p.pix_fmt) == ("prores", "HQ", "yuv422p10le")


# -- defects ----------------------------------------------------------------------------------------
def test_defect_timecodes_in_manifest(broken) -> None:
    pic = {d.kind: (d.timecode_in, d.timecode_out) for d in broken.master_manifest.defects}
    assert pic == {"freeze": ("01:00:01:05", "01:00:01:20"), "black": ("01:00:00:10", "01:00:00:20"),
                   "illegal_levels": ("01:00:02:05", "01:00:02:15")}
    mix = {d.kind: (d.timecode_in, d.timecode_out) for d in broken.mix_manifest.defects}
    assert mix["silence"] == ("01:00:00:10", "01:00:00:20")
    assert mix["clipping"] == ("01:00:02:00", "01:00:02:01")
    assert mix["short_mix"] == ("01:00:03:12", "01:00:04:00")


def test_black_defect(broken, broken_luma) -> None:
    f_in, f_out = span(broken.master_manifest.defect("black"))
    means = broken_luma.mean(axis=(1, 2))
    assert np.all(np.abs(means[f_in:f_out] - 64) < 2)
    assert means[f_in - 1] > 200 and means[f_out] > 200
    data, _ = sf.read(broken.mix)
    # the audio keeps playing under the black, except where the silence defect sits (same span here)
    assert np.abs(data[(f_out + 2) * 1920:(f_out + 5) * 1920]).max() > 0.01


def test_freeze_defect(broken, broken_luma) -> None:
    f_in, f_out = span(broken.master_manifest.defect("freeze"))
    frozen = broken_luma[f_in:f_out]
    assert all(np.array_equal(frozen[0], f) for f in frozen[1:])
    assert not np.array_equal(broken_luma[f_in - 1], frozen[0])
    assert not np.array_equal(broken_luma[f_out], frozen[0])


def test_illegal_levels_defect(broken, broken_luma) -> None:
    d = broken.master_manifest.defect("illegal_levels")
    f_in, f_out = span(d)
    share = (broken_luma > 940).mean(axis=(1, 2))
    assert np.all(np.abs(share[f_in:f_out] - d.parameters["area_share"]) < 0.01)
    assert d.parameters["area_share"] == pytest.approx(0.05, abs=0.005)
    assert np.all(share[100:f_in] == 0) and np.all(share[f_out:] == 0)


def test_mix_defects(broken) -> None:
    m = broken.mix_manifest
    data, rate = sf.read(broken.mix, dtype="int32")
    # wrong channel count: 5.1 asked, 8 written (two silent extras); short mix: 13 frames missing
    assert data.shape[1] == 8 == probe(broken.mix).audio[0].channels and not data[:, 6:].any()
    assert data.shape[0] == 8 * 48000 - 13 * 1920 == m.total_samples
    sil = m.defect("silence").parameters
    assert not data[sil["sample_in"]:sil["sample_out"]].any()
    assert data[sil["sample_out"]:sil["sample_out"] + 4800, :3].any()
    clip = m.defect("clipping").parameters
    run = data[clip["sample_in"]:clip["sample_out"], clip["channel"]] >> 8
    assert len(run) == 96 and np.all(run == INT24_MAX)
    # loudness +3 LU, held on target despite the silence and the clipping run
    floats = data[:, :6].astype(np.float64) / 2**31
    assert programme_lufs(floats, 4 * 48000, FULL_RANGE_51) == pytest.approx(-21.0, abs=0.1)


def test_fewer_channels_and_picture_defects_ignored(tmp_path: Path) -> None:
    m = make_mix(tmp_path / "mix.wav", MixSpec(programme_s=2.0),
                 [WrongChannelCountDefect(channels=4), BlackDefect(at_s=0, duration_s=1)])
    assert sf.info(str(tmp_path / "mix.wav")).channels == 4 == m.channels
    assert [d.kind for d in m.defects] == ["wrong_channel_count"]


# -- safety -------------------------------------------------------------------------------------------
def test_refuses_to_overwrite_and_leaves_no_partials(tmp_path: Path) -> None:
    spec = MixSpec(programme_s=1.0)
    make_mix(tmp_path / "mix.wav", spec)
    before = (tmp_path / "mix.wav").read_bytes()
    with pytest.raises(BadInputError, match="overwrite=True"):
        make_mix(tmp_path / "mix.wav", spec)
    make_mix(tmp_path / "mix.wav", spec, overwrite=True)
    assert (tmp_path / "mix.wav").read_bytes() == before  # deterministic
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]


def test_defect_outside_programme_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="ends after the programme"):
        make_master(tmp_path / "m.mov", MasterSpec(programme_s=1.0), [{"kind": "black", "at_s": 0.5, "duration_s": 1}])
    assert not list(tmp_path.iterdir())


def test_sample_set_is_all_or_nothing(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="channel 7"):
        make_sample_set(tmp_path / "set", stereo=True, defects=[{"kind": "clipping", "channel": 7}])
    assert not list((tmp_path / "set").iterdir())
    with pytest.raises(BadInputError, match="Kinds"):
        make_sample_set(tmp_path / "set", defects=[{"kind": "dropout"}])
