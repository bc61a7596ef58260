"""QC benchmarks: the whole ``qc_master`` vs a bare ``ffmpeg -i master -f null -`` decode, and QC for three
distributors' specs from one analysis vs QC for one, same run.

Run: ``.venv/bin/python -m bench.qc [--repeat 3] [--keep DIR]`` (or ``make bench``; exit 1 when
QC takes more than 2.5x the bare decode's wall time, or QC for three specs more than 1.15x QC for one).
``--smoke`` uses 4 s of 320x180 picture (a check that the script runs, not a figure).

Generates a 30 s 1920x1080p25 ProRes 422 HQ master (4 s head of bars/countdown/2-pop, 26 s of
programme) with a 5.1 48 kHz 24-bit mix laid back by :mod:`tasks.layback`, then times, median of
``--repeat`` runs each, alternating so machine load hits both alike:

* ``ffmpeg -i master.mov -f null -``: decodes picture and audio, nothing else (the floor);
* ``qc_master``: metadata, every picture check from one decode, the audio decode (loudness and
  signal checks) running alongside it, 2-pop sync — everything report.json holds;
* the HTML report of that result (thumbnails are grabbed only for findings; none on a clean master).

Prints a markdown table with wall and CPU seconds and the ratio.

Then, on a married master of the same picture with a 5.1 and a 2.0 mix (what a plan's distributors take):

* ``qc_master(netflix)``: QC for one spec, the first of the plan bench's three;
* ``qc_masters([netflix, amazon, ebu-r128])``: what ``deliver run`` does for a three-distributor plan
  (``qc_specs_step``): the picture decoded and measured once, each audio stream decoded once per distinct
  meter setting (Netflix and Amazon gate on dialogue, EBU R 128 does not), every spec's rules on the shared
  measurements; target <= 1.15x the one spec. The other two specs alone are timed too, for the table.
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
from typing import Any

from bench import exit_code

TARGET_RATIO = 2.5
SPECS_TARGET = 1.15
SPECS = ("netflix", "amazon", "ebu-r128")


def _cpu_s() -> float:
    """CPU seconds of this process and its waited-for children (ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    c0, t0 = _cpu_s(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, _cpu_s() - c0


def _demo_spec(size: tuple[int, int]) -> Any:
    """The demo spec at the bench's picture size, its 5.1 track only (the master of the first table)."""
    from specs.loader import load_spec

    spec = load_spec("demo")
    return spec.model_copy(update={
        "picture": spec.picture.model_copy(update={"width": size[0], "height": size[1]}),
        "audio": spec.audio.model_copy(update={"tracks": spec.audio.tracks[:1]})})


def make_master(out: Path, size: tuple[int, int] = (1920, 1080), programme_s: float = 26) -> tuple[Path, Any]:
    """``out/master.mov``: the picture with the 5.1 mix laid back (and the 2.0 mix written beside it)."""
    from tasks.layback import layback, plan_layback
    from tasks.media.probe import probe
    from tasks.media.synth import MasterSpec, make_sample_set

    spec = _demo_spec(size)
    media = make_sample_set(out / "media", layout="5.1", stereo=True, master=MasterSpec.fast_prores(
        width=size[0], height=size[1], programme_s=programme_s, head_s=4))
    plan = plan_layback(probe(media.master), [probe(media.mixes["5.1"])], spec)
    married = out / "master.mov"
    layback(plan, spec, married)
    return married, spec


def make_plan_master(out: Path) -> Path:
    """``out/master-51-20.mov``: the same picture with the 5.1 and the 2.0 mix, as a plan's layback makes it."""
    from specs.loader import load_spec
    from tasks.layback import layback, plan_layback
    from tasks.media.probe import probe

    married = out / "master-51-20.mov"
    if married.exists():
        return married
    media = out / "media"
    if not (media / "mix_20.wav").exists():
        raise SystemExit(f"{media} has no mix_20.wav (kept from an older bench): use a fresh --keep folder")
    spec = load_spec(SPECS[0])
    plan = plan_layback(probe(media / "master.mov"), [probe(media / "mix_51.wav"), probe(media / "mix_20.wav")],
                        spec)
    layback(plan, spec, married)
    return married


def qc_specs(out: Path, repeat: int) -> tuple[float, list[str]]:
    """QC for three specs from one analysis vs QC for each alone (table printed); the ratio to the first."""
    from specs.loader import load_spec
    from tasks.media.probe import probe
    from tasks.qc.engine import qc_master, qc_masters

    married = make_plan_master(out)
    info = probe(married)
    specs = [load_spec(n) for n in SPECS]
    alone: dict[str, list[tuple[float, float]]] = {n: [] for n in SPECS}
    together: list[tuple[float, float]] = []
    for _ in range(repeat):  # alternating, so machine load hits all alike
        for name, spec in zip(SPECS, specs, strict=True):
            alone[name].append(_timed(lambda spec=spec: qc_master(info, spec)))
        together.append(_timed(lambda: qc_masters(info, specs)))
    med = {n: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for n, v in alone.items()}
    three = (statistics.median(w for w, _ in together), statistics.median(c for _, c in together))
    ratio = three[0] / med[SPECS[0]][0]
    print(f"\nQC for several specs, same picture with 5.1 + 2.0 laid back ({married.stat().st_size / 1e6:.0f} MB), "
          f"median of {repeat}\n")
    print("| QC | wall s | CPU s | ratio to one spec (wall) |")
    print("|---|---|---|---|")
    for name in SPECS:
        print(f"| `qc_master`, {name} alone | {med[name][0]:.2f} | {med[name][1]:.2f} | "
              f"{med[name][0] / med[SPECS[0]][0]:.2f} |")
    print(f"| `qc_masters`, {' + '.join(SPECS)} | {three[0]:.2f} | {three[1]:.2f} | **{ratio:.2f}** |")
    slowest = max(w for w, _ in med.values())
    print(f"\n**QC for {len(SPECS)} specs / QC for {SPECS[0]} alone = {ratio:.2f}** wall (target <= {SPECS_TARGET}); "
          f"{three[1] / med[SPECS[0]][1]:.2f} in CPU seconds; to the slowest alone {three[0] / slowest:.2f} wall.")
    return ratio, [] if ratio <= SPECS_TARGET else [f"QC for {len(SPECS)} specs {ratio:.2f}x QC for one "
                                                     f"(target <= {SPECS_TARGET})"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.qc", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this folder")
    parser.add_argument("--smoke", action="store_true", help="tiny media: check the script runs (no figures)")
    args = parser.parse_args(argv)
    size, programme_s = ((320, 180), 4.0) if args.smoke else ((1920, 1080), 26.0)
    repeat = 1 if args.smoke else args.repeat

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
        spec = _demo_spec(size)
    else:
        married, spec = make_master(out, size, programme_s)
    print(f"master: {married} ({married.stat().st_size / 1e6:.0f} MB, generated in "
          f"{time.perf_counter() - t0:.0f} s)", flush=True)
    info = probe(married)
    results: dict[str, list[tuple[float, float]]] = {"decode": [], "qc": [], "html": []}
    qc = None
    for _ in range(repeat):
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
    print(f"\n{programme_s + 4:g} s {size[0]}x{size[1]}p25 ProRes 422 HQ + 5.1 PCM, median of {repeat}, "
          f"{os.cpu_count()} cores{' (SMOKE: not a figure)' if args.smoke else ''}\n")
    print("| step | wall s | CPU s | x realtime (wall) | ratio to bare decode (wall) |")
    print("|---|---|---|---|---|")
    dur = info.duration_s or 30.0
    for name, label in (("decode", "`ffmpeg -i master -f null -`"), ("qc", "deliver `qc_master` (all checks)"),
                        ("html", "HTML report")):
        w, c = med[name]
        print(f"| {label} | {w:.2f} | {c:.2f} | {dur / w:.1f} | {w / med['decode'][0]:.2f} |")
    print(f"\n**QC / bare decode = {ratio:.2f}** (target <= {TARGET_RATIO}); with the HTML report "
          f"{ratio_html:.2f}. Findings: {len(qc.findings)} ({errors} errors).")
    _specs_ratio, specs_misses = qc_specs(out, repeat)
    if tmp is not None:
        tmp.cleanup()
    if args.smoke:
        return 0
    return exit_code(([] if ratio <= TARGET_RATIO else [f"QC {ratio:.2f}x the bare decode (target <= {TARGET_RATIO})"])
                     + specs_misses)


if __name__ == "__main__":
    sys.exit(main())
