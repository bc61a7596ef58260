"""Layback: marry the final mix to the picture master by timecode.

The picture is stream-copied (never re-encoded) and checked afterwards: the video packets of the
layback master hash the same as the master's. The mix arrives as the sound team delivers it:

* one interleaved WAV/BWF per layout (channel labels from the WAVE channel mask, else the
  ITU/SMPTE order for the channel count), or
* one mono BWF per channel named ``<prefix>_<label>.wav`` (``PM_L.wav``, ``PM_LFE.wav``,
  ``PM_Ls.wav`` ...), grouped by prefix, or
* either with an explicit channel map on the command line: ``L,R,C,LFE,Ls,Rs=mix.wav`` for an
  interleaved file, ``C=dialogue.wav`` for a mono file.

Each spec track (in spec order) takes the first unused source whose channel labels are the
track's labels, and its channels are laid out in the spec's channel order (a ``[L]`` mono track
takes one channel of a source). Placement comes from timecode: the picture's start timecode
against the BWF time reference (EBU Tech 3285), sample-exact. Every mix is laid back exactly where
its time reference puts it, padded with silence or trimmed to the picture's range; what that leaves
uncovered or cuts off is measured (:class:`TrackAssignment` ``head_gap_samples`` ... ) and reported
by QC as findings (``audio.layback_coverage``, ``audio.layback_trim``), so the gate and ``--force``
decide. Only a mix that cannot be placed at all is refused (bad input): one with no overlap with the
programme (FFOA to the last frame; the whole picture when the FFOA is not in it), or whose start lies
further from the programme start than the spec's ``timing.max_layback_offset_s``. When the spec has
an FFOA the 2-pop (2 s before FFOA) is looked for in the placed mix and reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import ffmpeg
import numpy as np
import soundfile as sf
from pydantic import BaseModel

from specs.errors import BadInputError, MediaError, VerificationError
from specs.layouts import CHANNEL_LABELS, SPEC_LAYOUT_NAMES, Layout, default_layout, labels_for_positions, spec_layout
from specs.model import AudioTrackSpec, Spec
from specs.timecode import Timecode
from tasks.audio.reader import mask_positions, wav_channel_mask
from tasks.media.ffmpeg import FFmpegProgress, compile_args, run_ffmpeg
from tasks.media.files import Provenance, atomic_output, reusable
from tasks.media.probe import MediaInfo

__all__ = ["MixInput", "MixSource", "TrackAssignment", "LaybackPlan", "LaybackResult", "parse_mix_arg",
           "mix_sources", "plan_layback", "layback", "layback_identity", "video_packet_hash"]

_CANONICAL = {label.lower(): label for label in CHANNEL_LABELS}
_MONO_SUFFIX = re.compile(r"^(?P<prefix>.+?)[ _.-](?P<label>[A-Za-z]+)\.(?:wav|bwf|w64|rf64)$", re.IGNORECASE)
TWO_POP_BEFORE_FFOA_S = 2
_TWO_POP_THRESHOLD_DBFS = -40.0


class MixInput(BaseModel):
    """One ``--mix`` argument: a file and, optionally, its channel labels in file order."""

    path: str
    labels: tuple[str, ...] | None = None


class MixSource(BaseModel):
    """A logical mix: one interleaved file or a group of mono files, with a label per channel."""

    name: str
    paths: list[str]
    labels: list[str]
    refs: list[tuple[int, int]]  # per label: (index into paths, channel in that file)
    sample_rate_hz: int
    time_reference_samples: int | None
    duration_samples: int
    codec: str = ""  # ffprobe's, e.g. pcm_s16le, pcm_f32le
    bit_depth: int | None = None


class TrackAssignment(BaseModel):
    track_id: str
    label: str
    layout: str
    mix_path: str  # first file of the source (for messages)
    mix_paths: list[str]
    channel_refs: list[tuple[int, int]]  # per spec channel, in spec order: (index into mix_paths, channel)
    channels: int
    offset_samples: int  # >0: mix starts after the picture (pad the head); <0: starts before (trim)
    sample_rate_hz: int
    duration_s: float  # of the mix on the picture's clock after alignment (before padding)
    two_pop_offset_samples: int | None = None  # found 2-pop minus expected, on the aligned mix
    mix_duration_samples: int = 0  # the whole mix as delivered
    mix_codec: str = ""  # the mix's sample format as ffprobe names it (pcm_s16le, pcm_f32le ...)
    mix_bit_depth: int | None = None
    # Coverage of the placed mix, in samples of the mix's clock: the programme without mix sound at the head
    # (mix starts after the FFOA) and at the tail (ends before the last frame), and what lies outside the
    # picture and is trimmed (before its first frame, after its last).
    head_gap_samples: int = 0
    tail_gap_samples: int = 0
    head_trim_samples: int = 0
    tail_trim_samples: int = 0


class LaybackPlan(BaseModel):
    picture_path: str
    start_timecode: str
    rate: Fraction
    picture_duration_s: float
    picture_frames: int
    tracks: list[TrackAssignment]
    notes: list[str] = []
    programme_start_frame: int = 0  # the FFOA's index in the picture (0 without one, or when it is outside)


class LaybackResult(BaseModel):
    path: str
    plan: LaybackPlan
    wall_s: float
    video_md5: str
    reused: bool = False  # an earlier run made it: its record and xxh128 still match


def layback_summary(result: LaybackResult) -> dict[str, Any]:
    """What report.json says of the layback: per track the mix files, the offset found against the picture's
    start timecode and what was done about it, and the 2-pop check; the picture's packet checksum."""
    plan = result.plan
    tracks = []
    for t in plan.tracks:
        frame_samples = Fraction(t.sample_rate_hz) / plan.rate
        pop = t.two_pop_offset_samples
        tracks.append({
            "track": t.track_id, "mixes": t.mix_paths, "channels": t.channels,
            "offset_samples": t.offset_samples, "offset_frames": round(float(t.offset_samples / frame_samples), 3),
            "alignment": "padded at the head" if t.offset_samples > 0 else
                         "trimmed at the head" if t.offset_samples < 0 else "aligned as delivered",
            "two_pop_offset_frames": None if pop is None else round(float(pop / frame_samples), 3),
            **{f"{k}_frames": round(float(getattr(t, f"{k}_samples") / frame_samples), 3)
               for k in ("head_gap", "tail_gap", "head_trim", "tail_trim")},
        })
    return {"path": result.path, "start_timecode": plan.start_timecode, "picture_packets_md5": result.video_md5,
            "tracks": tracks, "notes": plan.notes}


