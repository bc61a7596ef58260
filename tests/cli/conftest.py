"""Command-line tests on the installed console script (``.venv/bin/deliver``) in subprocesses.

They share one local Prefect server (:mod:`flows.server`), started by the first ``deliver qc``/``run``
under the test session's ``DELIVER_HOME``; tests/conftest.py stops it when the session ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DELIVER = Path(sys.executable).parent / "deliver"


def deliver(*args: str, cwd: Path | None = None, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    """``deliver ARGS`` as a user runs it, stdout and stderr captured; PREFECT_API_URL unset."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run([str(DELIVER), *args], capture_output=True, text=True, timeout=timeout_s, cwd=cwd,
                          env=env, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def clip(tmp_path_factory) -> Path:
    """A married master that passes the demo spec: 2 s of programme, 5.1 + 2.0 (bench/startup.py's clip)."""
    from bench.startup import make_clip

    return make_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="session")
def sample(tmp_path_factory):
    """Picture master + 5.1 and 2.0 mixes (the demo spec's inputs) for ``deliver run``."""
    from tasks.media.synth import MasterSpec, make_sample_set

    return make_sample_set(tmp_path_factory.mktemp("sample"), layout="5.1", stereo=True,
                           master=MasterSpec(programme_s=2, head_s=3))
