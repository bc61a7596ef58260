"""A spec is parsed once per process (a run's pre-flight check and its flow share the load), and
read again when the file or a file it extends changes."""

from __future__ import annotations

import os
from pathlib import Path

from specs.loader import load_spec

DEMO = Path(__file__).resolve().parents[2] / "specs" / "demo.yaml"


CHILD = """schema: 1
name: child
extends: base.yaml
description: the demo spec under another name
provenance:
  document: test spec
  version: "1"
  confidence: NC
"""


def _write(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_a_spec_is_loaded_once_and_again_after_an_edit_of_its_base(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    child = tmp_path / "child.yaml"
    demo = DEMO.read_text()
    assert 'ffoa_timecode: "01:00:00:00"' in demo
    _write(base, demo, 1_000_000_000)
    _write(child, CHILD, 1_000_000_000)
    first = load_spec(child)
    assert load_spec(child) is first
    assert first.name == "child" and first.timing.ffoa_timecode == "01:00:00:00"

    _write(base, demo.replace('ffoa_timecode: "01:00:00:00"', 'ffoa_timecode: "10:00:00:00"'), 2_000_000_000)
    again = load_spec(child)
    assert again is not first
    assert again.timing.ffoa_timecode == "10:00:00:00"
