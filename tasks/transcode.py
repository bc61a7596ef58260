"""Deliverables: transcode the married master into what the spec asks for, then verify.

One ffmpeg run per deliverable for now (``split`` over one decode is the performance issue's
job). Every output is written atomically and verified after writing: probed against what was
asked (codec, size, streams, channels, duration within a frame) and decoded end to end.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from pydantic import BaseModel

from specs.errors import BadInputError, VerificationError
from specs.model import Deliverable, Spec
from tasks.layback import FFMPEG_LAYOUTS
from tasks.media.ffmpeg import FFmpegProgress, run_ffmpeg
from tasks.media.files import atomic_output
from tasks.media.probe import MediaInfo, probe
from tasks.media.timecode import Timecode

__all__ = ["DeliverableResult", "transcode_deliverable", "verify_deliverable", "deliverable_args", "DOWNMIX_20"]

# ITU-R BS.775 Lo/Ro downmix from L R C LFE Ls Rs (LFE omitted, centre and surrounds at -3 dB).
DOWNMIX_20 = "pan=stereo|c0=c0+0.7071*c2+0.7071*c4|c1=c1+0.7071*c2+0.7071*c5"
_PRORES_PROFILES = {"proxy": "0", "lt": "1", "standard": "2", "422": "2", "hq": "3", "4444": "4", "4444xq": "5"}
_BURNIN_FONT = "DejaVu Sans Mono"


class DeliverableResult(BaseModel):
    id: str
    kind: str
    path: str
    size: int
    duration_s: float
    wall_s: float


def _escape_drawtext(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'").replace("%", "\\%")


def deliverable_args(d: Deliverable, spec: Spec, master: MediaInfo, out_path: Path, *, title: str) -> list[str]:
    """The ffmpeg arguments (after the binary) that make deliverable ``d`` from ``master``."""
    v = master.primary_video
    if v is None:
        raise BadInputError(f"{master.path} has no video stream to make {d.id} from")
    start = Timecode.parse(master.start_timecode, v.frame_rate) if master.start_timecode else Timecode(0, v.frame_rate)
    offset_frames = 0
    if not d.include_head and spec.timing.ffoa_timecode:
        ffoa = Timecode.parse(spec.timing.ffoa_timecode, v.frame_rate, drop_frame=start.drop_frame)
        offset_frames = max(ffoa.frames - start.frames, 0)
    out_start = start + offset_frames
    args: list[str] = []
    if offset_frames:
        # Input seek + re-encode is frame-accurate in ffmpeg (accurate_seek is the default).
        args += ["-ss", f"{float(Fraction(offset_frames) / v.frame_rate):.6f}"]
    args += ["-i", master.path, "-map_metadata", "-1"]
    vf: list[str] = []
    if d.video is not None:
        enc = d.video
        if enc.width and enc.height and (enc.width, enc.height) != (v.width, v.height):
            vf.append(f"scale={enc.width}:{enc.height}:flags=lanczos")
        if d.burn_in is not None and d.burn_in.timecode:
            rate = f"{v.frame_rate.numerator}/{v.frame_rate.denominator}"
            tc = _escape_drawtext(str(out_start))
            vf.append(f"drawtext=font='{_BURNIN_FONT}':timecode='{tc}':rate={rate}:fontsize=h/14:"
                      "fontcolor=white:box=1:boxcolor=black@0.6:x=(w-tw)/2:y=h-th-h/20")
        if d.burn_in is not None and d.burn_in.text:
            vf.append(f"drawtext=font='{_BURNIN_FONT}':text='{_escape_drawtext(d.burn_in.text.format(title=title))}':"
                      "fontsize=h/18:fontcolor=white:box=1:boxcolor=black@0.6:x=(w-tw)/2:y=h/20")
        if d.watermark is not None:
            vf.append(f"drawtext=font='{_BURNIN_FONT}':text='{_escape_drawtext(d.watermark.text.format(title=title))}':"
                      f"fontsize=h/8:fontcolor=white@{d.watermark.opacity:.2f}:x=(w-tw)/2:y=(h-th)/2")
        args += ["-map", f"0:{v.index}"]
        if vf:
            args += ["-vf", ",".join(vf)]
        args += ["-c:v", enc.codec]
        if enc.codec == "prores_ks":
            args += ["-profile:v", _PRORES_PROFILES.get((enc.profile or "hq").lower(), "3"), "-vendor", "apl0"]
        elif enc.profile:
            args += ["-profile:v", enc.profile]
        if enc.pix_fmt:
            args += ["-pix_fmt", enc.pix_fmt]
        if enc.bitrate_kbps:
            args += ["-b:v", f"{enc.bitrate_kbps}k", "-maxrate", f"{enc.bitrate_kbps}k", "-bufsize", f"{2 * enc.bitrate_kbps}k"]
        elif enc.crf is not None:
            args += ["-crf", str(enc.crf)]
        if enc.codec in ("libx264", "libx265"):
            args += ["-preset", "medium"]
        # Keep the colour description of the master on every picture deliverable.
        for flag, value in (("-color_primaries", v.color_primaries), ("-color_trc", v.color_transfer),
                            ("-colorspace", v.color_matrix), ("-color_range", v.color_range)):
            if value and value != "unknown":
                args += [flag, value]
    track_ids = [t.id for t in spec.audio.tracks]
    for i, amap in enumerate(d.audio):
        if amap.from_track not in track_ids:
            raise BadInputError(f"deliverable {d.id} maps audio from unknown track {amap.from_track!r}; "
                                f"spec tracks are {', '.join(track_ids)}")
        src = track_ids.index(amap.from_track)
        if src >= len(master.audio):
            raise BadInputError(f"deliverable {d.id} needs track {amap.from_track} but the master has "
                                f"{len(master.audio)} audio tracks")
        args += ["-map", f"0:a:{src}"]
        track = spec.audio.tracks[src]
        if amap.downmix == "2.0":
            if track.layout != "5.1":
                raise BadInputError(f"deliverable {d.id}: a 2.0 downmix needs a 5.1 source, {track.id} is {track.layout}")
            args += [f"-filter:a:{i}", DOWNMIX_20]
        elif track.layout in FFMPEG_LAYOUTS:
            args += [f"-filter:a:{i}", f"aformat=channel_layouts={FFMPEG_LAYOUTS[track.layout]}"]
        args += [f"-c:a:{i}", amap.codec]
        if amap.codec == "aac":
            args += [f"-b:a:{i}", "320k" if amap.downmix or track.layout in ("2.0", "stereo") else "640k"]
    if d.video is not None and d.container in ("mov", "mp4"):
        args += ["-timecode", str(out_start)]
    if d.container == "mp4":
        args += ["-movflags", "+faststart"]
    fmt = {"mov": "mov", "mp4": "mp4", "mxf": "mxf", "wav": "wav"}[d.container]
    if fmt == "wav":
        args += ["-rf64", "auto"]
    return [*args, "-f", fmt, str(out_path)]


def transcode_deliverable(d: Deliverable, spec: Spec, master: MediaInfo, out_path: str | Path, *, title: str,
                          progress=None) -> DeliverableResult:
    """Make one deliverable under ``out_path`` (atomically), then verify it."""
    out = Path(out_path)
    expected_s = _expected_duration_s(d, spec, master)

    def _progress(p: FFmpegProgress) -> None:
        if progress is not None:
            progress(min(p.out_time_s, expected_s), expected_s)

    with atomic_output(out) as tmp:
        result = run_ffmpeg(deliverable_args(d, spec, master, tmp, title=title), progress=_progress,
                            what=f"transcode of deliverable {d.id}")
        info = verify_deliverable(d, spec, tmp, expected_s)
    return DeliverableResult(id=d.id, kind=d.kind, path=str(out), size=out.stat().st_size,
                             duration_s=info.duration_s or 0.0, wall_s=result.wall_s)


def _expected_duration_s(d: Deliverable, spec: Spec, master: MediaInfo) -> float:
    v = master.primary_video
    total = (v.duration_s if v and v.duration_s else master.duration_s) or 0.0
    if v is None or d.include_head or not spec.timing.ffoa_timecode or not master.start_timecode:
        return total
    start = Timecode.parse(master.start_timecode, v.frame_rate)
    ffoa = Timecode.parse(spec.timing.ffoa_timecode, v.frame_rate, drop_frame=start.drop_frame)
    return max(total - float(max(ffoa.frames - start.frames, 0) / v.frame_rate), 0.0)


def verify_deliverable(d: Deliverable, spec: Spec, path: str | Path, expected_s: float) -> MediaInfo:
    """Probe and fully decode a written deliverable; raise VerificationError on any mismatch."""
    info = probe(path, what=f"deliverable {d.id}")
    problems: list[str] = []
    if d.video is not None:
        v = info.primary_video
        if v is None:
            problems.append("no video stream")
        else:
            if d.video.width and d.video.height and (v.width, v.height) != (d.video.width, d.video.height):
                problems.append(f"size {v.width}x{v.height} instead of {d.video.width}x{d.video.height}")
            want_codec = {"prores_ks": "prores", "libx264": "h264", "libx265": "hevc"}.get(d.video.codec, d.video.codec)
            if v.codec != want_codec:
                problems.append(f"video codec {v.codec} instead of {want_codec}")
    if len(info.audio) != len(d.audio):
        problems.append(f"{len(info.audio)} audio streams instead of {len(d.audio)}")
    tol_s = 1.0 / float(info.primary_video.frame_rate) if info.primary_video else 0.05
    got_s = info.duration_s or 0.0
    if abs(got_s - expected_s) > tol_s + 0.03:  # + one AAC frame of priming/padding
        problems.append(f"duration {got_s:.3f} s instead of {expected_s:.3f} s")
    if not problems:
        # A full decode catches truncated or corrupt essence that probing cannot see.
        result = run_ffmpeg(["-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
                            what=f"verification decode of {d.id}")
        if result.stderr_tail.strip():
            problems.append(f"decode errors: {result.stderr_tail.splitlines()[-1]}")
    if problems:
        raise VerificationError(f"deliverable {d.id} failed verification after writing: {'; '.join(problems)}. "
                                "The file was not kept; check the deliverable's settings in the spec.")
    return info
