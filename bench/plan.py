"""Delivery-plan benchmark: one ``deliver run`` for three distributors (netflix, amazon, ebu-r128) against three
separate ``deliver run``s of the same title, wall time end to end (CLI, Prefect, layback, QC, deliverables,
packages, delivery documents, schedule).

Run: ``.venv/bin/python -m bench.plan [--repeat 1] [--programme-s 60] [--keep DIR]`` (or ``make bench``; exit 1
when the plan run takes more than 0.6x the three separate runs). ``--smoke`` uses 3 s of 320x180 picture (a
check that the script runs, not a figure).

The master is 1920x1080p25 ProRes 422 HQ (25 fps: the one rate all three specs take; EBU R 128's spec is
25 only) with a 5.1 and a 2.0 mix, the programme ``--programme-s`` long after a 4 s head, its first frame at
10:00:00:00 (the EBU spec's; Netflix and Amazon set none). The mixes are at
-24 LUFS, which not every spec accepts: every run is ``--force``d, so each one makes every deliverable (the
work being compared) whatever its QC says. The plan run makes one layback, one analysis and one decode for all
three distributors' deliverables, and the ProRes mezzanine the three specs make identically once (hard-linked
into the other packages; their screeners and stems differ); the separate runs each do all of it. Runs
alternate, so machine load hits both alike. Every run starts from an empty output folder (nothing reused from an
earlier bench) and records into a catalog of its own under the bench folder, not the user's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import exit_code

PLAN_TARGET = 0.6
SPECS = ("netflix", "amazon", "ebu-r128")


def _deliver(args: list[str]) -> float:
    """Wall seconds of one ``deliver`` command (exit 0 expected: every run is forced)."""
    exe = Path(sys.executable).with_name("deliver")
    out = Path(args[args.index("--out") + 1])
    if out.exists():  # a kept folder from an earlier bench: its verified outputs would be reused, not made
        shutil.rmtree(out)
    env = {**os.environ, "DELIVER_CATALOG_URL": f"sqlite:///{out.parent / 'bench-catalog.sqlite'}"}
    t0 = time.perf_counter()
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"deliver {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall


def _master_reads(log: Path, married: str) -> dict[str, int]:
    """ffmpeg commands of a run's log that read (``-i``) the married master, by purpose."""
    counts = {"analysis (picture)": 0, "deliverables": 0}
    for line in log.read_text().splitlines():
        m = re.search(r"\$ (\S*ffmpeg .*)$", line)
        if m is None or f"-i {married}" not in m.group(1) or " -ss " in m.group(1):
            continue
        if "rawvideo" in m.group(1):
            counts["analysis (picture)"] += 1
        elif ".partial" in m.group(1) and "-filter_complex" in m.group(1):
            counts["deliverables"] += 1
    return counts


