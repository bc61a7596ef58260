"""Deliverables benchmark: one decode for three picture deliverables vs three separate ffmpeg runs.

Run: ``.venv/bin/python -m bench.deliverables [--master hq|4444xq|all] [--seconds 30] [--repeat 3] [--keep DIR]``

Generates 1080p25 masters (4 s head + programme, ``MasterSpec.fast_prores``) in the two formats a DI
hands over, ProRes 422 HQ and ProRes 4444 XQ, then on each times, alternating the order on every
repeat (so drift in machine load hits both sides):

* **separate**: three ffmpeg commands one after the other, exactly what
  :func:`tasks.deliverables.graph.deliverable_args` builds for each deliverable alone (each decodes the
  master): ProRes 422 HQ mezzanine, H.264 8 Mbit/s screener with burned-in timecode, H.264
  640x360 CRF 23 proxy;
* **one graph**: :func:`tasks.deliverables.make.transcode_all` making the same three outputs with the same
  encoder arguments from one decode (``split``), verification off so both sides do the same work.

Each repeat also times a bare decode of the master (``ffmpeg -i master -f null -``) and prints the
best ratio this machine allows: decoding once can at most save the separate side's extra decodes,
so one graph needs at least ``(separate CPU - (n-1) x decode CPU) / cores`` of wall time.

Prints a markdown table (wall, CPU, ratio per repeat, median ratio, that bound and each separate
command's share of the CPU) per master. The issue's target is a median ratio (one graph / separate)
of at most 0.9; the exit status is 1 when any master misses it.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from specs.loader import load_spec
from specs.model import Deliverable
from tasks.deliverables.graph import deliverable_args
from tasks.deliverables.make import transcode_all
from tasks.deliverables.naming import RunFields
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.probe import MediaInfo, probe
from tasks.media.synth import MasterSpec, make_master

TARGET_RATIO = 0.9


def bench_deliverables() -> list[Deliverable]:
    """The three picture deliverables of the issue, whole master (head included), no audio."""
    common = dict(include_head=True, audio=[])
    return [
        Deliverable(id="mezzanine", kind="mezzanine", container="mov", name="{title}_{id}.mov",
                    video={"codec": "prores_ks", "profile": "hq", "pix_fmt": "yuv422p10le"}, **common),
        Deliverable(id="screener", kind="screener", container="mp4", name="{title}_{id}.mp4",
                    video={"codec": "libx264", "profile": "high", "pix_fmt": "yuv420p", "bitrate_kbps": 8000},
                    burn_in={"timecode": True}, **common),
        Deliverable(id="proxy", kind="screener", container="mp4", name="{title}_{id}.mp4",
                    video={"codec": "libx264", "pix_fmt": "yuv420p", "crf": 23, "width": 640, "height": 360},
                    **common),
    ]


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_separate(deliverables: list[Deliverable], master: MediaInfo, out: Path, cpu_by_id: dict[str, float]
                 ) -> tuple[float, float]:
    """Wall and CPU seconds of the separate commands; each command's CPU seconds go into ``cpu_by_id``."""
    spec = load_spec("ebu-r128")
    fields = RunFields(title="BENCH", date="2000-01-01")
    out.mkdir(parents=True)
    wall0, cpu0 = time.monotonic(), _cpu_s()
    for d in deliverables:
        before = _cpu_s()
        run_ffmpeg(deliverable_args(d, spec, master, out / f"{d.id}.{d.container}", title="BENCH", fields=fields),
                   what=f"separate {d.id}")
        cpu_by_id[d.id] = _cpu_s() - before
    return time.monotonic() - wall0, _cpu_s() - cpu0


def run_decode(master: MediaInfo) -> tuple[float, float]:
    """Wall and CPU seconds of a bare decode of the master's picture: what each extra decode costs."""
    wall0, cpu0 = time.monotonic(), _cpu_s()
    run_ffmpeg(["-i", master.path, "-map", "0:v:0", "-f", "null", "-"], what="bare decode")
    return time.monotonic() - wall0, _cpu_s() - cpu0


def best_ratio(separate_wall_s: float, separate_cpu_s: float, decode_cpu_s: float, n: int, cores: int) -> float:
    """Lowest one-graph / separate wall ratio possible here: every core busy, and the only CPU saved the n-1
    extra decodes (the encodes and filters are the same work on both sides)."""
    return max(separate_cpu_s - (n - 1) * decode_cpu_s, 0.0) / cores / separate_wall_s


