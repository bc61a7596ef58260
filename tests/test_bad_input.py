"""Bad input: one clear line on stderr, exit 2, no traceback, nothing under a final name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The installed console script, exactly as a user runs it.
DELIVER = [str(Path(sys.executable).parent / "deliver")]


def _deliver(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DELIVER, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def fake_mov(tmp_path: Path) -> Path:
    p = tmp_path / "master.mov"
    p.write_text("this is a text file, not a QuickTime movie\n")
    return p


def _assert_one_clean_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_qc_of_text_file_named_mov(fake_mov, tmp_path):
    proc = _deliver("qc", str(fake_mov), "--spec", "demo", "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    _assert_one_clean_line(proc, "master.mov", "not readable media")
    assert not (tmp_path / "r.json").exists()


def test_run_with_text_file_named_mov_writes_nothing(fake_mov, tmp_path):
    out = tmp_path / "out"
    proc = _deliver("run", "--master", str(fake_mov), "--mix", str(fake_mov), "--spec", "demo", "--title", "T",
                    "--out", str(out), cwd=tmp_path)
    _assert_one_clean_line(proc, "master.mov")
    assert not out.exists()


def test_missing_file_and_unknown_spec(tmp_path):
    _assert_one_clean_line(_deliver("qc", str(tmp_path / "nope.mov"), "--spec", "demo", cwd=tmp_path), "not found")
    real = tmp_path / "x.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(real)], check=True)
    proc = _deliver("qc", str(real), "--spec", "no-such-spec", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no-such-spec" in proc.stderr


def test_wrong_channel_count_mix_is_bad_input(tmp_path):
    from tasks.media.synth import WrongChannelCountDefect, make_sample_set

    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            defects=[WrongChannelCountDefect(channels=4)])
    out = tmp_path / "out"
    proc = _deliver("run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]), "--mix",
                    str(media.mixes["2.0"]), "--spec", "demo", "--title", "T", "--out", str(out), cwd=tmp_path)
    _assert_one_clean_line(proc, "4 channels")
    assert not out.exists()


def test_run_with_a_language_that_is_not_a_tag_is_bad_input(tmp_path):
    from tasks.media.synth import make_sample_set

    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True)
    out = tmp_path / "out"
    proc = _deliver("run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]), "--mix",
                    str(media.mixes["2.0"]), "--spec", "demo", "--title", "T", "--out", str(out), "--lang", "Deutsch",
                    cwd=tmp_path)
    _assert_one_clean_line(proc, "--lang 'Deutsch' is not a language tag")
    assert not out.exists()
