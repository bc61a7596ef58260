"""Every official EBU Loudness Test Set v05 file available (EBU Tech 3341 / 3342 test cases).

Read from the folder named by ``DELIVER_EBU_TEST_SET`` (skipped with the reason when unset).
Note: #15-#23 carry a doubled ``.wav.wav`` extension as delivered by the EBU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specs.layouts import channel_weights, layout_labels
from tasks.audio.loudness import LoudnessMeter, measure_file
from tasks.audio.reader import iter_soundfile_blocks

pytestmark = pytest.mark.ebu

LOUDNESS_TOL_LU = 0.1
TP_TOL_PLUS_DB = 0.2
TP_TOL_MINUS_DB = 0.4


def _file(ebu_dir: Path, name: str) -> Path:
    path = ebu_dir / name
    if not path.exists():
        pytest.fail(f"official EBU file missing from {ebu_dir}: {name}")
    return path


@pytest.mark.parametrize(("name", "level"), [("seq-3341-1-16bit.wav", -23.0), ("seq-3341-2-16bit.wav", -33.0)])
def test_official_1_2(ebu_dir: Path, name: str, level: float) -> None:
    r = measure_file(_file(ebu_dir, name))
    for value in (r.integrated_lufs, r.max_momentary_lufs, r.max_short_term_lufs):
        assert value == pytest.approx(level, abs=LOUDNESS_TOL_LU)


@pytest.mark.parametrize("i", range(1, 21))
def test_official_10_max_short_term(ebu_dir: Path, i: int) -> None:
    r = measure_file(_file(ebu_dir, f"seq-3341-10-{i}-24bit.wav"))
    assert r.max_short_term_lufs == pytest.approx(-23.0, abs=LOUDNESS_TOL_LU)


def test_official_12_momentary_constant(ebu_dir: Path) -> None:
    path = _file(ebu_dir, "seq-3341-12-24bit.wav")
    meter = LoudnessMeter(48000, channel_weights(layout_labels("stereo")), labels=layout_labels("stereo"))
    for block in iter_soundfile_blocks(path):
        meter.process(block)
    ends, mom = meter.window_loudness_lufs(0.4)
    np.testing.assert_allclose(mom[ends >= 1.0], -23.0, atol=LOUDNESS_TOL_LU)
    assert meter.result().max_momentary_lufs == pytest.approx(-23.0, abs=LOUDNESS_TOL_LU)


@pytest.mark.parametrize("i", range(1, 21))
def test_official_13_max_momentary(ebu_dir: Path, i: int) -> None:
    r = measure_file(_file(ebu_dir, f"seq-3341-13-{i}-24bit.wav"))
    assert r.max_momentary_lufs == pytest.approx(-23.0, abs=LOUDNESS_TOL_LU)


@pytest.mark.parametrize(("case", "expected_dbtp"), [
    (15, -6.0), (16, -6.0), (17, -6.0), (18, -6.0), (19, 3.0), (20, 0.0), (21, 0.0), (22, 0.0), (23, 0.0)])
def test_official_true_peak(ebu_dir: Path, case: int, expected_dbtp: float) -> None:
    r = measure_file(_file(ebu_dir, f"seq-3341-{case}-24bit.wav.wav"))
    assert expected_dbtp - TP_TOL_MINUS_DB <= r.true_peak_dbtp <= expected_dbtp + TP_TOL_PLUS_DB, r.true_peak_dbtp
    for ch in r.channels:
        assert ch.true_peak_dbtp is not None and ch.true_peak_dbtp >= ch.sample_peak_dbfs