def parse_mix_arg(text: str) -> MixInput:
    """``path``, ``LABEL=path`` (mono) or ``L,R,C,LFE,Ls,Rs=path`` (interleaved, file order).

    The left side is a channel map only when every word is a channel label, so a path with ``=``
    in it still works.
    """
    left, sep, right = text.partition("=")
    if sep and left:
        words = [w.strip() for w in left.split(",")]
        if all(w.lower() in _CANONICAL for w in words):
            labels = tuple(_CANONICAL[w.lower()] for w in words)
            if len(set(labels)) != len(labels):
                raise BadInputError(f"--mix {text!r} lists a channel twice; list every channel once")
            return MixInput(path=right, labels=labels)
    return MixInput(path=text)


def _labels_from_mask(path: str, channels: int) -> tuple[str, ...] | None:
    mask = wav_channel_mask(path)
    if not mask:
        return None
    pos = mask_positions(mask)
    if len(pos) != channels:
        return None
    out = labels_for_positions(pos)
    return out if all(o in CHANNEL_LABELS for o in out) else None


def _time_reference(info: MediaInfo) -> int | None:
    return info.bwf_time_reference_samples


def mix_sources(mixes: list[tuple[MixInput, MediaInfo]]) -> list[MixSource]:
    """Group ``--mix`` inputs into logical sources (mono files by name prefix), in input order.

    Raises:
        MediaError: a mix without audio or with several streams, mono files of one group that differ
            in rate, length or time reference, or an explicit map whose channel count is wrong.
    """
    sources: list[MixSource] = []
    groups: dict[str, MixSource] = {}
    for mix, info in mixes:
        if not info.audio:
            raise MediaError(f"mix {mix.path} has no audio stream")
        if len(info.audio) > 1:
            raise MediaError(f"mix {mix.path} has {len(info.audio)} audio streams; give one interleaved file "
                             "per layout or one mono file per channel")
        a = info.audio[0]
        samples = round((a.duration_s or info.duration_s or 0.0) * a.sample_rate_hz)
        labels = mix.labels
        group_key = None
        if labels is not None and len(labels) != a.channels:
            raise MediaError(f"--mix {','.join(labels)}={mix.path}: the map lists {len(labels)} channels but the "
                             f"file has {a.channels}")
        if a.channels == 1:
            if labels is None:
                m = _MONO_SUFFIX.match(Path(mix.path).name)
                if m and m.group("label").lower() in _CANONICAL:
                    labels = (_CANONICAL[m.group("label").lower()],)
                    group_key = str(Path(mix.path).parent / m.group("prefix"))
            else:
                group_key = "explicit channel map"
        if labels is None:
            # No mask: the layout a channel count means (ITU-R BS.775 / SMPTE ST 428-3 order).
            default = default_layout(a.channels)
            labels = _labels_from_mask(mix.path, a.channels) or (default.labels if default else None)
        if labels is None:
            labels = tuple(f"ch{i + 1}" for i in range(a.channels))  # matched by count, in order
        tref = _time_reference(info)
        if group_key is not None and group_key in groups:
            src = groups[group_key]
            if labels[0] in src.labels:
                raise MediaError(f"mono mix files {src.paths[src.labels.index(labels[0])]} and {mix.path} are both "
                                 f"channel {labels[0]}; give each channel once")
            for what, mine, theirs in (("sample rate", a.sample_rate_hz, src.sample_rate_hz),
                                       ("BWF time reference", tref, src.time_reference_samples)):
                if mine != theirs:
                    raise MediaError(f"mono mix file {mix.path} has {what} {mine} but {src.paths[0]} has {theirs}; "
                                     "the channels of one mix must share rate and time reference")
            if abs(samples - src.duration_samples) > 1:
                raise MediaError(f"mono mix file {mix.path} is {samples} samples long but {src.paths[0]} is "
                                 f"{src.duration_samples}; the channels of one mix must have the same length")
            src.paths.append(mix.path)
            src.labels.append(labels[0])
            src.refs.append((len(src.paths) - 1, 0))
            continue
        src = MixSource(name=Path(group_key).name if group_key else Path(mix.path).name, paths=[mix.path],
                        labels=list(labels), refs=[(0, c) for c in range(a.channels)],
                        sample_rate_hz=a.sample_rate_hz, time_reference_samples=tref, duration_samples=samples,
                        codec=a.codec, bit_depth=a.bit_depth)
        sources.append(src)
        if group_key is not None:
            groups[group_key] = src
    return sources