def _steps(plan_report: Path, separate_reports: list[Path]) -> None:
    """Each step's wall and CPU seconds (the run record's ``costs``) in the plan run and in the separate runs (first
    repeat): where the saving comes from. CPU seconds are less disturbed by other load than wall time. The QC step
    here is the flows' own figure for QC of three specs vs one."""
    def steps(path: Path) -> dict[str, tuple[float, float]]:
        costs = json.loads(path.read_text()).get("costs") or {}
        return {s["step"]: (s["wall_s"], s["cpu_s"]) for s in costs.get("steps", [])}

    plan, separate = steps(plan_report), [steps(p) for p in separate_reports]
    print("\n| step (run record) | plan run wall / CPU s | " + " | ".join(f"{s} run wall / CPU s" for s in SPECS)
          + " | plan / three (CPU) |")
    print("|---|---|" + "---|" * (len(SPECS) + 1))
    for step in dict.fromkeys([*plan, *(k for w in separate for k in w)]):
        p, alone = plan.get(step, (0.0, 0.0)), [w.get(step, (0.0, 0.0)) for w in separate]
        three_cpu = sum(c for _, c in alone)
        ratio = f"{p[1] / three_cpu:.2f}" if three_cpu else ""
        print(f"| {step} | {p[0]:.1f} / {p[1]:.1f} | " + " | ".join(f"{w:.1f} / {c:.1f}" for w, c in alone)
              + f" | {ratio} |")
    total = sum(c for _, c in plan.values()), sum(c for w in separate for _, c in w.values())
    if total[1]:
        print(f"\nsteps' CPU seconds: plan run {total[0]:.1f}, three runs {total[1]:.1f}: {total[0] / total[1]:.2f} "
              "(Prefect and start-up not included)")
    if plan.get("qc") and separate[0].get("qc"):
        print(f"QC step, {len(SPECS)} specs in the plan run / {SPECS[0]} alone: wall "
              f"{plan['qc'][0] / separate[0]['qc'][0]:.2f}, CPU {plan['qc'][1] / separate[0]['qc'][1]:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--programme-s", type=float, default=60.0)
    parser.add_argument("--smoke", action="store_true", help="tiny media: check the script runs (no figures)")
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args(argv)

    from tasks.media.synth import MasterSpec, make_sample_set

    tmp = tempfile.TemporaryDirectory(prefix="bench-plan-") if args.keep is None else None
    out = args.keep or Path(tmp.name if tmp else ".")
    out.mkdir(parents=True, exist_ok=True)
    programme_s = 3.0 if args.smoke else args.programme_s
    size = (320, 180) if args.smoke else (1920, 1080)
    repeat = 1 if args.smoke else args.repeat
    t0 = time.perf_counter()
    media_dir = out / "media"
    if not (media_dir / "master.mov").exists():
        make_sample_set(media_dir, layout="5.1", stereo=True, master=MasterSpec.fast_prores(
            width=size[0], height=size[1], programme_s=programme_s, head_s=4, ffoa_timecode="10:00:00:00"))
    master, mixes = media_dir / "master.mov", [media_dir / "mix_51.wav", media_dir / "mix_20.wav"]
    print(f"master: {master.stat().st_size / 1e6:.0f} MB, generated in {time.perf_counter() - t0:.0f} s", flush=True)
    common = ["--master", str(master), "--title", "BENCH", "--date", "2026-12-07", "--force"]
    for m in mixes:
        common += ["--mix", str(m)]

    separate, together = [], []
    for k in range(repeat):
        separate.append(sum(_deliver(["run", "--spec", s, "--out", str(out / f"sep{k}-{s}"), *common]) for s in SPECS))
        plan_out = out / f"plan{k}"
        together.append(_deliver(["run", *(a for s in SPECS for a in ("--spec", s)), "--out", str(plan_out),
                                  *common]))
        print(f"repeat {k + 1}: three runs {separate[-1]:.1f} s, one plan run {together[-1]:.1f} s", flush=True)
    ratio = statistics.median(together) / statistics.median(separate)

    report = json.loads((out / "plan0" / "report.json").read_text())
    married = report["distributors"][0]["layback"]
    reads = _master_reads(out / "plan0" / "work" / "deliver.log", married)
    shared = {d["name"]: d["shared"] for d in report["distributors"]}
    print(f"\n{programme_s:g} s programme (+4 s head), {size[0]}x{size[1]}p25 ProRes 422 HQ, 5.1 + 2.0, "
          f"{', '.join(SPECS)}, median of {repeat}, {os.cpu_count()} cores"
          f"{' (SMOKE: not a figure)' if args.smoke else ''}\n")
    print("| what | wall s | ratio | target |")
    print("|---|---|---|---|")
    print(f"| three separate `deliver run --force` | {statistics.median(separate):.1f} | | |")
    print(f"| one `deliver run --spec … ×3 --force` (a plan) | {statistics.median(together):.1f} | {ratio:.2f} | "
          f"<= {PLAN_TARGET} |")
    print(f"\nplan run: ffmpeg reads of the married master {reads}; placed from another package: {shared}")
    _steps(out / "plan0" / "report.json", [out / f"sep0-{s}" / "report.json" for s in SPECS])
    if tmp is not None:
        tmp.cleanup()
    if args.smoke:
        return 0
    return exit_code([] if ratio <= PLAN_TARGET else [f"plan run {ratio:.2f}x three separate runs "
                                                       f"(target <= {PLAN_TARGET})"])


if __name__ == "__main__":
    sys.exit(main())
