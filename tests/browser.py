"""Headless Chromium (Debian's chromium package) for tests that render pages: one command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tasks.documents import chromium_binary, chromium_command

__all__ = ["CHROMIUM", "chromium"]

CHROMIUM = chromium_binary()


def chromium(*args: str, tmp: Path, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throw-away profile under ``tmp`` (no network chatter, no first-run UI)."""
    assert CHROMIUM is not None, "Debian's chromium is not installed (apt-get install -y chromium)"
    cmd = chromium_command(CHROMIUM, *args, profile=tmp / "profile")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