def _layout(track: AudioTrackSpec) -> Layout:
    try:
        return spec_layout(track.layout)
    except KeyError:
        words = sorted({w for name in SPEC_LAYOUT_NAMES for w in (name, *spec_layout(name).aliases)})
        raise BadInputError(f"layout {track.layout!r} of track {track.id} is not supported for layback; "
                            f"use one of {', '.join(words)}") from None


def _match(track: AudioTrackSpec, sources: list[MixSource], used: dict[int, set[str]]) -> tuple[int, list[int]] | None:
    """(source index, channel positions in spec order) of the first source that can feed ``track``."""
    want = list(track.channels)
    for i, src in enumerate(sources):
        if used[i]:
            continue
        if sorted(src.labels) == sorted(want):
            return i, [src.labels.index(c) for c in want]
    for i, src in enumerate(sources):  # unlabelled (no mask, odd count): by count, in file order
        if not used[i] and src.labels[0].startswith("ch") and len(src.labels) == len(want):
            return i, list(range(len(want)))
    if len(want) == 1:
        for i, src in enumerate(sources):  # a mono track takes one channel of a multichannel source
            if want[0] in src.labels and want[0] not in used[i] and not (used[i] and "*" in used[i]):
                return i, [src.labels.index(want[0])]
        for i, src in enumerate(sources):
            if not used[i] and len(src.labels) == 1:
                return i, [0]
    return None


