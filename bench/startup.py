"""Start-up benchmark: the fixed cost of ``deliver qc``, i.e. what a command adds to the QC work itself.

Run: ``.venv/bin/python -m bench.startup [--repeat 5]`` (or ``make bench``; exit 1 when the fixed cost
is above 3 s).

Generates (:mod:`tasks.media.synth`, laid back with :mod:`tasks.layback`) a 320x180 25p ProRes master
with 2 s of programme after the shortest head the generator makes (3 s: bars, countdown, 2-pop), with
the demo spec's 5.1 and 2.0 tracks. Then, alternating so machine load hits both alike, ``--repeat``
times each:

* ``deliver qc CLIP --spec demo`` as a user types it: a fresh process, the console script, the local
  Prefect server of :mod:`flows.server` (the flow run, its task runs and artifacts recorded);
* ``qc_master`` of the same clip in this process (imports warm): the QC work alone.

Fixed cost = median(``deliver qc``) - median(``qc_master``). The first ``deliver qc`` starts the local
server (its own ``DELIVER_HOME`` in a temporary folder) and is reported on its own row; the server is
stopped at the end. With ``PREFECT_API_URL`` set, that server is used instead (the table says so).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TARGET_FIXED_S = 3.0


def _cpu_s(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def make_clip(out: Path) -> Path:
    """The married 2 s-programme clip of the module docstring."""
    from specs.loader import load_spec
    from tasks.layback import MixInput, layback, plan_layback
    from tasks.media.probe import probe
    from tasks.media.synth import MasterSpec, make_sample_set

    spec = load_spec("demo")
    media = make_sample_set(out / "media", layout="5.1", stereo=True, master=MasterSpec(programme_s=2, head_s=3))
    mixes = [(MixInput(path=str(p)), probe(p, "mix")) for p in media.mixes.values()]
    plan = plan_layback(probe(media.master, "picture master"), mixes, spec)
    clip = out / "clip.mov"
    layback(plan, spec, clip)
    return clip


@contextmanager
def temporary_home(prefix: str) -> Iterator[Path]:
    """A temporary folder whose ``deliver-home`` is DELIVER_HOME meanwhile (restored after). The local Prefect
    server a run starts there (:mod:`flows.server`) is stopped at the end; a ``PREFECT_API_URL`` server is
    left alone."""
    from flows.server import stop_server

    configured = os.environ.get("PREFECT_API_URL")
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp_name:
        tmp = Path(tmp_name)
        saved_home = os.environ.get("DELIVER_HOME")
        os.environ["DELIVER_HOME"] = str(tmp / "deliver-home")
        try:
            yield tmp
        finally:
            if not configured:
                stop_server()
            if saved_home is None:
                os.environ.pop("DELIVER_HOME", None)
            else:
                os.environ["DELIVER_HOME"] = saved_home


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from specs.loader import load_spec
    from tasks.media.probe import probe
    from tasks.qc.engine import qc_master

    load_before = os.getloadavg()[0]
    deliver = Path(sys.executable).parent / "deliver"
    configured = os.environ.get("PREFECT_API_URL")
    with temporary_home("bench-startup-") as tmp:
        clip = make_clip(tmp)
        spec, info = load_spec("demo"), probe(clip, "master")
        qc_master(info, spec)  # warm: imports and caches, as in a running process

        cpu: dict[str, list[float]] = {"cli": [], "qc": []}

        def cli(n: int) -> float:
            c0, t0 = _cpu_s(resource.RUSAGE_CHILDREN), time.perf_counter()
            proc = subprocess.run([str(deliver), "qc", str(clip), "--spec", "demo", "--json",
                                   str(tmp / f"qc{n}.json")], capture_output=True, text=True, timeout=600)
            wall = time.perf_counter() - t0
            cpu["cli"].append(_cpu_s(resource.RUSAGE_CHILDREN) - c0)
            if proc.returncode != 0:
                raise SystemExit(f"deliver qc exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
            return wall

        first = cli(0)
        walls: list[float] = []
        inproc: list[float] = []
        for n in range(1, args.repeat + 1):
            walls.append(cli(n))
            c0, t0 = _cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN), time.perf_counter()
            qc_master(info, spec)
            inproc.append(time.perf_counter() - t0)
            cpu["qc"].append(_cpu_s(resource.RUSAGE_SELF) + _cpu_s(resource.RUSAGE_CHILDREN) - c0)
    load_after = os.getloadavg()[0]
    cmd_s, qc_s = statistics.median(walls), statistics.median(inproc)
    fixed = cmd_s - qc_s
    api = f"the configured server {configured}" if configured else "the local server (flows.server), already up"
    print(f"\n`deliver qc` of a 2 s-programme 320x180 ProRes clip with 5.1 + 2.0, median of {args.repeat}, "
          f"{os.cpu_count()} cores, API: {api}\n")
    cpu_cli, cpu_qc = statistics.median(cpu["cli"][1:]), statistics.median(cpu["qc"])
    print("| what | wall s | CPU s (this side; the server's own CPU not counted) |")
    print("|---|---|---|")
    print(f"| first `deliver qc` (starts the local server) | {first:.2f} | {cpu['cli'][0]:.2f} |")
    print(f"| `deliver qc` (median; runs {', '.join(f'{w:.2f}' for w in walls)}) | {cmd_s:.2f} | {cpu_cli:.2f} |")
    print(f"| in-process `qc_master` (median) | {qc_s:.2f} | {cpu_qc:.2f} |")
    print(f"| **fixed cost** | **{fixed:.2f}** | {cpu_cli - cpu_qc:.2f} |")
    print(f"\nFixed cost {fixed:.2f} s (target <= {TARGET_FIXED_S} s). Load average (1 min) {load_before:.2f} "
          f"before, {load_after:.2f} after: figures taken under load from other jobs are not the command's.")
    return 0 if fixed <= TARGET_FIXED_S else 1


if __name__ == "__main__":
    sys.exit(main())
