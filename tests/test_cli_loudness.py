"""`deliver loudness --json`: the fields the README documents, on real generated media."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from specs.loader import load_spec
from tasks.layback import layback, plan_layback
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, MixSpec, make_master, make_mix

DELIVER = str(Path(sys.executable).parent / "deliver")
KEYS = {"integrated_lufs", "loudness_range_lu", "true_peak_dbtp", "sample_peak_dbfs", "max_momentary_lufs",
        "max_short_term_lufs", "duration_s", "channels",
        # dialogue-gated loudness (issue 16): an open VAD-gated estimate, in every track object
        "dialogue_lufs", "speech_percent", "loudness_to_dialogue_lu", "speech_segments", "dialogue_method"}


def _json(*args: str) -> dict:
    proc = subprocess.run([DELIVER, "loudness", *args, "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_single_wav_is_one_object(tmp_path):
    mix = tmp_path / "mix.wav"
    manifest = make_mix(mix, MixSpec(layout="5.1", head_s=3, programme_s=3, programme_loudness_lufs=-24.0))
    doc = _json(str(mix))
    assert set(doc) == KEYS
    assert [c["label"] for c in doc["channels"]] == ["L", "R", "C", "LFE", "Ls", "Rs"]
    # whole file (head silence is gated out; the 2-pop is one frame): the programme's loudness
    assert doc["integrated_lufs"] == pytest.approx(manifest.file_loudness_lufs, abs=0.1)
    assert doc["duration_s"] == pytest.approx(6.0, abs=1e-3)
    assert doc["true_peak_dbtp"] >= doc["sample_peak_dbfs"]


def test_container_gives_tracks(tmp_path):
    master, m51, m20 = tmp_path / "m.mov", tmp_path / "51.wav", tmp_path / "20.wav"
    timing = dict(head_s=3, programme_s=2)
    make_master(master, MasterSpec(**timing))
    make_mix(m51, MixSpec(layout="5.1", **timing))
    make_mix(m20, MixSpec(layout="2.0", **timing))
    spec = load_spec("demo")
    married = layback(plan_layback(probe(master), [probe(m51), probe(m20)], spec), spec, tmp_path / "lb.mov").path
    doc = _json(married)
    assert list(doc) == ["tracks"] and len(doc["tracks"]) == 2
    assert [len(t["channels"]) for t in doc["tracks"]] == [6, 2]
    assert all(set(t) == KEYS for t in doc["tracks"])


def test_silence_gives_nulls_and_bad_input_exits_2(tmp_path):
    silent = tmp_path / "s.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "2",
                    "-c:a", "pcm_s24le", str(silent)], check=True)
    doc = _json(str(silent))
    assert doc["integrated_lufs"] is None and doc["true_peak_dbtp"] is None
    assert doc["dialogue_lufs"] is None and doc["loudness_to_dialogue_lu"] is None and doc["speech_segments"] == []
    bad = tmp_path / "bad.wav"
    bad.write_text("no audio here")
    proc = subprocess.run([DELIVER, "loudness", str(bad), "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stdout == ""
