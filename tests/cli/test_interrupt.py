"""Ctrl-C during ``deliver run``: one line and exit 130 in the terminal, nothing partial and no empty
folder left, and in the Prefect UI a Cancelled run (not Crashed) saying what was cleaned up, its
interrupted step Cancelled, no crash lines in its logs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

from tests.cli.conftest import DELIVER, deliver

SLOW_FFMPEG = """#!/bin/sh
# Throttle only the deliverable transcodes of the INT and KILLED titles, so there is one to interrupt.
case "$*" in
  */INT_v1/*|*/KILLED_v1/*) exec "{ffmpeg}" -readrate 0.05 "$@" ;;
  *) exec "{ffmpeg}" "$@" ;;
esac
"""


def _default_sigint() -> None:
    """A terminal's foreground job takes Ctrl-C; a test run in the background inherits SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _slow_run(sample, tmp_path, title: str) -> tuple[subprocess.Popen[str], object]:
    """``deliver run`` of ``title`` with its deliverable transcodes throttled, once one is writing."""
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(SLOW_FFMPEG.format(ffmpeg=shutil.which(os.environ.get("FFMPEG", "ffmpeg"))))
    wrapper.chmod(0o755)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"FFMPEG": str(wrapper)}
    proc = subprocess.Popen([str(DELIVER), "run", "--master", str(sample.master), "--mix", str(sample.mixes["5.1"]),
                             "--mix", str(sample.mixes["2.0"]), "--spec", "demo", "--title", title, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=env, start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 300
    while not list((out / f"{title}_v1").glob("*.partial*")):  # a deliverable transcode is writing
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.3)
    time.sleep(1)
    return proc, out


def test_ctrl_c_during_the_deliverables_reads_as_cancelled(sample, tmp_path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import read_server

    proc, out = _slow_run(sample, tmp_path, "INT")
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends the foreground process group on Ctrl-C
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "deliver: interrupted; nothing was written under a final name"
    assert "Traceback" not in stderr
    assert not list(out.rglob("*.partial*"))
    assert [d for d in out.rglob("*") if d.is_dir() and not any(d.iterdir())] == []

    log = (out / "work" / "deliver.log").read_text()
    run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", log).group(1)
    server = read_server()
    assert server is not None
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
        steps = {t.name: t.state.type.value for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))}
        logs = [r.message for r in client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)]
    assert state.is_cancelled(), state
    assert state.message == f"interrupted from the terminal (Ctrl-C); ffmpeg stopped, no partial file left under {out}"
    assert [s for n, s in steps.items() if n.startswith("deliverables")] == ["CANCELLED"], steps
    assert "CRASHED" not in steps.values(), steps
    assert not [m for m in logs if m.startswith(("Crash detected", "Finished in state Crashed"))], logs[-10:]
    assert "Finished: cancelled; ffmpeg and partial files are cleaned up next" in logs, logs[-10:]


def test_a_killed_run_left_running_is_marked_crashed_by_the_next_command(sample, clip, tmp_path) -> None:
    """SIGKILL gives the process no chance to record anything (the OOM killer, a closed SSH session): the
    server still says Running. The next deliver command marks that run Crashed, with its unfinished step,
    saying what happened and how to resume, and removes the dead command's lease."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.leases import leases_dir
    from flows.server import read_server

    proc, out = _slow_run(sample, tmp_path, "KILLED")
    log = (out / "work" / "deliver.log").read_text()
    run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", log).group(1)
    assert (leases_dir() / f"{run_id}.json").is_file()  # held while the command runs
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its ffmpeg, no handler runs
    proc.wait(timeout=30)
    server = read_server()
    assert server is not None
    with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).state.is_running()  # what the UI showed before this change

        done = deliver("qc", str(clip), "--spec", "demo", "--json", str(tmp_path / "qc.json"))
        assert done.returncode == 0, done.stderr
        state = client.read_flow_run(run_id).state
        steps = {t.name: t.state.type.value for t in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))}
    assert state.is_crashed(), state
    assert state.message.startswith(f"the deliver command running it (pid {proc.pid} on ") and \
        state.message.endswith("run the same command again: it resumes from the finished steps"), state.message
    assert [s for n, s in steps.items() if n.startswith("deliverables")] == ["CRASHED"], steps
    assert "RUNNING" not in steps.values() and "PENDING" not in steps.values(), steps
    assert not (leases_dir() / f"{run_id}.json").exists()
