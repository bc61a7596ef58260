"""Headless Chromium (Debian's chromium package) for tests that render pages: one command line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["CHROMIUM", "chromium"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str, tmp: Path, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Run headless Chromium with a throw-away profile under ``tmp`` (no network chatter, no first-run UI)."""
    assert CHROMIUM is not None, "Debian's chromium is not installed (apt-get install -y chromium)"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
