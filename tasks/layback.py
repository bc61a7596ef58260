"""Layback: marry the final mix to the picture master by timecode.

The picture is stream-copied (never re-encoded: the master stays bit-identical). Each mix file
becomes one audio track in the order of the spec's tracks, matched by channel count; channels are
labelled with the spec's layout without remixing (the mix is in the order the spec lists, e.g.
L R C LFE Ls Rs). Alignment comes from timecode: the picture's start timecode and the mix's BWF
time reference. A mix that starts late is delayed sample-exactly; one that starts early is
trimmed. A mix is never padded to hide a short mix: the duration difference is reported and QC
judges it.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel

from specs.errors import BadInputError, MediaError
from specs.model import AudioTrackSpec, Spec
from tasks.media.ffmpeg import FFmpegProgress, run_ffmpeg
from tasks.media.files import atomic_output
from tasks.media.probe import MediaInfo
from tasks.media.timecode import Timecode

__all__ = ["TrackAssignment", "LaybackPlan", "LaybackResult", "plan_layback", "layback", "FFMPEG_LAYOUTS"]

# Spec layout words -> ffmpeg channel layout names (order L R C LFE Ls Rs for 5.1 per ITU/SMPTE).
FFMPEG_LAYOUTS = {"mono": "mono", "1.0": "mono", "2.0": "stereo", "stereo": "stereo", "5.0": "5.0",
                  "5.1": "5.1", "7.1": "7.1"}


class TrackAssignment(BaseModel):
    track_id: str
    label: str
    layout: str
    mix_path: str
    channels: int
    offset_samples: int  # >0: mix starts after the picture (delay); <0: mix starts before (trim)
    sample_rate_hz: int
    duration_s: float  # of the mix after alignment


class LaybackPlan(BaseModel):
    picture_path: str
    start_timecode: str
    rate: Fraction
    picture_duration_s: float
    tracks: list[TrackAssignment]
    notes: list[str] = []


class LaybackResult(BaseModel):
    path: str
    plan: LaybackPlan
    wall_s: float


def _ffmpeg_layout(track: AudioTrackSpec) -> str:
    try:
        return FFMPEG_LAYOUTS[track.layout]
    except KeyError:
        raise BadInputError(f"layout {track.layout!r} of track {track.id} is not supported for layback; "
                            f"use one of {', '.join(sorted(FFMPEG_LAYOUTS))}") from None


def plan_layback(picture: MediaInfo, mixes: list[MediaInfo], spec: Spec) -> LaybackPlan:
    """Decide which mix goes to which spec track and how far to shift it.

    Raises:
        MediaError: no picture, a mix with no audio or a channel count no spec track takes, a spec
            track without a mix (all bad input).
    """
    v = picture.primary_video
    if v is None:
        raise MediaError(f"{picture.path} has no video stream; --master must be the picture master")
    start = Timecode.parse(picture.start_timecode, v.frame_rate) if picture.start_timecode else Timecode(0, v.frame_rate)
    pic_start_s = start.seconds
    pic_dur_s = v.duration_s or picture.duration_s or 0.0
    unused = list(mixes)
    tracks: list[TrackAssignment] = []
    notes: list[str] = []
    for mix in mixes:
        if not mix.audio:
            raise MediaError(f"mix {mix.path} has no audio stream")
        if len(mix.audio) > 1:
            raise MediaError(f"mix {mix.path} has {len(mix.audio)} audio streams; give one interleaved file per spec track")
        ch = mix.audio[0].channels
        if not any(len(t.channels) == ch for t in spec.audio.tracks):
            wanted = ", ".join(f"{t.id}: {len(t.channels)} ({' '.join(t.channels)})" for t in spec.audio.tracks)
            raise MediaError(f"mix {mix.path} has {ch} channels; spec {spec.name} tracks take {wanted}. "
                             "Check the mix file (wrong channel count).")
    for track in spec.audio.tracks:
        match = next((m for m in unused if m.audio[0].channels == len(track.channels)), None)
        if match is None:
            raise MediaError(f"no mix for spec track {track.id} ({track.label}, {len(track.channels)} channels "
                             f"{' '.join(track.channels)}); pass it with --mix")
        unused.remove(match)
        a = match.audio[0]
        mix_start = match.start_seconds()
        if mix_start is None:
            offset = 0
            notes.append(f"{Path(match.path).name} has no BWF time reference; laid back at the picture's first frame")
        else:
            offset = round((mix_start - pic_start_s) * a.sample_rate_hz)
        mix_dur = (a.duration_s or match.duration_s or 0.0)
        aligned_dur = mix_dur + offset / a.sample_rate_hz
        tracks.append(TrackAssignment(track_id=track.id, label=track.label, layout=track.layout, mix_path=match.path,
                                      channels=a.channels, offset_samples=offset, sample_rate_hz=a.sample_rate_hz,
                                      duration_s=min(aligned_dur, pic_dur_s)))
    for m in unused:
        notes.append(f"{Path(m.path).name} was not used: the spec has no further track with "
                     f"{m.audio[0].channels} channels")
    return LaybackPlan(picture_path=picture.path, start_timecode=str(start), rate=v.frame_rate,
                       picture_duration_s=pic_dur_s, tracks=tracks, notes=notes)


def layback(plan: LaybackPlan, spec: Spec, out_path: str | Path, *, progress=None) -> LaybackResult:
    """Write the married master: picture stream copy + one PCM track per spec track.

    Output appears atomically under ``out_path``; an existing file is never overwritten.
    """
    out = Path(out_path)
    codec = spec.audio.codec or "pcm_s24le"
    args: list[str] = ["-i", plan.picture_path]
    for t in plan.tracks:
        args += ["-i", t.mix_path]
    graphs = []
    for i, t in enumerate(plan.tracks):
        track = next(tr for tr in spec.audio.tracks if tr.id == t.track_id)
        chain = []
        if t.offset_samples > 0:
            chain.append(f"adelay=delays={t.offset_samples}S:all=1")
        elif t.offset_samples < 0:
            chain.append(f"atrim=start_sample={-t.offset_samples}")
        # Never longer than the picture: samples past the last frame belong to nothing.
        end_sample = round(plan.picture_duration_s * t.sample_rate_hz)
        chain += [f"atrim=end_sample={end_sample}", "asetpts=N/SR/TB",
                  f"channelmap=map={'|'.join(str(c) for c in range(t.channels))}:channel_layout={_ffmpeg_layout(track)}"]
        graphs.append(f"[{i + 1}:a:0]{','.join(chain)}[a{i}]")
    args += ["-filter_complex", ";".join(graphs), "-map", "0:v:0"]
    for i, t in enumerate(plan.tracks):
        args += ["-map", f"[a{i}]"]
    args += ["-c:v", "copy", "-c:a", codec, "-timecode", plan.start_timecode, "-map_metadata", "0"]
    for i, t in enumerate(plan.tracks):
        args += [f"-metadata:s:a:{i}", f"title={t.label}", f"-metadata:s:a:{i}", f"handler_name={t.label}"]
    total_s = plan.picture_duration_s

    def _progress(p: FFmpegProgress) -> None:
        if progress is not None:
            progress(min(p.out_time_s, total_s), total_s)

    with atomic_output(out) as tmp:
        result = run_ffmpeg([*args, "-f", "mov", str(tmp)], progress=_progress, what=f"layback to {out.name}")
    return LaybackResult(path=str(out), plan=plan, wall_s=result.wall_s)

