"""Delivery-plan benchmarks: QC for three specs from one analysis vs QC for one, and a three-distributor plan
run vs three separate ``deliver run``s of the same title.

Run: ``.venv/bin/python -m bench.plan [--repeat 3] [--programme-s 26] [--keep DIR]`` (or ``make bench``;
exit 1 when a target is missed). ``--smoke`` uses a few seconds of the demo's 320x180 picture (a check
that the script runs, not a figure).

* ``qc_masters(info, [demo, partner, strict])`` vs ``qc_master(info, demo)`` on one married master: the
  picture is decoded and measured once and each audio stream decoded once for all three; target <= 1.15x.
* ``deliver run --plan`` (demo, partner with a watermarked screener and the same mezzanine, demo again for a
  second recipient) vs the same three as separate ``deliver run``s, wall time end to end including
  Prefect; target <= 0.6x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QC_TARGET = 1.15
PLAN_TARGET = 0.6
TEST_SPECS = Path(__file__).resolve().parent.parent / "tests" / "plan" / "specs"


def _wall(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def _deliver(args: list[str]) -> None:
    exe = Path(sys.executable).with_name("deliver")
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"deliver {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--programme-s", type=float, default=26.0)
    parser.add_argument("--smoke", action="store_true", help="tiny media: check the script runs (no figures)")
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    args = parser.parse_args(argv)

    from specs.loader import load_spec
    from tasks.layback import layback, plan_layback
    from tasks.media.probe import probe
    from tasks.media.synth import MasterSpec, make_sample_set
    from tasks.qc.engine import qc_master, qc_masters

    tmp = tempfile.TemporaryDirectory(prefix="bench-plan-") if args.keep is None else None
    out = args.keep or Path(tmp.name if tmp else ".")
    out.mkdir(parents=True, exist_ok=True)
    programme_s = 2.0 if args.smoke else args.programme_s
    repeat = 1 if args.smoke else args.repeat
    media = make_sample_set(out / "media", layout="5.1", stereo=True,
                            master=MasterSpec(programme_s=programme_s))
    specs = [load_spec("demo"), load_spec(TEST_SPECS / "partner.yaml"), load_spec(TEST_SPECS / "strict.yaml")]
    plan = plan_layback(probe(media.master), [probe(media.mixes["5.1"]), probe(media.mixes["2.0"])], specs[0])
    married = out / "married.mov"
    if not married.exists():
        layback(plan, specs[0], married)
    info = probe(married)

    one, three = [], []
    for _ in range(repeat):  # alternating, so machine load hits both alike
        one.append(_wall(lambda: qc_master(info, specs[0])))
        three.append(_wall(lambda: qc_masters(info, specs)))
    qc_ratio = statistics.median(three) / statistics.median(one)

    mixes = [str(media.mixes["5.1"]), str(media.mixes["2.0"])]
    dists = [{"spec": "demo"}, {"spec": str(TEST_SPECS / "partner.yaml"), "recipient": "ACME"},
             {"spec": "demo", "name": "demo-second", "recipient": "BETA"}]
    plan_file = out / "bench.plan.yaml"
    plan_file.write_text(json.dumps({"title": "BENCH", "master": str(media.master), "mixes": mixes,
                                     "distributors": dists}))
    separate, together = [], []
    for k in range(repeat):
        def three_runs(k: int = k) -> None:
            for n, d in enumerate(dists):
                run = ["run", "--master", str(media.master), "--spec", d["spec"], "--title", "BENCH",
                       "--out", str(out / f"sep{k}-{n}"), "--date", "2026-12-07"]
                for m in mixes:
                    run += ["--mix", m]
                if "recipient" in d:
                    run += ["--recipient", d["recipient"]]
                _deliver(run)
        separate.append(_wall(three_runs))
        together.append(_wall(lambda k=k: _deliver(["run", "--plan", str(plan_file), "--out", str(out / f"plan{k}"),
                                                    "--date", "2026-12-07"])))
    plan_ratio = statistics.median(together) / statistics.median(separate)

    print(f"\n{programme_s:g} s programme, demo picture, 5.1 + 2.0, median of {repeat}, {os.cpu_count()} cores"
          f"{' (SMOKE: not a figure)' if args.smoke else ''}\n")
    print("| what | wall s | ratio | target |")
    print("|---|---|---|---|")
    print(f"| QC, one spec (`qc_master`) | {statistics.median(one):.2f} | | |")
    print(f"| QC, three specs (`qc_masters`) | {statistics.median(three):.2f} | {qc_ratio:.2f} | <= {QC_TARGET} |")
    print(f"| three separate `deliver run` | {statistics.median(separate):.2f} | | |")
    print(f"| one `deliver run --plan`, three distributors | {statistics.median(together):.2f} | {plan_ratio:.2f} | "
          f"<= {PLAN_TARGET} |")
    if tmp is not None:
        tmp.cleanup()
    if args.smoke:
        return 0
    return 0 if qc_ratio <= QC_TARGET and plan_ratio <= PLAN_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
