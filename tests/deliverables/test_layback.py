"""Layback on generated media: channel order by tone, sample-exact alignment, refusal, bit-identical picture."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specs.errors import BadInputError, MediaError
from specs.loader import load_spec
from tasks.layback import layback, layback_summary, parse_mix_arg, plan_layback
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, MixSpec, make_master, make_mix
from tests.deliverables.helpers import (
    LABELS_51,
    RATE,
    SR,
    TONES_HZ,
    dominant_hz,
    read_track,
    tones,
    video_framemd5,
    write_bwf,
)

DELIVER = Path(sys.executable).parent / "deliver"
TIMING = dict(head_s=4.0, programme_s=2.0)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("layback")
    manifest = make_master(root / "master.mov", MasterSpec(**TIMING))
    n = int(manifest.total_frames / RATE * SR)
    tref = int(manifest.start_seconds * SR)
    return {"root": root, "master": root / "master.mov", "manifest": manifest, "n": n, "tref": tref,
            "spec": load_spec("demo")}


def _stereo(media, root: Path) -> Path:
    return write_bwf(root / "st.wav", tones(("L", "R"), media["n"]), media["tref"])


def _assert_tone_per_channel(path: Path, track: int, labels: tuple[str, ...]) -> None:
    x = read_track(path, track, start_s=4.0, duration_s=1.0)
    assert x.shape[1] == len(labels)
    got = [dominant_hz(x[:, c]) for c in range(x.shape[1])]
    assert got == [TONES_HZ[lab] for lab in labels], got


def test_interleaved_51_lays_back_in_spec_channel_order(media, tmp_path):
    mix = write_bwf(tmp_path / "pm51.wav", tones(LABELS_51, media["n"]), media["tref"])
    plan = plan_layback(probe(media["master"]), [probe(mix), probe(_stereo(media, tmp_path))], media["spec"])
    out = layback(plan, media["spec"], tmp_path / "lb.mov").path
    _assert_tone_per_channel(Path(out), 0, LABELS_51)
    _assert_tone_per_channel(Path(out), 1, ("L", "R"))
    info = probe(out)
    assert [a.channel_layout for a in info.audio] == ["5.1", "stereo"]


def test_mono_per_channel_files_are_mapped_by_suffix(media, tmp_path):
    x = tones(LABELS_51, media["n"])
    paths = [write_bwf(tmp_path / f"REEL1_PM_{lab}.wav", x[:, i], media["tref"]) for i, lab in enumerate(LABELS_51)]
    shuffled = [paths[i] for i in (5, 2, 0, 3, 1, 4)]  # command-line order must not matter
    mixes = [probe(p) for p in shuffled] + [probe(_stereo(media, tmp_path))]
    plan = plan_layback(probe(media["master"]), mixes, media["spec"])
    assert [Path(p).name for p in plan.tracks[0].mix_paths] == [p.name for p in shuffled]
    out = Path(layback(plan, media["spec"], tmp_path / "lb.mov").path)
    _assert_tone_per_channel(out, 0, LABELS_51)


def test_explicit_channel_map_reorders_a_film_order_file(media, tmp_path):
    film = ("L", "C", "R", "Ls", "Rs", "LFE")
    mix = write_bwf(tmp_path / "film_order.wav", tones(film, media["n"]), media["tref"])
    arg = parse_mix_arg(f"{','.join(film)}={mix}")
    assert arg.labels == film
    plan = plan_layback(probe(media["master"]), [(arg, probe(mix)), (parse_mix_arg(str(_stereo(media, tmp_path))),
                                                                     probe(tmp_path / "st.wav"))], media["spec"])
    out = Path(layback(plan, media["spec"], tmp_path / "lb.mov").path)
    _assert_tone_per_channel(out, 0, LABELS_51)


def test_mix_two_frames_late_is_aligned_to_the_sample(media, tmp_path):
    mix_spec = MixSpec(**TIMING, layout="5.1")
    full = make_mix(tmp_path / "full.wav", mix_spec)
    ints, _ = sf.read(str(full.path), dtype="int32", always_2d=True)
    late = 2 * SR // 25  # two frames at 25 fps = 3840 samples
    x = ints[late:].astype(np.float64) / 2**31
    late_mix = write_bwf(tmp_path / "late.wav", x, full.time_reference_samples + late)
    stereo = make_mix(tmp_path / "st.wav", MixSpec(**TIMING, layout="2.0"))
    plan = plan_layback(probe(media["master"]), [probe(late_mix), probe(stereo.path)], media["spec"])
    assert plan.tracks[0].offset_samples == late
    assert abs(plan.tracks[0].two_pop_offset_samples) <= 2  # the 2-pop lands on the picture's 2-pop
    assert any("2-pop" in n for n in plan.notes) and any("+3840 samples" in n for n in plan.notes)
    result = layback(plan, media["spec"], tmp_path / "lb.mov")
    summary = layback_summary(result)["tracks"][0]  # what report.json says
    assert (summary["offset_samples"], summary["offset_frames"], summary["alignment"]) == (3840, 2.0,
                                                                                          "padded at the head")
    assert abs(summary["two_pop_offset_frames"]) <= 0.002
    out = Path(result.path)
    got = read_track(out, 0)
    want = ints.astype(np.float64) / 2**31
    want[:late] = 0.0  # the head the late mix does not have is silence
    assert got.shape == want.shape
    assert np.array_equal(got, want)  # sample-exact: every sample where it belongs


def test_picture_packets_and_timecode_are_bit_identical(media, tmp_path):
    mix = write_bwf(tmp_path / "pm51.wav", tones(LABELS_51, media["n"]), media["tref"])
    plan = plan_layback(probe(media["master"]), [probe(mix), probe(_stereo(media, tmp_path))], media["spec"])
    result = layback(plan, media["spec"], tmp_path / "lb.mov")
    assert video_framemd5(Path(result.path)) == video_framemd5(media["master"])
    assert probe(result.path).start_timecode == probe(media["master"]).start_timecode == "00:59:56:00"
    with pytest.raises(BadInputError, match="never overwritten"):
        layback(plan, media["spec"], tmp_path / "lb.mov")


def test_short_mix_within_tolerance_is_padded_to_the_picture(media, tmp_path):
    short = write_bwf(tmp_path / "pm51.wav", tones(LABELS_51, media["n"] - SR // 50), media["tref"])  # 20 ms short
    plan = plan_layback(probe(media["master"]), [probe(short), probe(_stereo(media, tmp_path))], media["spec"])
    assert any("padded with silence" in n for n in plan.notes)
    out = Path(layback(plan, media["spec"], tmp_path / "lb.mov").path)
    x = read_track(out, 0)
    assert x.shape[0] == media["n"] and not x[-SR // 50:].any()


def test_mix_a_second_late_is_placed_and_its_head_gap_measured(media, tmp_path):
    # Until issue 13 a mix this late was refused; now it is laid back where its time reference says and QC
    # reports the gap (audio.layback_coverage), so the gate and --force decide.
    late = write_bwf(tmp_path / "pm51.wav", tones(LABELS_51, media["n"]), media["tref"] + 5 * SR)
    plan = plan_layback(probe(media["master"]), [probe(late), probe(_stereo(media, tmp_path))], media["spec"])
    t = plan.tracks[0]
    assert (t.offset_samples, t.head_gap_samples, t.tail_gap_samples) == (5 * SR, SR, 0)  # FFOA at 4 s
    assert t.tail_trim_samples == 5 * SR and plan.programme_start_frame == 100
    out = Path(layback(plan, media["spec"], tmp_path / "lb.mov").path)
    x = read_track(out, 0)
    assert x.shape[0] == media["n"] and not x[:5 * SR].any() and x[5 * SR:].any()


def test_mix_with_no_overlap_is_refused(media, tmp_path):
    far = write_bwf(tmp_path / "pm51.wav", tones(LABELS_51, media["n"]), media["tref"] + 7 * SR)  # after the end
    with pytest.raises(MediaError, match="cannot be placed.*no overlap"):
        plan_layback(probe(media["master"]), [probe(far), probe(_stereo(media, tmp_path))], media["spec"])


def test_mix_beyond_the_specs_maximum_offset_is_refused(media, tmp_path):
    spec = media["spec"]
    strict = spec.model_copy(update={"timing": spec.timing.model_copy(update={"max_layback_offset_s": 0.5})})
    late = write_bwf(tmp_path / "pm51.wav", tones(LABELS_51, media["n"]), media["tref"] + 5 * SR)
    with pytest.raises(MediaError, match=r"1\.000 s from the programme start 01:00:00:00; spec demo allows 0.5 s"):
        plan_layback(probe(media["master"]), [probe(late), probe(_stereo(media, tmp_path))], strict)


def test_cli_mix_with_no_overlap_exits_2_with_one_clear_line(media, tmp_path):
    (tmp_path / "mixes").mkdir()
    far = write_bwf(tmp_path / "mixes" / "pm51.wav", tones(LABELS_51, media["n"]), media["tref"] + 7 * SR)
    out = tmp_path / "out"  # outside the inputs' folders (preflight refuses an output among the sources)
    proc = subprocess.run([str(DELIVER), "run", "--master", str(media["master"]), "--mix", str(far), "--mix",
                           str(_stereo(media, tmp_path / "mixes")), "--spec", "demo", "--title", "T", "--out",
                           str(out)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "cannot be placed" in lines[0] and "pm51.wav" in lines[0] and "no overlap" in lines[0]
    assert "runs 01:00:03:00 to 01:00:09:00" in lines[0] and "programme runs 01:00:00:00 to 01:00:02:00" in lines[0]
    assert not out.exists()


def test_spec_with_mono_tracks_takes_one_channel_each(media, tmp_path):
    from specs.model import AudioTrackSpec

    spec = media["spec"]
    monos = [AudioTrackSpec(id=f"m-{lab.lower()}", label=lab, layout="mono", channels=[lab]) for lab in LABELS_51]
    mono_spec = spec.model_copy(update={"audio": spec.audio.model_copy(update={"tracks": monos})})
    mix = write_bwf(tmp_path / "pm51.wav", tones(LABELS_51, media["n"]), media["tref"])
    plan = plan_layback(probe(media["master"]), [probe(mix)], mono_spec)
    out = Path(layback(plan, mono_spec, tmp_path / "lb.mov").path)
    assert [a.channels for a in probe(out).audio] == [1] * 6
    for k, lab in enumerate(LABELS_51):
        _assert_tone_per_channel(out, k, (lab,))
