"""Dialogue-gated rules in QC and correction to a dialogue-gated target, on espeak-ng speech.

* A 5.1 + 2.0 master whose dialogue sits 3 LU low (-30) while loud music between the lines brings
  the programme to -24: it passes plain BS.1770-4 at -24 ±2 and fails Netflix's -27 ±2
  dialogue-gated rule, and the finding says why, with the speech share (issue 16, criterion 3).
* Dialogue at -27 passes Netflix; music only falls back to the BS.1770-4 rule and says so.
* A dialogue programme at -31 corrected to -27 dialogue-gated re-measures at -27 ±0.5 with the
  dialogue meter and true peak <= -2 dBTP (criterion 4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specs.loader import load_spec
from specs.model import LoudnessSpec
from tasks.audio.correct import correct_loudness
from tasks.audio.loudness import measure_array, measure_file
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, make_master
from tasks.qc.audio import loudness_findings
from tasks.qc.engine import qc_master
from tasks.qc.loudness import evaluate_loudness_rule
from tasks.report import build_report, loudness_markdown
from tasks.report_html import render_html_report
from tests.audio.speech import FS, Programme, espeak_available, loud_between_lines, make_programme
from tests.qc.media import marry

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed (make speech)")

HEAD_S = 4.0


def _write_mix(path: Path, prog: Programme) -> Path:
    head = np.zeros((round(HEAD_S * FS), prog.mix.shape[1]), np.float32)
    sf.write(str(path), np.concatenate([head, prog.mix]), FS, subtype="PCM_24")
    return path


@pytest.fixture(scope="module")
def low_dialogue_master(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Programme]:
    out = tmp_path_factory.mktemp("dialogue-qc")
    duration = 30.0
    picture = out / "picture.mov"
    make_master(picture, MasterSpec(head_s=HEAD_S, programme_s=duration, width=160, height=90))
    p51 = loud_between_lines(duration, "5.1", seed=11)
    p20 = loud_between_lines(duration, "2.0", seed=12)
    married = marry(picture, [_write_mix(out / "m51.wav", p51), _write_mix(out / "m20.wav", p20)],
                    out / "married.mov")
    return married, p51


def test_netflix_qc_fails_low_dialogue_that_passes_bs1770(low_dialogue_master: tuple[Path, Programme]) -> None:
    married, _ = low_dialogue_master
    spec = load_spec("netflix")
    result = qc_master(probe(married), spec)
    entries = {e["track"]: e for e in result.measurements["loudness"]}
    fallback = spec.audio.tracks[0].loudness.fallback  # type: ignore[union-attr]
    assert fallback is not None and fallback.method == "bs1770-4"
    for track in ("main-51", "stereo-20"):
        e = entries[track]
        assert abs(e["integrated_lufs"] - -24.0) <= 0.3  # plain BS.1770-4 at -24: passes -24 ±2
        assert e["dialogue_lufs"] <= -29.0 - 0.3 and e["dialogue_lufs"] >= -31.0  # ~3 LU under -27
        assert e["loudness_to_dialogue_lu"] == pytest.approx(e["integrated_lufs"] - e["dialogue_lufs"], abs=0.002)
        assert 30.0 <= e["speech_percent"] <= 90.0
        assert "not Dolby Dialogue Intelligence" in e["dialogue_method"]
        first = e["speech_segments"][0]
        assert first["timecode_in"] >= "01:00:00:00" and first["timecode_out"] > first["timecode_in"]
        fails = [f for f in result.findings if f.check == "audio.loudness.integrated" and f.track == track]
        assert len(fails) == 1, fails
        f = fails[0]
        assert f.status == "fail"
        assert "dialogue-gated loudness" in f.message and "speech in" in f.message
        assert "not Dolby Dialogue Intelligence" in f.message
        assert "dialogue sits below the target while the whole programme reads -2" in f.message
        assert f"loudness-to-dialogue ratio +{e['loudness_to_dialogue_lu']:.1f} LU" in f.message
    # the same measurement passes the BS.1770-4 rule
    meas = measure_array(low_dialogue_master[1].mix, FS, layout="5.1", dialogue=True)
    (o,) = [o for o in evaluate_loudness_rule(meas, fallback) if o.check == "audio.loudness.integrated"]
    assert o.status == "pass"
    # the HTML report shows the speech timeline under the loudness plot, one bar per segment
    page = render_html_report(build_report(spec=spec.name, findings=result.findings,
                                           measurements=result.measurements, title="DLG"))
    plot_at, lanes_at = page.index("Short-term loudness over the programme"), page.index("Speech detected")
    assert plot_at < lanes_at
    lanes = page[lanes_at:page.index("</svg>", lanes_at)]
    assert lanes.count("<title>") == sum(len(e["speech_segments"]) for e in entries.values())
    assert "not Dolby Dialogue Intelligence" in page
    summary = loudness_markdown(build_report(spec=spec.name, findings=result.findings,
                                             measurements=result.measurements))
    assert summary is not None and "| dialogue | speech |" in summary
    assert f"{entries['main-51']['dialogue_lufs']:.1f} LKFS" in summary and "not Dolby Dialogue Intelligence" in summary


def test_dialogue_on_target_passes_and_music_only_falls_back() -> None:
    spec = load_spec("netflix")
    track = spec.audio.tracks[0]
    good = make_programme(30, dbr_db=10, layout="5.1", seed=11)
    res = measure_array(good.mix, FS, layout="5.1", dialogue=True)
    assert res.dialogue is not None and res.dialogue.dialogue_lufs is not None
    assert abs(res.dialogue.dialogue_lufs - -27.0) <= 0.5
    assert not [f for f in loudness_findings(spec, track, res, None) if f.check == "audio.loudness.integrated"]

    music = make_programme(30, dbr_db=-3, layout="5.1", seed=5, speech=False, effects=False)  # bed at -24
    res = measure_array(music.mix, FS, layout="5.1", dialogue=True)
    assert res.dialogue is not None and res.dialogue.speech_percent < 5
    found = [f for f in loudness_findings(spec, track, res, None) if f.check == "audio.loudness.integrated"]
    assert len(found) == 1  # the fallback passes (-24 ±2); the primary says why it did not apply
    (f,) = found
    assert f.status == "not_measured"
    assert "below the rule's minimum 15 %" in f.message and "fallback rule (bs1770-4)" in f.message
    assert "-> pass: integrated loudness -24.0 LUFS is within -26.0..-22.0 LUFS" in f.message
    # a rule without fallback says so too
    no_fb = LoudnessSpec(method="dialogue-gated", target_lufs=-27.0, tolerance_lu=2.0)
    (o,) = evaluate_loudness_rule(res, no_fb)
    assert o.status == "not_measured" and "no fallback" in o.message


def test_correct_to_dialogue_gated_target(tmp_path: Path) -> None:
    prog = make_programme(30, dbr_db=10, layout="5.1", seed=11, speech_lufs=-31.0)
    src = tmp_path / "low.wav"
    sf.write(str(src), prog.mix, FS, subtype="PCM_24")
    before = measure_file(src, dialogue=True)
    assert before.dialogue is not None and before.dialogue.dialogue_lufs is not None
    assert abs(before.dialogue.dialogue_lufs - -31.0) <= 1.0
    out = correct_loudness(src, tmp_path / "fixed.wav", target_lufs=-27.0, max_true_peak_dbtp=-2.0,
                           method="dialogue-gated")
    after = measure_file(out.dst_path, dialogue=True)  # measured again, independently of the step
    assert after.dialogue is not None and after.dialogue.dialogue_lufs is not None
    assert abs(after.dialogue.dialogue_lufs - -27.0) <= 0.5
    assert after.true_peak_dbtp is not None and after.true_peak_dbtp <= -2.0
    assert out.after.dialogue is not None and out.after.dialogue.dialogue_lufs == pytest.approx(
        after.dialogue.dialogue_lufs, abs=1e-6)
