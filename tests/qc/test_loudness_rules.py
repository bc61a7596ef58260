"""Loudness rule evaluation: pass/fail/not_measured, asymmetric tolerance, dialogue gating."""

from __future__ import annotations

import pytest

from specs.model import LoudnessSpec
from tasks.audio.loudness import LoudnessResult, measure_array
from tasks.qc.loudness import evaluate_loudness_rule
from tests.audio.signals import FS, tone_segments


@pytest.fixture(scope="module")
def result() -> LoudnessResult:
    return measure_array(tone_segments([(10.0, -24.0), (10.0, -20.0)]), FS)


def _status(outcomes: list, check: str) -> str:
    return next(o.status for o in outcomes if o.check == check)


def test_integrated_asymmetric_tolerance(result: LoudnessResult) -> None:
    i = result.integrated_lufs
    assert i is not None
    inside = LoudnessSpec(method="bs1770-4", target_lufs=i - 0.4, tolerance_lu={"minus": 1.0, "plus": 0.5})
    outside = LoudnessSpec(method="bs1770-4", target_lufs=i - 0.6, tolerance_lu={"minus": 1.0, "plus": 0.5})
    assert _status(evaluate_loudness_rule(result, inside), "audio.loudness.integrated") == "pass"
    assert _status(evaluate_loudness_rule(result, outside), "audio.loudness.integrated") == "fail"


def test_true_peak_lra_short_term(result: LoudnessResult) -> None:
    rule = LoudnessSpec(method="bs1770-4", max_true_peak_dbtp=-21.0, lra_lu={"min": 1.0, "max": 18.0},
                        max_short_term_lufs=-18.0, max_momentary_lufs=-30.0)
    out = {o.check: o for o in evaluate_loudness_rule(result, rule)}
    assert out["audio.loudness.true_peak"].status == "fail"  # -20 dBTP > -21
    assert out["audio.loudness.lra"].status == "pass"  # ~4 LU
    assert out["audio.loudness.max_short_term"].status == "pass"  # -20 < -18
    assert out["audio.loudness.max_momentary"].status == "fail"
    assert "audio.loudness.integrated" not in out  # no target: no check


def test_dialogue_gated_is_never_pass(result: LoudnessResult) -> None:
    rule = LoudnessSpec(method="dialogue-gated", target_lufs=-27.0, tolerance_lu=2.0)
    (o,) = evaluate_loudness_rule(result, rule)
    assert o.status == "not_measured"
    assert "Dialogue Intelligence" in o.message


def test_silence_is_not_measured() -> None:
    import numpy as np

    silent = measure_array(np.zeros((FS * 4, 2), dtype=np.float32), FS)
    rule = LoudnessSpec(method="bs1770-4", target_lufs=-23.0, max_true_peak_dbtp=-1.0, lra_lu={"max": 20.0},
                        max_short_term_lufs=-18.0)
    assert {o.status for o in evaluate_loudness_rule(silent, rule)} == {"not_measured"}
