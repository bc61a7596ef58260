"""Deliverables progress moves through the whole one-decode transcode, although ffmpeg 5.1 writes no
``-progress`` report until every output (the poster frame a third into the programme, the thumbnails)
has started: the read position of the master fills the silence."""

from __future__ import annotations

import os
import shutil
import time

from tasks.deliverables.make import transcode_all
from tests.deliverables.helpers import FIELDS

# ffmpeg reading its inputs at half real time: a 6 s master takes ~12 s, time for ~20 progress samples.
_THROTTLED = '#!/bin/sh\nexec "{ffmpeg}" -readrate 0.5 "$@"\n'


def test_progress_moves_before_the_late_outputs_start_and_never_goes_back(ebu, tmp_path, monkeypatch):
    spec, master = ebu
    wrapper = tmp_path / "ffmpeg-throttled"
    wrapper.write_text(_THROTTLED.format(ffmpeg=shutil.which(os.environ.get("FFMPEG", "ffmpeg"))))
    wrapper.chmod(0o755)
    monkeypatch.setenv("FFMPEG", str(wrapper))
    reports: list[tuple[float, float]] = []
    started = time.monotonic()
    result = transcode_all(spec.deliverables, spec, master, tmp_path / "pkg", fields=FIELDS,
                           extras_dir=tmp_path / "pkg" / "extras", thumbnails=3,
                           progress=lambda done_s, total_s: reports.append((time.monotonic() - started,
                                                                            done_s / total_s)))
    assert result.ffmpeg_runs == 1 and len(result.extras) == 4  # still one decode, extras in the same run
    fractions = [f for _, f in reports]
    assert fractions == sorted(fractions), fractions  # never backwards
    assert fractions[-1] == 1.0
    # The poster frame is 4 s + 2/3 s into the 6 s master (78 %): ffmpeg's own reports start there.
    # Progress must have moved through the first three quarters, in several steps.
    early = sorted({round(f, 2) for f in fractions if 0.02 < f < 0.75})
    assert len(early) >= 5, reports
    moving = [t for t, f in reports if f < 0.99]  # then each output is verified (a full decode): 99 % -> 100 %
    assert max(b - a for a, b in zip(moving, moving[1:], strict=False)) < 3.0, reports  # no long stall