def run_one_graph(deliverables: list[Deliverable], master: MediaInfo, out: Path) -> tuple[float, float]:
    spec = load_spec("ebu-r128")
    wall0, cpu0 = time.monotonic(), _cpu_s()
    transcode_all(deliverables, spec, master, out, fields=RunFields(title="BENCH", date="2000-01-01"), verify=False)
    return time.monotonic() - wall0, _cpu_s() - cpu0


# Picture masters a DI hands over: ProRes 422 HQ, and ProRes 4444 XQ (12-bit 4:4:4, heavier to decode).
MASTERS = {
    "hq": ("ProRes 422 HQ", dict(codec_args=("-profile:v", "3", "-vendor", "apl0"), pix_fmt="yuv422p10le")),
    "4444xq": ("ProRes 4444 XQ", dict(codec_args=("-profile:v", "5", "-vendor", "apl0"), pix_fmt="yuv444p10le")),
}


def bench_master(kind: str, root: Path, seconds: float, repeat: int) -> float:
    """Time both sides on one master; print the table; return the median ratio."""
    label, fmt = MASTERS[kind]
    master_path = root / f"master_1080p25_prores_{kind}.mov"
    if not master_path.exists():
        make_master(master_path, MasterSpec.fast_prores(width=1920, height=1080, head_s=4, programme_s=seconds - 4,
                                                        **fmt))
    master = probe(master_path)
    deliverables = bench_deliverables()
    rows = []
    cores = os.cpu_count() or 1
    shares: dict[str, float] = {}
    for k in range(repeat):
        runs = {"decode": run_decode(master)}
        order = ("separate", "one graph") if k % 2 == 0 else ("one graph", "separate")
        for name in order:
            out = root / f"{kind}-run{k}-{name.replace(' ', '-')}"
            shutil.rmtree(out, ignore_errors=True)
            if name == "separate":
                cpu_by_id: dict[str, float] = {}
                runs[name] = run_separate(deliverables, master, out, cpu_by_id)
                for d_id, cpu in cpu_by_id.items():
                    shares[d_id] = shares.get(d_id, 0.0) + cpu / runs[name][1] / repeat
            else:
                runs[name] = run_one_graph(deliverables, master, out)
            shutil.rmtree(out, ignore_errors=True)
        rows.append(runs)
    ratios = [r["one graph"][0] / r["separate"][0] for r in rows]
    bounds = [best_ratio(*r["separate"], r["decode"][1], len(deliverables), cores) for r in rows]
    v = master.primary_video
    assert v is not None
    print(f"\n### Deliverables from a {label} master: one decode vs separate ffmpeg runs ({v.width}x{v.height} "
          f"{v.frame_rate} fps {v.pix_fmt}, {master.duration_s:.0f} s, {cores} CPUs, load {os.getloadavg()[0]:.1f})\n")
    print("| repeat | separate wall s | separate CPU s | one graph wall s | one graph CPU s | bare decode CPU s "
          "| ratio (wall) | best possible ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, (r, ratio, bound) in enumerate(zip(rows, ratios, bounds, strict=True), 1):
        print(f"| {k} | {r['separate'][0]:.1f} | {r['separate'][1]:.1f} | {r['one graph'][0]:.1f} | "
              f"{r['one graph'][1]:.1f} | {r['decode'][1]:.1f} | {ratio:.3f} | {bound:.3f} |")
    median = statistics.median(ratios)
    verdict = "meets" if median <= TARGET_RATIO else "MISSES"
    print(f"\nmedian ratio one graph / separate = **{median:.3f}** ({verdict} the <= {TARGET_RATIO} target); "
          f"best possible on {cores} cores: {statistics.median(bounds):.3f}")
    print("share of the separate side's CPU: " + ", ".join(f"{d_id} {100 * v:.0f} %" for d_id, v in shares.items()))
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="master duration (4 s head + programme)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--master", choices=[*MASTERS, "all"], default="all", help="picture master format")
    parser.add_argument("--keep", type=Path, help="keep the masters here")
    # Under `python -m bench` sys.argv holds bench module names, not our options.
    args = parser.parse_args(argv if argv is not None else (sys.argv[1:] if __name__ == "__main__" else []))
    root = args.keep or Path(tempfile.mkdtemp(prefix="deliver-bench-deliverables-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        kinds = list(MASTERS) if args.master == "all" else [args.master]
        medians = {kind: bench_master(kind, root, args.seconds, args.repeat) for kind in kinds}
        return 0 if all(m <= TARGET_RATIO for m in medians.values()) else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
