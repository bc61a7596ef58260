"""A deliver process killed mid-transcode: its ffmpeg dies with it, no final name appears, a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from specs.loader import load_spec
from tasks.deliverables.make import transcode_all
from tasks.deliverables.naming import RunFields, deliverable_path
from tasks.media.files import PARTIAL_GLOB
from tasks.media.synth import MasterSpec, make_sample_set
from tests.deliverables.helpers import married

ROOT = Path(__file__).resolve().parents[2]
FIELDS = RunFields(title="FILM", version="v2", date="2031-01-02")


def _python(code: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _ffmpeg_children_of(pid: int) -> list[int]:
    """ffmpeg processes whose parent is ``pid`` (ffmpeg runs in its own session, so not by group)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
            if name == "ffmpeg" and int(rest[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_ffmpeg_dies_when_deliver_is_killed():
    proc = _python("""
        from tasks.media.ffmpeg import run_ffmpeg
        run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=s=320x180:d=3600", "-f", "null", "-"])
    """)
    try:
        assert _wait_for(lambda: _ffmpeg_children_of(proc.pid), 30), proc.stderr.read().decode()
        (child,) = _ffmpeg_children_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: only the kernel can stop the child now
        proc.wait()
        assert _wait_for(lambda: not _alive(child), 2.0), "ffmpeg outlived the deliver process that started it"
    finally:
        proc.kill()


def test_killed_transcode_leaves_no_final_name_and_the_rerun_makes_everything(tmp_path):
    spec = load_spec("ebu-r128")
    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            master=MasterSpec.fast_prores(width=1280, height=720, ffoa_timecode="10:00:00:00",
                                                          head_s=4, programme_s=8))
    master = married(media.master, list(media.mixes.values()), spec, tmp_path / "layback.mov")
    out = tmp_path / "pkg"
    finals = [deliverable_path(d, spec, out, FIELDS) for d in spec.deliverables]
    proc = _python(f"""
        from pathlib import Path
        from specs.loader import load_spec
        from tasks.media.probe import probe
        from tasks.deliverables.make import transcode_all
        from tasks.deliverables.naming import RunFields
        spec = load_spec("ebu-r128")
        transcode_all(spec.deliverables, spec, probe({str(master.path)!r}), Path({str(out)!r}),
                      fields=RunFields(title="FILM", version="v2", date="2031-01-02"))
    """)
    try:
        # Kill once ffmpeg has written into every partial file: mid-transcode.
        def partials_growing() -> bool:
            return len([p for p in out.glob(PARTIAL_GLOB) if p.stat().st_size > 0]) == len(finals)

        assert _wait_for(partials_growing, 60), proc.stderr.read().decode()
        children = _ffmpeg_children_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    assert children and _wait_for(lambda: not any(_alive(c) for c in children), 2.0)
    assert not any(p.exists() for p in finals)  # only partial files, never a final name
    rerun = transcode_all(spec.deliverables, spec, master, out, fields=FIELDS)
    assert rerun.ffmpeg_runs == 1 and not any(r.reused for r in rerun.deliverables)
    assert all("full decode clean" in r.checks for r in rerun.deliverables)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in finals)  # the partials were replaced
