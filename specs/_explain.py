"""The operator's sign-off checklist for a spec (``deliver spec explain NAME``)."""

from __future__ import annotations

from fractions import Fraction

from specs.model import KNOWN_CHECKS, LoudnessSpec, Range, Spec, Tolerance, VideoEncode

__all__ = ["render_checklist"]


def _rate(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator} ({float(rate):.3f})"


def _tol(tol: Tolerance) -> str:
    return f"±{tol.plus:g}" if tol.minus == tol.plus else f"-{tol.minus:g}/+{tol.plus:g}"


def _range(window: Range | None, unit: str) -> str:
    if window is None:
        return "any"
    if window.min is not None and window.max is not None:
        return f"{window.min:g}–{window.max:g} {unit}"
    return f">= {window.min:g} {unit}" if window.min is not None else f"<= {window.max:g} {unit}"


def _loudness(rule: LoudnessSpec) -> str:
    parts = [f"{rule.method}"]
    if rule.target_lufs is not None:
        parts.append(f"{rule.target_lufs:g} LUFS {_tol(rule.tolerance_lu)} LU")
    if rule.max_true_peak_dbtp is not None:
        parts.append(f"true peak <= {rule.max_true_peak_dbtp:g} dBTP")
    if rule.lra_lu is not None:
        parts.append(f"LRA {_range(rule.lra_lu, 'LU')}")
    if rule.max_short_term_lufs is not None:
        parts.append(f"short-term <= {rule.max_short_term_lufs:g} LUFS")
    if rule.max_momentary_lufs is not None:
        parts.append(f"momentary <= {rule.max_momentary_lufs:g} LUFS")
    text = ", ".join(parts)
    if rule.method == "dialogue-gated":
        text += " (not measurable by deliver: measure with a Dolby dialogue-gated meter)"
    if rule.fallback is not None:
        text += f"; fallback: {_loudness(rule.fallback)}"
    return text


def _video(enc: VideoEncode) -> str:
    """``libx264 AVC-Intra 100 yuv422p10le``, ``prores_ks hq 1920x1080``: what the operator signs for."""
    parts = [enc.codec, f"AVC-Intra {enc.avc_intra_class}" if enc.avc_intra_class else enc.profile or "",
             enc.pix_fmt or "", f"{enc.width}x{enc.height}" if enc.width and enc.height else "",
             f"{enc.bitrate_kbps:g} kbit/s" if enc.bitrate_kbps else f"CRF {enc.crf}" if enc.crf is not None else "",
             {"sdr": "tone-mapped to SDR", "off": "HDR kept"}.get(enc.tone_map, "")]
    return " ".join(p for p in parts if p)