def plan_layback(picture: MediaInfo, mixes: list[MediaInfo] | list[tuple[MixInput, MediaInfo]],
                 spec: Spec) -> LaybackPlan:
    """Decide which mix feeds which spec track, in which channel order, and how far to shift it.

    Raises:
        MediaError: no picture, several pictures, a variable frame rate, a mix with no audio, a spec track
            without a matching mix, a sample rate other than the spec's, or a mix that cannot be placed: no
            overlap with the programme, or further from its start than ``timing.max_layback_offset_s`` (all
            bad input, exit 2). Gaps and overhangs are measured in the plan and reported by QC
            (:func:`tasks.qc.sync.check_layback`).
    """
    v = picture.primary_video
    if v is None:
        raise MediaError(f"{picture.path} has no video stream; --master must be the picture master")
    name = Path(picture.path).name
    if len(picture.video) > 1:
        # The layback stream-copies one picture; a second one would be dropped without a word.
        others = ", ".join(f"#{o.index} {o.codec} {o.width}x{o.height}" for o in picture.video[1:])
        raise MediaError(f"master {name} has {len(picture.video)} video streams: deliver lays back the first "
                         f"(#{v.index} {v.codec} {v.width}x{v.height}) and would drop {others}. Give a master with "
                         f"the programme picture alone (e.g. ffmpeg -i {name} -map 0:v:0 -map 0:a? -c copy ...)")
    if v.variable_rate:
        # Timecode (SMPTE ST 12-1), the layback's sample-exact placement and every duration count frames at one rate.
        raise MediaError(f"master {name} has a {v.variable_rate}; deliver needs a constant frame rate (timecode, "
                         f"layback placement and durations count frames at {v.frame_rate} fps). Conform the master "
                         "to a constant rate in the editing or transcoding tool")
    pairs = [m if isinstance(m, tuple) else (MixInput(path=m.path), m) for m in mixes]
    sources = mix_sources(pairs)
    start = (Timecode.parse(picture.start_timecode, v.frame_rate) if picture.start_timecode
             else Timecode(0, v.frame_rate))
    pic_frames = v.frame_count or round(Fraction(v.duration_s or picture.duration_s or 0.0) * v.frame_rate)
    pic_dur = Fraction(pic_frames) / v.frame_rate
    # An FFOA outside the picture (wrong start timecode; QC reports it): the programme is the whole picture.
    ffoa_at = spec.timing.ffoa_frame(start, pic_frames)
    ffoa_frame = ffoa_at or 0
    max_offset_s = spec.timing.max_layback_offset_s
    counts = {len(t.channels) for t in spec.audio.tracks}
    for src in sources:
        mono_wanted = {t.channels[0] for t in spec.audio.tracks if len(t.channels) == 1}
        if len(src.paths) == 1 and len(src.labels) > 1 and len(src.labels) not in counts and \
                not mono_wanted & set(src.labels):  # a spec of mono tracks may take it apart
            wanted = ", ".join(f"{t.id}: {len(t.channels)} ({' '.join(t.channels)})" for t in spec.audio.tracks)
            raise MediaError(f"mix {src.paths[0]} has {len(src.labels)} channels; spec {spec.name} tracks take "
                             f"{wanted}. Check the mix file (wrong channel count).")
    used: dict[int, set[str]] = {i: set() for i in range(len(sources))}
    tracks: list[TrackAssignment] = []
    notes: list[str] = []
    for track in spec.audio.tracks:
        found = _match(track, sources, used)
        if found is None:
            offered = "; ".join(f"{s.name}: {' '.join(s.labels)}" for s in sources) or "none"
            raise MediaError(f"no mix for spec track {track.id} ({track.label}, {len(track.channels)} channels "
                             f"{' '.join(track.channels)}); mixes given: {offered}. Pass it with --mix (a file per "
                             "layout, mono files named *_L.wav *_R.wav ..., or an explicit map L,R=file.wav)")
        si, positions = found
        src = sources[si]
        used[si] |= {src.labels[p] for p in positions} | ({"*"} if len(positions) > 1 else set())
        sr = src.sample_rate_hz
        if sr != spec.audio.sample_rate_hz:
            raise MediaError(f"mix {src.name} is {sr} Hz but spec {spec.name} wants {spec.audio.sample_rate_hz} Hz; "
                             "deliver does not resample a mix — ask for a mix at the spec's rate")
        if src.time_reference_samples is None:
            offset = 0
            notes.append(f"{src.name} has no BWF time reference; laid back at the picture's first frame")
        else:
            # The picture's start on the sample clock is exact for integer rates, nearest sample otherwise.
            pic_start = round(start.seconds * sr)
            offset = src.time_reference_samples - pic_start
        frame_samples = Fraction(sr) / v.frame_rate
        prog_start = round(ffoa_frame * frame_samples)
        pic_end = round(pic_dur * sr)
        mix_end = offset + src.duration_samples
        def tc_of(s: int, start: Timecode = start, frame_samples: Fraction = frame_samples) -> str:
            return str(start + int(Fraction(s) / frame_samples))

        placed = (f"by its BWF time reference ({src.time_reference_samples} samples) it runs {tc_of(offset)} to "
                  f"{tc_of(mix_end)}")
        if mix_end <= prog_start or offset >= pic_end:
            raise MediaError(f"mix {src.name} cannot be placed on {Path(picture.path).name}: {placed}, but the "
                             f"programme runs {tc_of(prog_start)} to {tc_of(pic_end)} (no overlap). Check the "
                             f"mix's time reference and the picture's start timecode {start}")
        if max_offset_s is not None and abs(offset - prog_start) > max_offset_s * sr:
            raise MediaError(f"mix {src.name} cannot be placed on {Path(picture.path).name}: {placed}, "
                             f"{abs(offset - prog_start) / sr:.3f} s from the programme start {tc_of(prog_start)}; "
                             f"spec {spec.name} allows {max_offset_s:g} s (timing.max_layback_offset_s). Check "
                             f"the mix's time reference and the picture's start timecode {start}")
        if offset:
            notes.append(f"{src.name}: offset {offset:+d} samples ({float(offset / frame_samples):+.2f} frames) "
                         f"against the picture start {start}; {'padded' if offset > 0 else 'trimmed'} at the head")
        if mix_end < pic_end:
            notes.append(f"{src.name}: {pic_end - mix_end} samples short of the picture's end; padded with silence")
        if mix_end > pic_end:
            notes.append(f"{src.name}: {mix_end - pic_end} samples after the picture's last frame; trimmed")
        refs = [src.refs[p] for p in positions]
        assignment = TrackAssignment(
            track_id=track.id, label=track.label, layout=track.layout, mix_path=src.paths[0], mix_paths=src.paths,
            channel_refs=refs, channels=len(positions), offset_samples=offset, sample_rate_hz=sr,
            duration_s=float(Fraction(min(mix_end, pic_end) - max(offset, 0), sr)),
            mix_duration_samples=src.duration_samples, mix_codec=src.codec, mix_bit_depth=src.bit_depth,
            head_gap_samples=max(offset - prog_start, 0),
            tail_gap_samples=max(pic_end - mix_end, 0), head_trim_samples=max(-offset, 0),
            tail_trim_samples=max(mix_end - pic_end, 0))
        if ffoa_at is not None and spec.timing.ffoa_timecode and ffoa_frame >= TWO_POP_BEFORE_FFOA_S * v.frame_rate:
            pop_frame = ffoa_frame - round(TWO_POP_BEFORE_FFOA_S * v.frame_rate)
            expected = round(pop_frame * frame_samples)
            found_at = _find_two_pop(src, refs, expected - offset, sr, frame_samples)
            if found_at is None:
                notes.append(f"{src.name}: no 2-pop found near {tc_of(expected)} (checked "
                             f"{'/'.join(track.channels)}); sync not confirmed by the 2-pop")
            else:
                delta = found_at + offset - expected
                assignment.two_pop_offset_samples = delta  # QC judges it (timing.two_pop)
                notes.append(f"{src.name}: 2-pop at {tc_of(expected + delta)}, {delta:+d} samples from the "
                             "picture's 2-pop")
        tracks.append(assignment)
    for i, src in enumerate(sources):
        if not used[i]:
            notes.append(f"{src.name} was not used: no further spec track takes {' '.join(src.labels)}")
    return LaybackPlan(picture_path=picture.path, start_timecode=str(start), rate=v.frame_rate,
                       picture_duration_s=float(pic_dur), picture_frames=pic_frames, tracks=tracks, notes=notes,
                       programme_start_frame=ffoa_frame)


