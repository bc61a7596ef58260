"""The ``mastering`` work pool of a post house, for tests: the PostgreSQL-backed server of
:mod:`tests.postgres`, ``prefect work-pool create mastering --type process``, the ``ffmpeg`` tag limit,
``prefect deploy --all --prefect-file configs/prefect.yaml`` and two ``prefect worker start`` processes
(``worker-a``, ``worker-b``), as docs/operations.md sets them up.

Use the session fixture ``mastering_pool`` (import it into a conftest or a test module, like the fixtures of
:mod:`tests.postgres`); it yields a :class:`MasteringPool`:

* ``pool.env`` — the environment of a client of this server (CLI, a flow run in a subprocess);
* ``pool.run_deployment("nightly-qc/nightly-qc", {"request": {...}})`` then ``pool.wait(run_id)``;
* ``pool.kill_worker(name)`` — SIGKILL a worker and every process under it (its flow-run processes and their
  ffmpeg, which run in sessions of their own), ``pool.start_worker(name)`` to replace it;
  ``pool.kill_held_run()`` — SIGKILL only the flow-run process of the held call (below), its worker left up;
* ``pool.hold(pattern)`` — the next ffmpeg/ffprobe call whose command line matches the shell glob ``pattern``
  says so (``pool.held()``) and sleeps instead of finishing, so a test can kill it mid-item;
* ``pool.task_runs(tag)``, ``pool.flow_runs(flow_name)``, ``pool.logs(run_id)`` — what the API recorded.

Workers heartbeat every ``HEARTBEAT_S`` seconds and poll every second, so a lost worker shows within a few
seconds instead of Prefect's default 30 s x 3.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.postgres import VENV_BIN, PrefectServer, wait_flow_run_final

REPO = Path(__file__).resolve().parents[2]
POOL = "mastering"
WORKERS = ("worker-a", "worker-b")
# Slots of the ffmpeg tag limit: 1, so that two item runs at once (one per worker) already contend for it.
# A killed task's slot comes back when its lease expires (60 s, checked every 15 s by the server).
FFMPEG_LIMIT = 1
RUNS_PER_WORKER = 2  # prefect worker start --limit
HEARTBEAT_S = 3

# The next call matching the glob on line 2 of $DELIVER_HOLD is held: with "after" on line 1 the real binary
# runs first (its partial output written), then the call marks "<hold>.reached" and sleeps until killed.
WRAPPER = """#!/bin/sh
real="{real}"
if [ -f "$DELIVER_HOLD" ]; then
  mode=$(sed -n 1p "$DELIVER_HOLD"); pattern=$(sed -n 2p "$DELIVER_HOLD")
  case "$*" in
    $pattern)
      rm -f "$DELIVER_HOLD"
      if [ "$mode" = after ]; then "$real" "$@"; fi
      touch "$DELIVER_HOLD.reached"; exec sleep 600 ;;
  esac