def render_checklist(spec: Spec) -> str:
    """Markdown checklist: every requirement of the spec as a box an operator ticks and signs."""
    sev = spec.severity_name
    lines = [f"# Delivery checklist — {spec.name}", "", spec.description, ""]
    prov = spec.provenance
    lines.append(f"Source: {prov.document}" + (f", version {prov.version}" if prov.version else "")
                 + (f", {prov.url}" if prov.url else "") + (f", retrieved {prov.retrieved}" if prov.retrieved else "")
                 + f" (confidence {prov.confidence})")
    for extra in spec.sources:
        lines.append(f"Also: {extra.document}" + (f" {extra.version}" if extra.version else "")
                     + f" (confidence {extra.confidence})")
    if spec.severity_names:
        lines.append("Severities: " + ", ".join(f"{k} = {v}" for k, v in spec.severity_names.items()))
    lines.append("")

    p = spec.picture
    lines += ["## Picture", ""]
    box = "- [ ] "
    if p.containers:
        lines.append(box + f"Container: {' or '.join(p.containers)}")
    if p.codec:
        lines.append(box + f"Codec: {p.codec}" + (f", profile {' or '.join(p.profiles)}" if p.profiles else ""))
    if p.width and p.height:
        lines.append(box + f"Frame size: {p.width}x{p.height}"
                     + (f", display aspect {' or '.join(p.display_aspect_ratios)}" if p.display_aspect_ratios else ""))
    if p.frame_rates:
        lines.append(box + "Frame rate: " + " or ".join(_rate(r) for r in p.frame_rates) + " fps"
                     + (f", {p.scan}" if p.scan else "") + (f" ({p.field_order})" if p.field_order else ""))
    if p.pix_fmts or p.bit_depth or p.chroma_subsampling:
        lines.append(box + "Pixels: " + ", ".join(x for x in (
            " or ".join(p.pix_fmts or []), f"{p.bit_depth}-bit" if p.bit_depth else "", p.chroma_subsampling or "")
            if x))
    if p.colour:
        c = p.colour
        lines.append(box + f"Colour tags: primaries {c.primaries or 'any'}, transfer {c.transfer or 'any'}, "
                     f"matrix {c.matrix or 'any'}, range {c.range or 'any'}")
    if p.hdr:
        lines.append(box + f"HDR: {p.hdr}")
    if p.bitrate_mbps:
        lines.append(box + f"Video bit rate: {_range(p.bitrate_mbps, 'Mbit/s')}")
    lines.append("")

    a = spec.audio
    lines += ["## Audio", "", box + f"Format: {a.codec or 'any codec'}, {a.sample_rate_hz} Hz, {a.bit_depth}-bit, "
              f"{len(a.tracks)} track(s) in this order"]
    for index, track in enumerate(a.tracks, 1):
        lines.append(box + f"Track {index} `{track.id}` — {track.label}: {track.layout} ({' '.join(track.channels)})")
        if track.loudness:
            lines.append("  - [ ] Loudness: " + _loudness(track.loudness))
    lines.append("")

    t = spec.timing
    lines += ["## Timing", ""]
    if t.ffoa_timecode:
        lines.append(box + f"First frame of action at {t.ffoa_timecode} "
                     f"({'drop-frame' if t.drop_frame else 'non-drop-frame'})")
    if t.head_black_s:
        lines.append(box + f"Head black: {_range(t.head_black_s, 's')}")
    if t.tail_black_s:
        lines.append(box + f"Tail black: {_range(t.tail_black_s, 's')}")
    if t.max_programme_black_s is not None:
        lines.append(box + f"No black inside the programme longer than {t.max_programme_black_s:g} s")
    if t.max_programme_silence_s is not None:
        lines.append(box + f"No silence inside the programme longer than {t.max_programme_silence_s:g} s")
    lines.append(box + f"Audio and video durations agree {t.av_tolerance_text()}")
    lines.append("")

    lines += ["## Automated checks", "", "| check | severity | settings | what |", "|---|---|---|---|"]
    for check_id, info in KNOWN_CHECKS.items():
        setting = spec.check(check_id)
        if setting.severity == "off":
            continue
        params = ", ".join(f"{k}={getattr(setting, k):g}" for k in ("min_duration_s", "threshold", "max_share_percent")
                           if getattr(setting, k) is not None)
        lines.append(f"| {check_id} | {sev(setting.severity)} | {params} | {info.description}"
                     + (f" [{setting.clause}]" if setting.clause else "") + " |")
    lines.append("")

    if spec.when:
        lines += ["## Conditional rules", ""]
        for rule in spec.when:
            facts = ", ".join(f"{k}={getattr(rule.if_, k)}" for k in sorted(rule.if_.model_fields_set))
            changes = ", ".join(f"{k}: {sev(v.severity)}" for k, v in (rule.then.checks or {}).items())
            lines.append(box + f"`{rule.id}` — if {facts}: {rule.description or ''} {changes}".rstrip())
        lines.append("")

    if spec.manual_checks:
        lines += ["## Manual checks (not checked by deliver — the operator confirms)", ""]
        for item in spec.manual_checks:
            lines.append(box + f"`{item.id}`: {item.description}" + (f" [{item.clause}]" if item.clause else ""))
        lines.append("")

    lines += ["## Deliverables", ""]
    for d in spec.deliverables:
        video = _video(d.video) if d.video else "no video"
        audio = ", ".join(f"{m.from_track}->{m.codec}{' (2.0 downmix)' if m.downmix else ''}"
                          f"{' as mono tracks' if m.mono_tracks else ''}"
                          f"{f' at {m.loudness_target_lufs:g} LUFS' if m.loudness_target_lufs is not None else ''}"
                          for m in d.audio)
        extras = [x for x in ("timecode burn-in" if d.burn_in and d.burn_in.timecode else "",
                              f"watermark '{d.watermark.text}'" if d.watermark else "",
                              "with head (bars/countdown)" if d.include_head else "") if x]
        lines.append(box + f"`{d.id}` ({d.kind}, {d.container}): {video}; audio {audio or 'none'}"
                     + (f"; {', '.join(extras)}" if extras else "") + f" — named `{d.name}`")
    lines += ["", "Checked by: ____________________  Date: ____________  Signature: ____________________", ""]
    return "\n".join(lines)