def _find_two_pop(src: MixSource, refs: list[tuple[int, int]], expected: int, sr: int,
                  frame_samples: Fraction) -> int | None:
    """Onset (mix sample clock) of the 2-pop nearest ``expected`` within ±1 s, or ``None``.

    A 2-pop is a burst above -40 dBFS at most two frames long with at least 0.25 s of silence on
    both sides, on the track's first full-range channel: programme sound or line-up tone is not
    mistaken for one. Reads one window only.
    """
    window = sr  # ±1 s: a 2-pop further off than that is not this 2-pop
    lo = max(expected - window, 0)
    hi = min(expected + window, src.duration_samples)
    if hi <= lo:
        return None
    for path_index, channel in refs:
        if src.labels[src.refs.index((path_index, channel))] == "LFE":
            continue
        with sf.SoundFile(src.paths[path_index]) as fh:
            fh.seek(lo)
            block = fh.read(hi - lo, dtype="float32", always_2d=True)[:, channel]
        loud = np.flatnonzero(np.abs(block) > 10 ** (_TWO_POP_THRESHOLD_DBFS / 20))
        if not loud.size:
            return None
        gap = int(0.25 * sr)
        # Runs of loud samples (a run breaks at a quiet gap longer than a few ms).
        breaks = np.flatnonzero(np.diff(loud) > int(0.005 * sr))
        starts = np.concatenate([[loud[0]], loud[breaks + 1]])
        ends = np.concatenate([loud[breaks], [loud[-1]]]) + 1
        best = None
        for k, (s0, s1) in enumerate(zip(starts, ends, strict=True)):
            quiet_before = s0 - (ends[k - 1] if k else 0) >= gap and (k or s0 >= gap)
            quiet_after = (starts[k + 1] if k + 1 < len(starts) else len(block)) - s1 >= gap
            if s1 - s0 <= 2 * frame_samples and quiet_before and quiet_after:
                onset = int(lo + s0)
                if best is None or abs(onset - expected) < abs(best - expected):
                    best = onset
        return best
    return None


