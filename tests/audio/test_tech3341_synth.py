"""EBU Tech 3341 minimum requirements on synthesized signals (EBU Tech 3341 V4, Table 1).

Every case that can be synthesized: #1-#6, #9-#23 (#7/#8 need the EBU programme files).
Tolerances are the EBU ones: loudness ±0.1 LU, true peak +0.2/-0.4 dB.
"""

from __future__ import annotations

import numpy as np
import pytest

from specs.layouts import channel_weights, layout_labels
from tasks.audio.loudness import LoudnessMeter, measure_array
from tests.audio.signals import FS, burst_signal, sine, tone_segments

LOUDNESS_TOL_LU = 0.1  # Tech 3341 Table 1
TP_TOL_PLUS_DB = 0.2  # Tech 3341 §2.6 / Table 1 #15-#23
TP_TOL_MINUS_DB = 0.4


def _meter(x: np.ndarray, block: int = 7919) -> LoudnessMeter:
    """A stereo meter fed with an odd block size (exercises carried state across blocks)."""
    labels = layout_labels("stereo") if x.shape[1] == 2 else layout_labels("5.0")
    m = LoudnessMeter(FS, channel_weights(labels), labels=labels)
    for i in range(0, len(x), block):
        m.process(x[i:i + block])
    return m


@pytest.mark.parametrize("level", [-23.0, -33.0])
def test_3341_1_2_constant_tone(level: float) -> None:
    r = measure_array(tone_segments([(20.0, level)]), FS)
    for value in (r.integrated_lufs, r.max_momentary_lufs, r.max_short_term_lufs):
        assert value == pytest.approx(level, abs=LOUDNESS_TOL_LU)


@pytest.mark.parametrize("segments", [
    [(10.0, -36.0), (60.0, -23.0), (10.0, -36.0)],  # 3
    [(10.0, -72.0), (10.0, -36.0), (60.0, -23.0), (10.0, -36.0), (10.0, -72.0)],  # 4
    [(20.0, -26.0), (20.1, -20.0), (20.0, -26.0)],  # 5
], ids=["3341-3", "3341-4", "3341-5"])
def test_3341_3_4_5_gating(segments: list[tuple[float, float]]) -> None:
    r = measure_array(tone_segments(segments), FS)
    assert r.integrated_lufs == pytest.approx(-23.0, abs=LOUDNESS_TOL_LU)


def test_3341_6_five_channels() -> None:
    base = tone_segments([(20.0, 0.0)], channels=1)[:, 0]
    gains_db = [-28.0, -28.0, -24.0, -30.0, -30.0]  # L R C Ls Rs
    x = np.stack([base * 10 ** (g / 20) for g in gains_db], axis=1)
    r = measure_array(x, FS, layout="5.0")
    assert r.integrated_lufs == pytest.approx(-23.0, abs=LOUDNESS_TOL_LU)


def test_3341_9_short_term_constant_after_3s() -> None:
    x = tone_segments([(1.34, -20.0), (1.66, -30.0)] * 5)
    ends, st = _meter(x).window_loudness_lufs(3.0)
    assert len(st) > 0
    np.testing.assert_allclose(st[ends >= 3.0], -23.0, atol=LOUDNESS_TOL_LU)


@pytest.mark.parametrize("i", range(20))
def test_3341_10_max_short_term_file_based(i: int) -> None:
    x = tone_segments([(i * 0.15, None), (3.0, -23.0), (1.0, None)])
    assert measure_array(x, FS).max_short_term_lufs == pytest.approx(-23.0, abs=LOUDNESS_TOL_LU)


def test_3341_11_max_short_term_live() -> None:
    segments: list[tuple[float, float | None]] = []
    for i in range(20):
        segments += [(i * 0.15, None), (3.0, -38.0 + i), (3.0 - i * 0.15, None)]
    ends, st = _meter(tone_segments(segments)).window_loudness_lufs(3.0)
    for i in range(20):  # each 6 s segment must peak at its level
        sel = (ends > 6.0 * i) & (ends <= 6.0 * (i + 1))
        assert st[sel].max() == pytest.approx(-38.0 + i, abs=LOUDNESS_TOL_LU), f"segment {i}"


def test_3341_12_momentary_constant_after_1s() -> None:
    x = tone_segments([(0.18, -20.0), (0.22, -30.0)] * 25)
    ends, mom = _meter(x).window_loudness_lufs(0.4)
    np.testing.assert_allclose(mom[ends >= 1.0], -23.0, atol=LOUDNESS_TOL_LU)


@pytest.mark.parametrize("i", range(20))
def test_3341_13_max_momentary_file_based(i: int) -> None:
    x = tone_segments([(i * 0.02, None), (0.4, -23.0), (1.0, None)])
    assert measure_array(x, FS).max_momentary_lufs == pytest.approx(-23.0, abs=LOUDNESS_TOL_LU)


def test_3341_14_max_momentary_live() -> None:
    segments: list[tuple[float, float | None]] = []
    for i in range(20):
        segments += [(i * 0.02, None), (0.4, -38.0 + i), (0.4 - i * 0.02, None)]
    ends, mom = _meter(tone_segments(segments)).window_loudness_lufs(0.4)
    for i in range(20):
        sel = (ends > 0.8 * i + 1e-9) & (ends <= 0.8 * (i + 1) + 1e-9)
        assert mom[sel].max() == pytest.approx(-38.0 + i, abs=LOUDNESS_TOL_LU), f"segment {i}"


@pytest.mark.parametrize(("case", "freq_hz", "amplitude", "phase_deg", "expected_dbtp"), [
    (15, FS / 4, 0.50, 0.0, -6.0),
    (16, FS / 4, 0.50, 45.0, -6.0),
    (17, FS / 6, 0.50, 60.0, -6.0),
    (18, FS / 8, 0.50, 67.5, -6.0),
    (19, FS / 4, 1.41, 45.0, 3.0),
])
def test_3341_15_19_true_peak_sines(case: int, freq_hz: float, amplitude: float, phase_deg: float,
                                    expected_dbtp: float) -> None:
    r = measure_array(sine(FS, 1.0, freq_hz, amplitude, phase_deg), FS)
    assert expected_dbtp - TP_TOL_MINUS_DB <= r.true_peak_dbtp <= expected_dbtp + TP_TOL_PLUS_DB, r.true_peak_dbtp
    assert r.true_peak_dbtp >= r.sample_peak_dbfs


@pytest.mark.parametrize("offset", range(4))
def test_3341_20_23_true_peak_burst(offset: int) -> None:
    r = measure_array(burst_signal(offset), FS)
    assert -TP_TOL_MINUS_DB <= r.true_peak_dbtp <= TP_TOL_PLUS_DB, r.true_peak_dbtp


def test_calibration_minus_18() -> None:
    """Tech 3341 §2.9: stereo 1 kHz sine at -18 dBFS reads -18.0 LUFS."""
    r = measure_array(tone_segments([(5.0, -18.0)]), FS)
    assert r.integrated_lufs == pytest.approx(-18.0, abs=0.05)
