"""Reference meters for cross-checks: ffmpeg ``ebur128`` (3-decimal metadata) and pyloudnorm."""

from __future__ import annotations

from pathlib import Path

from tasks.media.ffmpeg import run_ffmpeg


def ffmpeg_ebur128(path: Path, *, tmp_dir: Path) -> dict[str, float]:
    """Final ``lavfi.r128.*`` values (I, LRA, true_peak...) printed by ffmpeg for ``path``."""
    out = tmp_dir / (path.name + ".r128.txt")
    run_ffmpeg(["-nostats", "-i", str(path), "-af",
                f"ebur128=metadata=1:peak=true,ametadata=mode=print:file={out}", "-f", "null", "-"],
               what="ffmpeg ebur128 reference measurement")
    last: dict[str, float] = {}
    for line in out.read_text().splitlines():
        if line.startswith("lavfi.r128."):
            key, _, value = line[len("lavfi.r128."):].partition("=")
            last[key] = float(value)
    return last
