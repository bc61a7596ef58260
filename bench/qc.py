"""QC benchmark: the whole ``qc_master`` vs a bare ``ffmpeg -i master -f null -`` decode, same run.

Run: ``.venv/bin/python -m bench.qc [--repeat 3] [--keep DIR]`` (or ``make bench``; exit 1 when
QC takes more than 2.5x the bare decode's wall time).

Generates a 30 s 1920x1080p25 ProRes 422 HQ master (4 s head of bars/countdown/2-pop, 26 s of
programme) with a 5.1 48 kHz 24-bit mix laid back by :mod:`tasks.layback`, then times, median of
``--repeat`` runs each, alternating so machine load hits both alike:

* ``ffmpeg -i master.mov -f null -``: decodes picture and audio, nothing else (the floor);
* ``qc_master``: metadata, every picture check from one decode, the audio decode (loudness and
  signal checks) running alongside it, 2-pop sync — everything report.json holds;
* the HTML report of that result (thumbnails are grabbed only for findings; none on a clean master).

Prints a markdown table with wall and CPU seconds and the ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

TARGET_RATIO = 2.5


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    c0, t0 = _cpu_s(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, _cpu_s() - c0


def make_master(out: Path) -> tuple[Path, object]:
    from specs.loader import load_spec
    from tasks.layback import layback, plan_layback
    from tasks.media.probe import probe
    from tasks.media.synth import MasterSpec, make_sample_set

    spec = load_spec("demo")
    spec = spec.model_copy(update={
        "picture": spec.picture.model_copy(update={"width": 1920, "height": 1080}),
        "audio": spec.audio.model_copy(update={"tracks": spec.audio.tracks[:1]})})
    media = make_sample_set(out / "media", layout="5.1",
                            master=MasterSpec.fast_prores(width=1920, height=1080, programme_s=26, head_s=4))
    plan = plan_layback(probe(media.master), [probe(media.mixes["5.1"])], spec)
    married = out / "master.mov"
    layback(plan, spec, married)
    return married, spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.qc", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this folder")
    args = parser.parse_args(argv)

    from tasks.media.ffmpeg import run_ffmpeg
    from tasks.media.probe import probe
    from tasks.qc.engine import qc_master
    from tasks.report import build_report
    from tasks.report_html import write_html_report

    tmp = tempfile.TemporaryDirectory(prefix="bench-qc-") if args.keep is None else None
    out = args.keep or Path(tmp.name)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    married = out / "master.mov"
    if married.exists():
        from specs.loader import load_spec
        spec = load_spec("demo")
        spec = spec.model_copy(update={
            "picture": spec.picture.model_copy(update={"width": 1920, "height": 1080}),
            "audio": spec.audio.model_copy(update={"tracks": spec.audio.tracks[:1]})})
    else:
        married, spec = make_master(out)
    print(f"master: {married} ({married.stat().st_size / 1e6:.0f} MB, generated in "
          f"{time.perf_counter() - t0:.0f} s)", flush=True)
    info = probe(married)
    results: dict[str, list[tuple[float, float]]] = {"decode": [], "qc": [], "html": []}
    qc = None
    for _ in range(args.repeat):
        results["decode"].append(_timed(lambda: run_ffmpeg(["-i", str(married), "-f", "null", "-"],
                                                           what="bare decode")))
        holder: dict[str, object] = {}
        results["qc"].append(_timed(lambda holder=holder: holder.update(qc=qc_master(info, spec))))
        qc = holder["qc"]
        report = build_report(spec=spec.name, findings=qc.findings, measurements=qc.measurements,
                              title=married.name)
        html = out / "report.html"
        if html.exists():
            html.unlink()
        results["html"].append(_timed(lambda report=report, html=html: write_html_report(report, html,
                                                                                       master=str(married))))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()}
    ratio = med["qc"][0] / med["decode"][0]
    ratio_html = (med["qc"][0] + med["html"][0]) / med["decode"][0]
    errors = sum(1 for f in qc.findings if f.severity.value == "error")
    print(f"\n30 s 1920x1080p25 ProRes 422 HQ + 5.1 PCM, median of {args.repeat}, {os.cpu_count()} cores\n")
    print("| step | wall s | CPU s | x realtime (wall) | ratio to bare decode (wall) |")
    print("|---|---|---|---|---|")
    dur = info.duration_s or 30.0
    for name, label in (("decode", "`ffmpeg -i master -f null -`"), ("qc", "deliver `qc_master` (all checks)"),
                        ("html", "HTML report")):
        w, c = med[name]
        print(f"| {label} | {w:.2f} | {c:.2f} | {dur / w:.1f} | {w / med['decode'][0]:.2f} |")
    print(f"\n**QC / bare decode = {ratio:.2f}** (target <= {TARGET_RATIO}); with the HTML report "
          f"{ratio_html:.2f}. Findings: {len(qc.findings)} ({errors} errors).")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
