"""Loudness meter benchmark: ours vs ffmpeg ``ebur128=peak=true`` vs pyloudnorm, same run, as ratios.

Run: ``.venv/bin/python -m bench.loudness [--minutes 10] [--repeat 2] [--keep DIR]`` (or ``make bench``;
exit 1 when a target is missed: wall > 0.5x ffmpeg ``ebur128=peak=true``, not faster
than pyloudnorm's integrated loudness, or peak RSS >= 250 MB on the 10-minute, 60-minute (5.1) or
3-hour 7.1 file; the long files are generated block by block and deleted unless ``--keep``).

Generates a 5.1, 48 kHz, 24-bit WAV (white noise + 1 kHz tone in 0/-12/-24 dB steps every 5 s,
a worst case for true-peak pruning) in a temp dir,
then times, each in its own process so peak RSS is per method:

* ``ffmpeg -af anull -f null``: bare decode (the floor);
* ``ffmpeg -filter_complex ebur128=peak=true -f null``: what a user would otherwise run;
* ours: :func:`tasks.audio.loudness.measure_file` (I, LRA, TP/SP per channel, max M/S, series);
* pyloudnorm 0.2.0: ``sf.read`` of the whole file, LFE dropped (it refuses 6 channels),
  ``integrated_loudness`` only.

Prints a markdown table with wall and CPU seconds, x realtime, peak RSS and the ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench import exit_code

FS = 48000
CHANNELS = 6  # L R C LFE Ls Rs
STEP_S = 5.0
STEP_LEVELS_DB = (0.0, -12.0, -24.0)


def make_signal(path: Path, minutes: float, *, seed: int = 1, channels: int = CHANNELS) -> float:
    """Write the benchmark WAV block by block (flat memory); returns its duration in seconds.

    Files of 4 GiB and more are written as RF64 (EBU Tech 3306), which libsndfile reads back.
    """
    rng = np.random.default_rng(seed)
    total = round(minutes * 60 * FS)
    block = round(STEP_S * FS)
    t0 = 0
    fmt = "RF64" if total * channels * 3 >= (1 << 32) - 1024 else "WAV"
    with sf.SoundFile(str(path), "w", samplerate=FS, channels=channels, subtype="PCM_24", format=fmt) as out:
        step = 0
        while t0 < total:
            n = min(block, total - t0)
            gain = 10 ** (STEP_LEVELS_DB[step % len(STEP_LEVELS_DB)] / 20)
            t = (t0 + np.arange(n)) / FS
            tone = 0.25 * np.sin(2 * np.pi * 1000.0 * t)
            x = 0.08 * rng.standard_normal((n, channels)) + tone[:, None]
            out.write(np.clip(x * gain, -1.0, 1.0))
            t0 += n
            step += 1
    return total / FS


def _children_usage() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def _in_child(fn: Callable[[], dict[str, Any]], conn: Any) -> None:
    t0 = time.perf_counter()
    c0 = time.process_time()
    out = fn()
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rc = resource.getrusage(resource.RUSAGE_CHILDREN)  # ffmpeg started by the child
    out.update(wall_s=wall, cpu_s=(time.process_time() - c0) + rc.ru_utime + rc.ru_stime,
               rss_mb=max(ru.ru_maxrss, rc.ru_maxrss) / 1024.0)
    conn.send(out)
    conn.close()


def run_isolated(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``fn`` in a forked process; wall/CPU/peak-RSS are that process's (and its children's)."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_in_child, args=(fn, child))
    proc.start()
    child.close()
    result = parent.recv()
    proc.join()
    return result


def bench_ffmpeg(path: Path, filt: str) -> Callable[[], dict[str, Any]]:
    def go() -> dict[str, Any]:
        from tasks.media.ffmpeg import run_ffmpeg

        res = run_ffmpeg(["-nostats", "-i", str(path), "-filter_complex", filt, "-f", "null", "-"],
                         what="benchmark")
        summary = {}
        for line in res.stderr_tail.splitlines():
            line = line.strip()
            for key in ("I:", "LRA:", "Peak:"):
                if line.startswith(key):
                    summary[key.rstrip(":")] = line.split()[1]
        return {"result": " / ".join(summary.get(k, "-") for k in ("I", "LRA", "Peak"))}
    return go


def bench_ours(path: Path) -> dict[str, Any]:
    from tasks.audio.loudness import measure_file

    r = measure_file(path)
    return {"result": f"{r.integrated_lufs:.3f} / {r.loudness_range_lu:.3f} / {r.true_peak_dbtp:.3f} "
                      f"(M {r.max_momentary_lufs:.2f}, S {r.max_short_term_lufs:.2f})"}


def bench_ours_single_thread(path: Path) -> dict[str, Any]:
    from specs.layouts import channel_weights, layout_labels
    from tasks.audio.loudness import LoudnessMeter
    from tasks.audio.reader import iter_soundfile_blocks

    labels = layout_labels("5.1")
    meter = LoudnessMeter(FS, channel_weights(labels), labels=labels, threads=False)
    for block in iter_soundfile_blocks(path):
        meter.process(block)
    r = meter.result()
    return {"result": f"{r.integrated_lufs:.3f} / {r.loudness_range_lu:.3f} / {r.true_peak_dbtp:.3f}"}


def bench_pyloudnorm(path: Path) -> dict[str, Any]:
    import pyloudnorm

    data, rate = sf.read(str(path))  # whole file, float64
    data = np.delete(data, 3, axis=1)  # drop LFE: pyloudnorm refuses 6 channels
    value = pyloudnorm.Meter(rate).integrated_loudness(data)
    return {"result": f"{value:.3f} / - / -"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="programme length (default 10)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per method; the fastest is reported")
    ap.add_argument("--keep", type=Path, default=None, help="keep/reuse the WAV in this folder")
    ap.add_argument("--memory-minutes", type=float, default=60.0,
                    help="also measure a 5.1 file this long for peak RSS only (0 = skip; default 60)")
    ap.add_argument("--long-hours", type=float, default=3.0,
                    help="also measure a 7.1 file this long for peak RSS (0 = skip; default 3; ~12 GB on disk)")
    ap.add_argument("--skip-pyloudnorm", action="store_true", help="pyloudnorm needs ~4 GB RSS per 10 min 5.1")
    if argv is None:  # `python -m bench` calls main() with its own argv; ours are defaults then
        argv = sys.argv[1:] if __name__ == "__main__" else []
    args = ap.parse_args(argv)

    misses: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="deliver-bench-")) if args.keep is None else args.keep
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"bench-5.1-48k-24bit-{args.minutes:g}min.wav"
    try:
        if not path.exists():
            t = time.perf_counter()
            duration = make_signal(path, args.minutes)
            print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
        else:
            duration = sf.info(str(path)).duration
        # warm the page cache so every method reads from memory
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass
        methods: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("ffmpeg decode only (`anull -f null`)", bench_ffmpeg(path, "anull")),
            ("ffmpeg `ebur128=peak=true`", bench_ffmpeg(path, "ebur128=peak=true")),
            ("**deliver `measure_file`** (I, LRA, TP+SP/ch, max M/S 10 ms, series)", lambda: bench_ours(path)),
            ("deliver meter, threads=False, no prefetch", lambda: bench_ours_single_thread(path)),
        ]
        if not args.skip_pyloudnorm:
            methods.append(("pyloudnorm 0.2.0 (whole file, I only)", lambda: bench_pyloudnorm(path)))
        rows = []
        for name, fn in methods:
            best: dict[str, Any] | None = None
            for _ in range(args.repeat):
                out = run_isolated(fn)
                if best is None or out["wall_s"] < best["wall_s"]:
                    best = out
                print(f"  {name}: {out['wall_s']:.2f} s wall", file=sys.stderr)
            assert best is not None
            rows.append((name, best))
        ref = next(r for n, r in rows if "ebur128" in n)
        ours = next(r for n, r in rows if "measure_file" in n)
        print(f"\n{args.minutes:g} min, 5.1, 48 kHz, 24-bit WAV ({path.stat().st_size / 1e6:.0f} MB), "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
        print("| method | wall s | CPU s | x realtime | peak RSS MB | wall vs ffmpeg ebur128 | I / LRA / TP |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for name, r in rows:
            print(f"| {name} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {duration / r['wall_s']:.0f}x | "
                  f"{r['rss_mb']:.0f} | {r['wall_s'] / ref['wall_s']:.2f} | {r['result']} |")
        wall_ratio = ours["wall_s"] / ref["wall_s"]
        print(f"\nours / ffmpeg ebur128=peak=true: wall {wall_ratio:.2f}x (target <= 0.50), "
              f"CPU {ours['cpu_s'] / ref['cpu_s']:.2f}x (lower is better)")
        misses = []
        if wall_ratio > 0.5:
            misses.append(f"wall {wall_ratio:.2f}x ffmpeg ebur128=peak=true (target <= 0.50x)")
        pyl = next((r for n, r in rows if "pyloudnorm" in n), None)
        if pyl is not None:
            print(f"ours / pyloudnorm integrated only: wall {ours['wall_s'] / pyl['wall_s']:.2f}x (target < 1), "
                  f"peak RSS {ours['rss_mb'] / pyl['rss_mb']:.3f}x")
            if ours["wall_s"] >= pyl["wall_s"]:
                misses.append("not faster than pyloudnorm's integrated loudness")
        memory = [(f"{args.minutes:g} min 5.1 48 kHz 24-bit WAV", duration, ours)]
        for label, minutes, channels in ((f"{args.memory_minutes:g} min 5.1 48 kHz 24-bit WAV", args.memory_minutes, 6),
                                         (f"{args.long_hours:g} h 7.1 48 kHz 24-bit RF64", args.long_hours * 60, 8)):
            if minutes <= 0:
                continue
            long_path = tmp / f"bench-{channels}ch-48k-24bit-{minutes:g}min.wav"
            if not long_path.exists():
                t = time.perf_counter()
                make_signal(long_path, minutes, channels=channels, seed=2)
                print(f"generated {long_path} ({long_path.stat().st_size / 1e9:.1f} GB) in "
                      f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
            out = run_isolated(lambda p=long_path: bench_ours(p))
            memory.append((label, minutes * 60, out))
            if args.keep is None:
                long_path.unlink()
        print("\n| our meter, peak RSS (own process) | file GB | wall s | CPU s | x realtime | peak RSS MB |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, dur, r in memory:
            gb = dur * FS * 3 * (8 if "7.1" in label else 6) / 1e9
            print(f"| {label} | {gb:.1f} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {dur / r['wall_s']:.0f}x | "
                  f"{r['rss_mb']:.0f} |")
            if r["rss_mb"] >= 250:
                misses.append(f"peak RSS {r['rss_mb']:.0f} MB on the {label} (target < 250 MB)")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return exit_code(misses)


if __name__ == "__main__":
    sys.exit(main())