def video_packet_hash(path: str | Path) -> str:
    """MD5 over the first video stream's packets (no decode): equal hashes = bit-identical essence."""
    result = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "streamhash",
                         "-hash", "md5", "-"], capture_stdout=True, what=f"video packet hash of {Path(path).name}")
    text = result.stdout.decode().strip()
    return text.rsplit("=", 1)[-1] if text else ""


def layback_graph(plan: LaybackPlan, spec: Spec, out_path: Path) -> Any:
    """The layback as an ffmpeg-python graph: picture stream copy + one PCM track per spec track."""
    codec = spec.audio.codec or "pcm_s24le"
    picture = ffmpeg.input(plan.picture_path)
    mixes: dict[str, Any] = {}
    tracks = []
    for t in plan.tracks:
        track = next(tr for tr in spec.audio.tracks if tr.id == t.track_id)
        layout = _layout(track)
        for p in t.mix_paths:
            mixes.setdefault(p, ffmpeg.input(p))
        used_files = sorted({r[0] for r in t.channel_refs})
        # join only references buffers: channel selection and re-order stay bit-exact.
        mapping = "|".join(f"{used_files.index(f)}.{c}-{name}"
                           for (f, c), name in zip(t.channel_refs, layout.positions, strict=False))
        audio = ffmpeg.filter([mixes[t.mix_paths[f]].audio for f in used_files], "join", inputs=len(used_files),
                              channel_layout=layout.ffmpeg, map=mapping)
        if t.offset_samples > 0:
            audio = audio.filter("adelay", delays=f"{t.offset_samples}S", all=1)
        elif t.offset_samples < 0:
            audio = audio.filter("atrim", start_sample=-t.offset_samples).filter("asetpts", "N/SR/TB")
        end_sample = round(Fraction(plan.picture_frames) / plan.rate * t.sample_rate_hz)
        # Exactly the picture's range: silence after a short mix, nothing after the last frame.
        audio = (audio.filter("apad", whole_len=end_sample).filter("atrim", end_sample=end_sample)
                 .filter("asetpts", "N/SR/TB"))
        tracks.append(audio)
    titles = {f"metadata:s:a:{i}": f"title={t.label}" for i, t in enumerate(plan.tracks)}
    return ffmpeg.output(picture["v:0"], *tracks, str(out_path), vcodec="copy", acodec=codec,
                         timecode=plan.start_timecode, map_metadata=0, f="mov", **titles)


