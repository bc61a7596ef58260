"""EBU Tech 3342 LRA minimum requirements #1-#4 on synthesized signals (±1 LU)."""

from __future__ import annotations

import pytest

from tasks.audio.loudness import measure_array
from tests.audio.signals import FS, tone_segments

LRA_TOL_LU = 1.0  # Tech 3342 Table 1


@pytest.mark.parametrize(("levels", "expected_lu"), [
    ([-20.0, -30.0], 10.0),
    ([-20.0, -15.0], 5.0),
    ([-40.0, -20.0], 20.0),
    ([-50.0, -35.0, -20.0, -35.0, -50.0], 15.0),
], ids=["3342-1", "3342-2", "3342-3", "3342-4"])
def test_3342_lra(levels: list[float], expected_lu: float) -> None:
    x = tone_segments([(20.0, lv) for lv in levels])
    r = measure_array(x, FS)
    assert r.loudness_range_lu == pytest.approx(expected_lu, abs=LRA_TOL_LU)


def test_3342_repeating_signal_does_not_change_lra() -> None:
    once = measure_array(tone_segments([(20.0, -20.0), (20.0, -30.0)]), FS).loudness_range_lu
    twice = measure_array(tone_segments([(20.0, -20.0), (20.0, -30.0)] * 2), FS).loudness_range_lu
    assert twice == pytest.approx(once, abs=0.1)
