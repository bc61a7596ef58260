"""Loudness rules of a spec track checked against a measured track: pass, fail or not measured.

The rule is the spec's :class:`specs.model.LoudnessSpec` (method, target and tolerance, maximum
true peak, loudness range window, maximum short-term and momentary loudness); the measurement is
the meter's :class:`tasks.audio.loudness.LoudnessResult`. One outcome per constraint the rule sets.
Values are compared unrounded. Undefined values (digital silence) are ``not_measured``.

A ``dialogue-gated`` target is judged on deliver's open VAD-gated estimate of dialogue loudness
(:mod:`tasks.audio.dialogue`), which is not Dolby Dialogue Intelligence: every message says so and
gives the speech share. It is ``not_measured`` when the meter ran without the speech detector, when
no speech frame passes the -70 LUFS gate, or when speech covers less of the programme than the
rule's ``min_speech_percent``; the rule's ``fallback`` then applies
(:func:`tasks.qc.audio.loudness_findings`).

References: ITU-R BS.1770-4 (integrated loudness, true peak); EBU Tech 3342 (loudness range);
EBU Tech 3341 (momentary and short-term loudness); EBU R 128 s1 (maximum short-term loudness);
EBU R 128 s4 / Tech 3343 (dialogue loudness, loudness-to-dialogue ratio).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from specs.model import LoudnessSpec
from tasks.audio.loudness import LoudnessResult

DIALOGUE_LABEL = "open VAD-gated estimate, not Dolby Dialogue Intelligence"

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

    Undefined values (silence) give ``not_measured``; so does a dialogue-gated target that cannot
    be judged (see the module doc).
    """
    out: list[RuleOutcome] = []
    minus_lu, plus_lu = rule.tolerance_lu.minus, rule.tolerance_lu.plus
    if rule.method == "dialogue-gated":
        if rule.target_lufs is not None:
            out.append(_dialogue_outcome(result, rule))
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


def _dialogue_outcome(result: LoudnessResult, rule: LoudnessSpec) -> RuleOutcome:
    """The integrated check of a dialogue-gated rule, on the open VAD-gated estimate."""
    assert rule.target_lufs is not None
    minus_lu, plus_lu = rule.tolerance_lu.minus, rule.tolerance_lu.plus
    lo, hi = rule.target_lufs - minus_lu, rule.target_lufs + plus_lu
    expected = (f"dialogue-gated {rule.target_lufs:.1f} LKFS -{minus_lu:.1f}/+{plus_lu:.1f} LU "
                f"with speech in >= {rule.min_speech_percent:g} % of the programme")
    programme = f"programme (BS.1770-4 gated) {_fmt(result.integrated_lufs, 'LUFS')}"
    d = result.dialogue
    if d is None:
        return RuleOutcome(check=CHECK_INTEGRATED, status="not_measured", expected=expected, actual=programme,
                           message="dialogue-gated loudness was not measured: the meter ran without its speech "
                                   f"detector (deliver's measure is an {DIALOGUE_LABEL})")
    share = f"speech in {d.speech_percent:.1f} % of the programme"
    if d.speech_percent < rule.min_speech_percent - RULE_EPSILON or d.dialogue_lufs is None:
        why = (f"{share}, below the rule's minimum {rule.min_speech_percent:g} %"
               if d.speech_percent < rule.min_speech_percent - RULE_EPSILON
               else f"{share}, all of it below the -70 LUFS absolute gate")
        then = (f"; judged by the fallback rule ({rule.fallback.method})" if rule.fallback is not None
                else "; the rule has no fallback, so loudness is not judged")
        return RuleOutcome(check=CHECK_INTEGRATED, status="not_measured", expected=expected,
                           actual=f"{share}; {programme}",
                           message=f"dialogue-gated loudness does not apply: {why} ({DIALOGUE_LABEL}){then}")
    v = d.dialogue_lufs
    ok = lo - RULE_EPSILON <= v <= hi + RULE_EPSILON
    ldr = (f", loudness-to-dialogue ratio {d.loudness_to_dialogue_lu:+.1f} LU"
           if d.loudness_to_dialogue_lu is not None else "")
    why = ""
    if not ok and result.integrated_lufs is not None:
        side = "below" if v < lo else "above"
        why = (f"; the dialogue sits {side} the target while the whole programme reads "
               f"{result.integrated_lufs:.1f} LUFS{ldr}")
    return RuleOutcome(
        check=CHECK_INTEGRATED, status="pass" if ok else "fail", expected=expected,
        actual=f"{v:.1f} LKFS dialogue-gated, {share}; {programme}",
        message=(f"dialogue-gated loudness {v:.1f} LKFS ({DIALOGUE_LABEL}; {share}) is "
                 f"{'within' if ok else 'outside'} {lo:.1f}..{hi:.1f} LKFS (off target by "
                 f"{v - rule.target_lufs:+.1f} LU){why}"))