def layback_args(plan: LaybackPlan, spec: Spec, out_path: Path) -> list[str]:
    """ffmpeg arguments of :func:`layback_graph`, plus each track's QuickTime handler name."""
    args = compile_args(layback_graph(plan, spec, out_path))
    # ffmpeg-python keeps one value per option; the second per-stream metadata key goes in by hand.
    handlers = [a for i, t in enumerate(plan.tracks) for a in (f"-metadata:s:a:{i}", f"handler_name={t.label}")]
    return [*args[:-1], *handlers, args[-1]]


def layback(plan: LaybackPlan, spec: Spec, out_path: str | Path, *,
            progress: Callable[[float, float], None] | None = None, verify: bool = True,
            provenance: Provenance | None = None) -> LaybackResult:
    """Write the married master: picture stream copy + one PCM track per spec track.

    Output appears atomically under ``out_path``. With ``verify`` the video packets of the result are
    hashed against the master's (no decode). With ``provenance`` (the identity of plan and spec) a file
    its record vouches for is reused, and an existing file of other bytes is moved aside
    (:func:`tasks.media.files.publish`); without it an existing file is never overwritten.

    Raises:
        VerificationError: the picture essence changed (never expected: it is a stream copy).
    """
    out = Path(out_path)
    total_s = plan.picture_duration_s

    def _progress(p: FFmpegProgress) -> None:
        if progress is not None:
            progress(min(p.out_time_s, total_s), total_s)

    if provenance is not None and reusable(out, provenance) is not None:
        md5 = video_packet_hash(out) if verify else ""
        if progress is not None:
            progress(total_s, total_s)
        return LaybackResult(path=str(out), plan=plan, wall_s=0.0, video_md5=md5, reused=True)
    with atomic_output(out, provenance=provenance) as tmp:
        result = run_ffmpeg(layback_args(plan, spec, tmp), progress=_progress, what=f"layback to {out.name}")
        md5 = video_packet_hash(tmp) if verify else ""
        if verify and md5 != video_packet_hash(plan.picture_path):
            raise VerificationError(f"layback {out.name}: the picture packets differ from {plan.picture_path}; "
                                    "the file was not kept. Report this: the picture must be a stream copy.")
    if progress is not None:
        progress(total_s, total_s)  # ffmpeg's last report stops one frame short
    return LaybackResult(path=str(out), plan=plan, wall_s=result.wall_s, video_md5=md5)


def layback_identity(plan: LaybackPlan, spec: Spec) -> str:
    """The track mapping a married master is made with: its compiled ffmpeg arguments, without the output path
    and the tracks' names (title and handler metadata: what each spec calls a track, which no check or
    deliverable reads from the married master). Distributors of one run whose specs give the same identity
    share one layback."""
    import hashlib
    import json

    args = layback_args(plan, spec, Path("/layback-output"))
    names = {k for k, (opt, value) in enumerate(zip(args, args[1:], strict=False))
             if opt.startswith("-metadata:s:") and value.split("=", 1)[0] in ("title", "handler_name")}
    kept = [a for k, a in enumerate(args) if k not in names and k - 1 not in names]
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()
