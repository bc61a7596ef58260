"""The one-decode graph is built with ffmpeg-python: split/asplit fan-out, drawtext escaping, corrected inputs."""

from __future__ import annotations

import numpy as np

from specs.model import AudioMap, Deliverable
from tasks.deliverables.graph import deliverables_graph
from tasks.deliverables.make import transcode_all
from tasks.media.ffmpeg import compile_args
from tests.deliverables.helpers import FIELDS, H, gray_frame

AWKWARD = "it's 50% {title}: a\\b [x], y; z"


def _screener(text: str) -> Deliverable:
    return Deliverable(id="s", kind="screener", container="mp4", name="{title}_{id}.mp4",
                       video={"codec": "libx264", "pix_fmt": "yuv420p", "crf": 30},
                       audio=[AudioMap(from_track="main-51", codec="aac", downmix="2.0")],
                       burn_in={"timecode": True, "text": text}, watermark={"text": "FOR {recipient}"})


def test_compiled_graph_splits_once_and_escapes_drawtext(ebu, tmp_path):
    spec, master = ebu
    d = _screener(AWKWARD)
    stem = Deliverable(id="c", kind="audio-stem", container="wav", name="{title}_{id}.wav",
                       audio=[AudioMap(from_track="main-51", codec="pcm_s24le", loudness_target_lufs=-23.0)])
    outputs = {"s": tmp_path / "s.partial.mp4", "c": tmp_path / "c.partial.wav",
               "mezzanine": tmp_path / "m.partial.mov"}
    extras = [tmp_path / "poster.partial.jpg", tmp_path / "thumb.partial.jpg"]
    corrected = {("c", 0): tmp_path / "c.a0.corrected.wav"}
    args = compile_args(deliverables_graph([d, spec.deliverables[0], stem], spec, master, outputs, corrected, extras,
                                           FIELDS))
    graph = args[args.index("-filter_complex") + 1]
    assert args[:2] == ["-i", master.path] and args.count("-filter_complex") == 1
    assert f"-i {tmp_path / 'c.a0.corrected.wav'}" in " ".join(args)  # the corrected track is an extra input
    assert "1:a:0" in args  # ... mapped as it is
    assert "split=4" in graph and "asplit=2" in graph  # picture: 2 deliverables + poster + thumbnail
    assert "drawtext=" in graph and "timecode=10\\\\:00\\\\:00\\\\:00" in graph
    assert "pan=args=stereo|c0\\\\=c0+0.7071*c2+0.7071*c4|c1\\\\=c1+0.7071*c2+0.7071*c5" in graph
    assert "scale=h=-2:w=min(480\\,iw)" in graph
    line = " ".join(args)
    for opt in ("-c:a:0 aac", "-b:a:0 320k", "-timecode 10:00:00:00", "-movflags +faststart", "-frames:v 1",
                "-update 1", "-q:v 3", "-f image2", "-metadata time_reference=", "-metadata:g description="):
        assert opt in line


def test_awkward_burn_in_text_reaches_the_picture(ebu, tmp_path):
    spec, master = ebu
    made = transcode_all([_screener(AWKWARD)], spec, master, tmp_path / "a", fields=FIELDS).deliverables[0]
    assert "full decode clean" in made.checks
    plain = transcode_all([_screener("x")], spec, master, tmp_path / "b", fields=FIELDS).deliverables[0]
    top = slice(0, int(H * 0.15))  # the burn-in text line
    assert np.mean(np.abs(gray_frame(made.path, 0.5)[top] - gray_frame(plain.path, 0.5)[top])) > 2
