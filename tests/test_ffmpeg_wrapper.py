import time

import pytest

from specs.errors import BadInputError, FFmpegError
from tasks.media import ffmpeg as ff
from tasks.media.files import atomic_output, partial_name


def test_progress_callback_reports_media_time(tmp_path):
    reports = []
    out = tmp_path / "x.wav"
    ff.run_ffmpeg(["-f", "lavfi", "-i", "sine=frequency=1000:duration=3", "-y", str(out)], progress=reports.append)
    assert reports and reports[-1].done
    assert reports[-1].out_time_s == pytest.approx(3.0, abs=0.05)


def test_error_carries_command_and_stderr_tail(tmp_path):
    with pytest.raises(FFmpegError) as err:
        ff.run_ffmpeg(["-i", str(tmp_path / "missing.mov"), "-f", "null", "-"], what="decode of missing")
    assert "decode of missing failed" in str(err.value)
    assert "No such file" in err.value.stderr_tail
    assert err.value.cmd[0].endswith("ffmpeg")


def test_timeout_kills_the_process_group():
    started = time.monotonic()
    with pytest.raises(FFmpegError, match="timed out"):
        ff.run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc2=duration=60", "-f", "null", "-"], timeout_s=1.0)
    assert time.monotonic() - started < 10
    assert not ff._LIVE  # nothing left registered (and so nothing left running)


def test_pipe_early_exit_kills_ffmpeg():
    with ff.open_ffmpeg_pipe(["-f", "lavfi", "-i", "testsrc2=duration=600", "-f", "rawvideo", "pipe:1"]) as pipe:
        assert len(pipe.read(1024)) == 1024
        proc = next(iter(ff._LIVE))
    # leaving the block early (reader not at EOF) must not block or leak
    assert proc.poll() is not None
    assert not ff._LIVE


def test_ffmpeg_override_must_exist(monkeypatch):
    monkeypatch.setenv("FFMPEG", "/nonexistent/ffmpeg")
    with pytest.raises(Exception, match="FFMPEG"):
        ff.ffmpeg_binary()


def test_atomic_output_never_overwrites_and_cleans_up(tmp_path):
    final = tmp_path / "a.mov"
    with atomic_output(final) as tmp:
        assert tmp == partial_name(final)
        tmp.write_bytes(b"1")
    assert final.read_bytes() == b"1"
    with pytest.raises(BadInputError, match="never overwritten"):
        with atomic_output(final):
            pass
    other = tmp_path / "b.mov"
    with pytest.raises(RuntimeError):
        with atomic_output(other) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert not other.exists() and not partial_name(other).exists()
