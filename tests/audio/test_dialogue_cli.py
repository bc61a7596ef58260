"""`deliver loudness --json` reports dialogue-gated loudness on every track (issue 16 contract)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from specs.timecode import Timecode, parse_frame_rate
from tests.audio.speech import FS, espeak_available, make_programme, truth_dialogue_lufs

DELIVER = str(Path(sys.executable).parent / "deliver")


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed (make speech)")
def test_cli_reports_dialogue_fields_with_timecodes(tmp_path: Path) -> None:
    prog = make_programme(20, dbr_db=10, layout="2.0", seed=12)
    wav = tmp_path / "mix.wav"
    sf.write(str(wav), prog.mix, FS, subtype="PCM_24")
    for rate in (None, "25"):
        args = [DELIVER, "loudness", str(wav), "--json", *(["--frame-rate", rate] if rate else [])]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert abs(doc["dialogue_lufs"] - truth_dialogue_lufs(prog)) <= 0.5
        assert abs(doc["speech_percent"] - prog.speech_percent) <= 5.0
        assert doc["loudness_to_dialogue_lu"] == pytest.approx(doc["integrated_lufs"] - doc["dialogue_lufs"], abs=0.002)
        assert "not Dolby Dialogue Intelligence" in doc["dialogue_method"]
        fps = parse_frame_rate(rate or 24)
        seg = doc["speech_segments"][0]
        assert abs(seg["start_s"] - prog.intervals_s[0][0]) <= 0.5
        assert seg["timecode_in"] == str(Timecode.from_seconds(int(seg["start_s"] * fps) / fps, fps))
        assert seg["timecode_out"] > seg["timecode_in"]
    table = subprocess.run([DELIVER, "loudness", str(wav)], capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "not Dolby Dialogue Intelligence" in table.stdout
