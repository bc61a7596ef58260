"""Loudness rules of a spec track checked against a measured track: pass, fail or not measured.

The rule is the spec's :class:`specs.model.LoudnessSpec` (method, target and tolerance, maximum
true peak, loudness range window, maximum short-term and momentary loudness); the measurement is
the meter's :class:`tasks.audio.loudness.LoudnessResult`. One outcome per constraint the rule sets.
Values are compared unrounded. Undefined values (digital silence) are ``not_measured``, and so is
a dialogue-gated target: no open implementation of Dolby Dialogue Intelligence exists, so it is
never reported as a pass.

References: ITU-R BS.1770-4 (integrated loudness, true peak); EBU Tech 3342 (loudness range);
EBU Tech 3341 (momentary and short-term loudness); EBU R 128 s1 (maximum short-term loudness).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from specs.model import LoudnessSpec
from tasks.audio.loudness import LoudnessResult

__all__ = ["RuleOutcome", "evaluate_loudness_rule", "CHECK_INTEGRATED", "CHECK_TRUE_PEAK", "CHECK_LRA",
           "CHECK_MAX_SHORT_TERM", "CHECK_MAX_MOMENTARY"]

RULE_EPSILON = 1e-9  # float noise only; values are compared unrounded

CHECK_INTEGRATED = "audio.loudness.integrated"
CHECK_TRUE_PEAK = "audio.loudness.true_peak"
CHECK_LRA = "audio.loudness.lra"
CHECK_MAX_SHORT_TERM = "audio.loudness.max_short_term"
CHECK_MAX_MOMENTARY = "audio.loudness.max_momentary"


class RuleOutcome(BaseModel):
    """Result of one check of a loudness rule."""

    model_config = ConfigDict(frozen=True)

    check: str
    status: Literal["pass", "fail", "not_measured"]
    expected: str
    actual: str
    message: str


def _fmt(v: float | None, unit: str) -> str:
    return "undefined (silence)" if v is None else f"{v:.1f} {unit}"


def _limit_outcome(check: str, what: str, value: float | None, limit: float, unit: str) -> RuleOutcome:
    expected = f"<= {limit:.1f} {unit}"
    if value is None:
        return RuleOutcome(check=check, status="not_measured", expected=expected, actual=_fmt(value, unit),
                           message=f"{what} is undefined (silent track); cannot check it")
    ok = value <= limit + RULE_EPSILON
    verb = "within" if ok else "exceeds"
    return RuleOutcome(check=check, status="pass" if ok else "fail", expected=expected, actual=_fmt(value, unit),
                       message=f"{what} {value:.1f} {unit} {verb} the limit {limit:.1f} {unit}")


def evaluate_loudness_rule(result: LoudnessResult, rule: LoudnessSpec) -> list[RuleOutcome]:
    """Check a measured track against a rule; one outcome per constraint the rule sets.

    Undefined values (silence) give ``not_measured``; so does a dialogue-gated target.
    """
    out: list[RuleOutcome] = []
    minus_lu, plus_lu = rule.tolerance_lu.minus, rule.tolerance_lu.plus
    if rule.method == "dialogue-gated":
        expected = ("dialogue-gated" + (f" {rule.target_lufs:.1f} LKFS -{minus_lu:.1f}/"
                                        f"+{plus_lu:.1f} LU" if rule.target_lufs is not None else ""))
        out.append(RuleOutcome(
            check=CHECK_INTEGRATED, status="not_measured", expected=expected,
            actual=f"programme (BS.1770-4 gated) {_fmt(result.integrated_lufs, 'LUFS')}",
            message="dialogue-gated loudness needs a Dolby Dialogue Intelligence meter (e.g. Dolby Media Meter); "
                    "no open implementation exists, so it was not measured. Measure it with a licensed meter "
                    "or use a programme-loudness (bs1770-4) rule."))
    elif rule.target_lufs is not None:
        lo = rule.target_lufs - minus_lu
        hi = rule.target_lufs + plus_lu
        expected = f"{rule.target_lufs:.1f} LUFS -{minus_lu:.1f}/+{plus_lu:.1f} LU"
        v = result.integrated_lufs
        if v is None:
            out.append(RuleOutcome(check=CHECK_INTEGRATED, status="not_measured", expected=expected,
                                   actual=_fmt(v, "LUFS"),
                                   message="integrated loudness is undefined (no block above the -70 LUFS gate)"))
        else:
            ok = lo - RULE_EPSILON <= v <= hi + RULE_EPSILON
            out.append(RuleOutcome(check=CHECK_INTEGRATED, status="pass" if ok else "fail", expected=expected,
                                   actual=_fmt(v, "LUFS"),
                                   message=f"integrated loudness {v:.1f} LUFS is {'within' if ok else 'outside'} "
                                           f"{lo:.1f}..{hi:.1f} LUFS (off target by {v - rule.target_lufs:+.1f} LU)"))
    if rule.max_true_peak_dbtp is not None:
        out.append(_limit_outcome(CHECK_TRUE_PEAK, "true peak", result.true_peak_dbtp, rule.max_true_peak_dbtp, "dBTP"))
    lra_min_lu = rule.lra_lu.min if rule.lra_lu else None
    lra_max_lu = rule.lra_lu.max if rule.lra_lu else None
    if lra_min_lu is not None or lra_max_lu is not None:
        lo_s = f">= {lra_min_lu:.1f} LU" if lra_min_lu is not None else ""
        hi_s = f"<= {lra_max_lu:.1f} LU" if lra_max_lu is not None else ""
        expected = " and ".join(s for s in (lo_s, hi_s) if s)
        v = result.loudness_range_lu
        if v is None:
            out.append(RuleOutcome(check=CHECK_LRA, status="not_measured", expected=expected, actual=_fmt(v, "LU"),
                                   message="loudness range is undefined (silence or shorter than 3 s)"))
        else:
            ok = ((lra_min_lu is None or v >= lra_min_lu - RULE_EPSILON)
                  and (lra_max_lu is None or v <= lra_max_lu + RULE_EPSILON))
            out.append(RuleOutcome(check=CHECK_LRA, status="pass" if ok else "fail", expected=expected,
                                   actual=_fmt(v, "LU"),
                                   message=f"loudness range {v:.1f} LU is {'within' if ok else 'outside'} {expected}"))
    if rule.max_short_term_lufs is not None:
        out.append(_limit_outcome(CHECK_MAX_SHORT_TERM, "maximum short-term loudness", result.max_short_term_lufs,
                                  rule.max_short_term_lufs, "LUFS"))
    if rule.max_momentary_lufs is not None:
        out.append(_limit_outcome(CHECK_MAX_MOMENTARY, "maximum momentary loudness", result.max_momentary_lufs,
                                  rule.max_momentary_lufs, "LUFS"))
    return out