fi
exec "$real" "$@"
"""


@dataclass
class MasteringPool:
    server: PrefectServer
    root: Path
    env: dict[str, str]
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def hold_file(self) -> Path:
        return self.root / "hold"

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(VENV_BIN / "prefect"), *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, f"prefect {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start_worker(self, name: str) -> None:
        env = dict(self.env, DELIVER_WORKER_NAME=name)
        with self.log(name).open("ab") as log:
            self.workers[name] = subprocess.Popen(
                ["nice", str(VENV_BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", name,
                 "--limit", str(RUNS_PER_WORKER)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while not self.online(name):
            assert self.workers[name].poll() is None, self.log(name).read_text()[-3000:]
            assert time.monotonic() < deadline, f"{name} never heartbeated:\n{self.log(name).read_text()[-3000:]}"
            time.sleep(0.5)

    def online(self, name: str) -> bool:
        with self.client() as c:
            return any(w.name == name and w.status.value == "ONLINE" for w in c.read_workers_for_work_pool(POOL))

    def kill_worker(self, name: str) -> dict[int, str]:
        """SIGKILL the worker and every process under it at once (no handler runs: a machine lost); returns
        ``{pid: command line}`` of the processes killed."""
        proc = self.workers.pop(name)
        root = psutil.Process(proc.pid)
        procs = [root, *root.children(recursive=True)]
        cmdlines: dict[int, str] = {}
        for p in procs:
            try:
                cmdlines[p.pid] = " ".join(p.cmdline())
            except psutil.Error:
                cmdlines[p.pid] = ""
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=30)
        gone, alive = psutil.wait_procs(procs, timeout=30)
        assert not alive, f"survived SIGKILL: {[cmdlines[p.pid] for p in alive]}"
        return cmdlines

    def kill_held_run(self) -> tuple[str, dict[int, str]]:
        """SIGKILL the flow-run process that made the held ffmpeg call, and that call, leaving its worker up (a
        run's process lost to the OOM killer); returns the worker's name and ``{pid: command line}`` killed."""
        for name, proc in self.workers.items():
            for p in psutil.Process(proc.pid).children(recursive=True):
                if p.cmdline()[:2] == ["sleep", "600"]:
                    run = p.parent()
                    assert run is not None and run.pid != proc.pid, "the held call is not under a flow-run process"
                    procs = [run, p]
                    cmdlines = {q.pid: " ".join(q.cmdline()) for q in procs}
                    for q in procs:
                        q.send_signal(signal.SIGKILL)
                    gone, alive = psutil.wait_procs(procs, timeout=30)
                    assert not alive, f"survived SIGKILL: {[cmdlines[q.pid] for q in alive]}"
                    return name, cmdlines
        raise AssertionError("no held ffmpeg call under a worker")

    def stop(self) -> None:
        for name in list(self.workers):
            self.kill_worker(name)

    def hold(self, pattern: str, *, after: bool = False) -> None:
        Path(str(self.hold_file) + ".reached").unlink(missing_ok=True)
        self.hold_file.write_text(f"{'after' if after else 'before'}\n{pattern}\n")

    def held(self) -> bool:
        return Path(str(self.hold_file) + ".reached").exists()

    @contextmanager
    def client(self) -> Iterator[Any]:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.server.api_url}), get_client(sync_client=True) as c:
            yield c

    def run_deployment(self, name: str, parameters: dict[str, Any]) -> Any:
        with self.client() as c:
            dep = c.read_deployment_by_name(name)
            return c.create_flow_run_from_deployment(dep.id, parameters=parameters).id

    def wait(self, run_id: Any, timeout_s: float = 300) -> Any:
        """The flow run once final (AssertionError after ``timeout_s``)."""
        with self.client() as c:
            return wait_flow_run_final(c, run_id, timeout_s)

    def flow_runs(self, flow_name: str) -> list[Any]:
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        with self.client() as c:
            return c.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200)

    def logs(self, run_id: Any) -> str:
        """The messages the flow run sent to the API, one a line."""
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

        messages: list[str] = []
        with self.client() as c:
            while True:  # the API pages by 200
                page = c.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200,
                                   offset=len(messages))
                messages += [r.message for r in page]
                if len(page) < 200:
                    return "\n".join(messages)

    def task_runs(self, tag: str) -> list[Any]:
        from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterTags

        with self.client() as c:
            return c.read_task_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag])), limit=200)


def max_overlap(spans: list[tuple[Any, Any]]) -> int:
    """The most spans (start, end) open at one instant; an end at the instant another starts is not overlap."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda ev: (ev[0], ev[1]))
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


@pytest.fixture(scope="session")
def mastering_pool(pg_prefect_server, tmp_path_factory):
    """The pool, the ffmpeg limit, the deployments and two running workers (see the module docstring)."""
    root = tmp_path_factory.mktemp("pool")
    env = dict(pg_prefect_server.env(), DELIVER_ROOT=str(REPO), DELIVER_HOME=str(root / "deliver-home"),
               DELIVER_HOLD=str(root / "hold"), DELIVER_ARCHIVE_BACKOFF_S="1",
               PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_HEARTBEAT_SECONDS=str(HEARTBEAT_S),
               PREFECT_LOGGING_EXTRA_LOGGERS="deliver")
    for tool in ("ffmpeg", "ffprobe"):
        wrapper = root / f"{tool}-wrapper"
        real = shutil.which(os.environ.get(tool.upper(), tool))
        assert real, f"{tool} not on PATH"
        wrapper.write_text(WRAPPER.format(real=real))
        wrapper.chmod(0o755)
        env[tool.upper()] = str(wrapper)
    pool = MasteringPool(server=pg_prefect_server, root=root, env=env)
    pool.cli("work-pool", "create", POOL, "--type", "process")
    pool.cli("concurrency-limit", "create", "ffmpeg", str(FFMPEG_LIMIT))
    pool.cli("--no-prompt", "deploy", "--all", "--prefect-file", "configs/prefect.yaml", timeout=600)
    made = subprocess.run([str(VENV_BIN / "deliver"), "automation", "unresponsive"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0 and "is marked Crashed" in made.stdout, made.stdout + made.stderr
    try:
        for name in WORKERS:
            pool.start_worker(name)
        yield pool
    finally:
        pool.stop()
