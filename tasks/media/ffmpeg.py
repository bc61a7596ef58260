"""The one wrapper that runs ffmpeg and ffprobe.

Why one wrapper: Prefect does not kill a task's child processes when a run is cancelled from a
worker thread (PrefectHQ/prefect#20979, #17593), so every child starts in its own session/process
group and is killed as a group on timeout, cancel, KeyboardInterrupt or any exception. The command
line is logged, ``-progress`` is parsed into a callback, and the tail of stderr goes into errors.

Graphs are built with ffmpeg-python (``ffmpeg.input(...).output(...)``) and handed to
:func:`run_ffmpeg` as a stream, or as a plain argument list.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import io
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from specs.errors import FFmpegError, InfrastructureError
from tasks.media.files import PARTIAL_GLOB

__all__ = [
    "ffmpeg_pids_writing_under",
    "cleanup_after_cancel",
    "FFmpegProgress",
    "FFmpegResult",
    "ffmpeg_binary",
    "ffprobe_binary",
    "compile_args",
    "run_ffmpeg",
    "run_ffprobe_json",
    "open_ffmpeg_pipe",
    "read_exact",
    "kill_all_children",
    "input_position",
]

LOGGER = logging.getLogger("deliver.ffmpeg")
STDERR_TAIL_LINES = 25

#: strerror texts of a full filesystem (ENOSPC), a quota (EDQUOT) and a file-size limit (EFBIG, RLIMIT_FSIZE)
#: as ffmpeg prints them: the output's disk, not the input or the graph, is at fault.
DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")
#: ffprobe lines (at ``-v error``) saying a container's index is damaged although ffprobe exits 0 and lists
#: the streams: ISO/IEC 14496-12 §8.7.3 ``stsz``/``stco`` tables that do not describe the file, a missing
#: ``moov``. Every later read of such a file fails, so it is refused as corrupt media at the probe.
CORRUPT_INDEX_TEXTS = ("missing mandatory atoms", "broken header", "moov atom not found", "Invalid sample size",
                       "error reading header")
_TERMINATE_GRACE_S = 3.0

# Live children, so that a flow's ``finally`` can kill everything still running (Prefect does not
# interrupt the threads of a ThreadPoolTaskRunner on cancellation: PrefectHQ/prefect issue #20979).
_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


def ffmpeg_binary() -> str:
    """Path of ffmpeg: ``$FFMPEG`` or ``ffmpeg`` on PATH."""
    return _binary("FFMPEG", "ffmpeg")


def ffprobe_binary() -> str:
    """Path of ffprobe: ``$FFPROBE`` or ``ffprobe`` on PATH."""
    return _binary("FFPROBE", "ffprobe")


def _binary(env: str, default: str) -> str:
    name = os.environ.get(env) or default
    found = shutil.which(name)
    if not found:
        raise InfrastructureError(
            f"{default} not found (looked for {name!r}). Install it (Debian/Ubuntu: apt-get install ffmpeg) "
            f"or set {env} to its path."
        )
    return found


@dataclass(frozen=True)
class FFmpegProgress:
    """One ``-progress`` report. ``out_time_s`` is media time written so far."""

    frame: int
    fps: float
    out_time_s: float
    speed: float | None
    done: bool


@dataclass
class FFmpegResult:
    cmd: list[str]
    returncode: int
    stderr_tail: str
    wall_s: float
    stdout: bytes = b""
    progress: list[FFmpegProgress] = field(default_factory=list)


def compile_args(stream_or_args: Any) -> list[str]:
    """Arguments after the binary, from an ffmpeg-python stream or a list of strings."""
    if isinstance(stream_or_args, (list, tuple)):
        return [str(a) for a in stream_or_args]
    # ffmpeg-python: compile() returns [cmd, *args]; we supply our own binary.
    return list(stream_or_args.compile(cmd="ffmpeg"))[1:]


def _register(proc: subprocess.Popen[bytes]) -> None:
    with _LIVE_LOCK:
        _LIVE.add(proc)


def _unregister(proc: subprocess.Popen[bytes]) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's process group, then SIGKILL after a grace period."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=_TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_all_children() -> int:
    """Kill every ffmpeg/ffprobe still running from this process; returns how many were killed."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        _kill_group(proc)
    return len(live)


_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` run so that the kernel SIGKILLs it when deliver dies (Linux ``PR_SET_PDEATHSIG``).

    ffmpeg runs in its own process group (so we can stop it and its threads cleanly), which also means it
    outlives a deliver killed by SIGKILL, the OOM killer or a stopped container: an orphan that keeps
    encoding into a partial file the rerun is about to replace. util-linux ``setpriv`` makes the prctl call
    and execs ffmpeg (same pid). Not a Python ``preexec_fn``: that forces fork() and runs Python's at-fork
    handlers in the child of a threaded process (Prefect's reset its event-loop threads there), which can
    spin forever before exec. Elsewhere (no setpriv): ``cmd`` unchanged."""
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *cmd] if _SETPRIV else cmd


def _spawn(cmd: list[str], *, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    LOGGER.info("$ %s", shlex.join(cmd))
    if _SETPRIV and shutil.which(cmd[0]) is None:  # setpriv would start, then fail to exec it
        raise InfrastructureError(f"cannot start {cmd[0]}: not found or not executable. Check FFMPEG/FFPROBE "
                                  "and PATH.")
    try:
        proc = subprocess.Popen(  # list args, no shell
            _die_with_parent(cmd), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise InfrastructureError(f"cannot start {cmd[0]}: {exc}. Check FFMPEG/FFPROBE and PATH.") from exc
    _register(proc)
    return proc


def _drain_stderr(stream: IO[bytes], tail: collections.deque[str]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip()
        if line:
            tail.append(line)
            LOGGER.debug("ffmpeg: %s", line)


def _parse_progress_block(block: dict[str, str]) -> FFmpegProgress:
    def num(key: str, cast: Callable[[str], Any], default: Any) -> Any:
        try:
            return cast(block.get(key, ""))
        except ValueError:
            return default

    # out_time_us is the real microsecond count (out_time_ms is misnamed and also in µs).
    out_us = num("out_time_us", int, None)
    if out_us is None:
        out_us = num("out_time_ms", int, 0)
    speed_txt = block.get("speed", "").rstrip("x").strip()
    try:
        speed = float(speed_txt)
    except ValueError:
        speed = None
    return FFmpegProgress(
        frame=num("frame", int, 0),
        fps=num("fps", float, 0.0),
        out_time_s=max(out_us, 0) / 1e6,
        speed=speed,
        done=block.get("progress") == "end",
    )


def run_ffmpeg(
    graph: Any,
    *,
    progress: Callable[[FFmpegProgress], None] | None = None,
    timeout_s: float | None = None,
    capture_stdout: bool = False,
    what: str = "ffmpeg",
    input_read: tuple[str, Callable[[float], None]] | None = None,
) -> FFmpegResult:
    """Run ffmpeg with ``graph`` (an ffmpeg-python stream or argument list).

    Args:
        graph: the job; ``-y``/``-n`` and output names are the caller's business.
        progress: called with each parsed ``-progress`` block (ffmpeg writes one about every 0.5 s).
        timeout_s: wall-clock limit; the process group is killed when it expires.
        capture_stdout: keep stdout bytes (e.g. for ``-f null`` filters that print to stdout). Not
            compatible with ``progress``.
        what: short description used in error messages ("transcode of X").
        input_read: ``(path, callback)``: the callback gets the fraction of the input ``path`` ffmpeg has
            read so far, about every 0.5 s. ffmpeg 5.1 writes no ``-progress`` report until every output
            has received its first frame, so a job with a late-starting output (a poster frame a third
            into the programme) reports nothing for most of its run; the read position of its main
            input moves from the first second (Linux ``/proc/PID/fdinfo``; elsewhere never called).

    Raises:
        FFmpegError: non-zero exit or timeout, with the command and the stderr tail.
    """
    args = compile_args(graph)
    base = [ffmpeg_binary(), "-hide_banner", "-nostdin"]
    if progress is not None:
        if capture_stdout:
            raise ValueError("progress and capture_stdout both need stdout; choose one")
        base += ["-progress", "pipe:1", "-nostats"]
    cmd = base + args
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    started = time.monotonic()
    proc = _spawn(cmd)
    reader = threading.Thread(target=_drain_stderr, args=(proc.stderr, tail), daemon=True)
    reader.start()
    reports: list[FFmpegProgress] = []
    stdout = b""
    stop_watch = threading.Event()
    if input_read is not None:
        # copy_context: the callback may publish progress through the caller's (Prefect run) context
        watcher = threading.Thread(target=contextvars.copy_context().run,
                                   args=(_watch_input, proc.pid, *input_read, stop_watch), daemon=True)
        watcher.start()
    timer: threading.Timer | None = None
    timed_out = threading.Event()
    if timeout_s is not None:
        def _expire() -> None:
            timed_out.set()
            _kill_group(proc)
        timer = threading.Timer(timeout_s, _expire)
        timer.daemon = True
        timer.start()
    try:
        assert proc.stdout is not None
        if progress is not None:
            block: dict[str, str] = {}
            for raw in iter(proc.stdout.readline, b""):
                key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
                block[key] = value
                if key == "progress":
                    report = _parse_progress_block(block)
                    reports.append(report)
                    progress(report)
                    block = {}
        else:
            data = proc.stdout.read()
            stdout = data if capture_stdout else b""
        returncode = proc.wait()
    except BaseException:
        # KeyboardInterrupt, Prefect cancellation, a callback error: never leave ffmpeg behind.
        _kill_group(proc)
        raise
    finally:
        stop_watch.set()
        if timer is not None:
            timer.cancel()
        reader.join(timeout=5)
        _unregister(proc)
    tail_text = "\n".join(tail)
    if timed_out.is_set():
        raise FFmpegError(
            f"{what} timed out after {timeout_s:.0f} s and was stopped. Raise the timeout or check the input.",
            cmd=cmd, returncode=returncode, stderr_tail=tail_text,
        )
    full = next((t for t in DISK_FULL_TEXTS if t in tail_text), None)
    if full is not None:  # also at exit 0: a muxer that could not write its trailer leaves a torn file
        raise FFmpegError(f"{what} stopped: {full.lower()} writing {', '.join(_outputs(args))}; free space there "
                          "and run the same command again (finished steps are kept, the partial file was removed)",
                          cmd=cmd, returncode=returncode, stderr_tail=tail_text)
    if returncode != 0:
        last = tail[-1] if tail else "no output"
        raise FFmpegError(f"{what} failed (ffmpeg exit {returncode}): {last}", cmd=cmd, returncode=returncode,
                          stderr_tail=tail_text)
    return FFmpegResult(cmd=cmd, returncode=returncode, stderr_tail=tail_text,
                        wall_s=time.monotonic() - started, stdout=stdout, progress=reports)


def _outputs(args: Sequence[str]) -> list[str]:
    """The files an ffmpeg command writes: its arguments naming a partial (``name.partial.ext``, see
    :mod:`tasks.media.files`), else its last argument."""
    partials = [a for a in args if ".partial" in Path(a).name]
    if partials:
        return partials
    return [str(args[-1])] if args else ["(no output)"]


def input_position(pid: int, path: str | os.PathLike[str]) -> int | None:
    """Byte offset process ``pid`` has read ``path`` up to (Linux ``/proc/PID/fdinfo`` ``pos``), or None."""
    target = os.path.realpath(path)
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(fd) != target:
                continue
            for line in Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().splitlines():
                if line.startswith("pos:"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


def _watch_input(pid: int, path: str, callback: Callable[[float], None], stop: threading.Event,
                 interval_s: float = 0.5) -> None:
    try:
        size = os.path.getsize(path)
    except OSError:
        return
    while size > 0 and not stop.wait(interval_s):
        pos = input_position(pid, path)
        if pos is None:
            continue
        try:
            callback(min(pos / size, 1.0))
        except Exception:  # noqa: BLE001 - progress is nice to have; never fail a transcode over it
            return


def run_ffprobe_json(args: Sequence[str], *, timeout_s: float = 120.0) -> dict[str, Any]:
    """Run ffprobe with ``-of json`` and return the parsed document.

    Raises:
        FFmpegError: ffprobe failed (the caller decides whether that is bad input).
    """
    cmd = [ffprobe_binary(), "-hide_banner", "-v", "error", "-of", "json", *args]
    proc = _spawn(cmd)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        _unregister(proc)
    err_text = err.decode("utf-8", "replace").strip()
    damaged = next((t for t in CORRUPT_INDEX_TEXTS if t in err_text), None)
    if proc.returncode != 0 or damaged is not None:
        lines = err_text.splitlines()[-STDERR_TAIL_LINES:]
        if damaged is not None:  # the damage, last: callers quote the last line
            lines.append(next(ln for ln in err_text.splitlines() if damaged in ln).split("] ", 1)[-1]
                         + " (damaged container index)")
        last = lines[-1] if lines else "no output"
        raise FFmpegError(f"ffprobe failed: {last}", cmd=cmd, returncode=proc.returncode,
                          stderr_tail="\n".join(lines))
    try:
        return json.loads(out or b"{}")
    except json.JSONDecodeError as exc:
        raise FFmpegError(f"ffprobe printed invalid JSON: {exc}", cmd=cmd) from exc


@contextlib.contextmanager
def open_ffmpeg_pipe(graph: Any, *, what: str = "ffmpeg pipe") -> Iterator[io.BufferedReader]:
    """Start ffmpeg writing raw data to stdout (``pipe:1``) and yield that stream.

    Used for block-wise decoding (raw audio samples, raw video frames) with flat memory. The
    process group is killed when the block exits early; a non-zero exit after the reader consumed
    everything raises :class:`FFmpegError`.
    """
    cmd = [ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", *compile_args(graph)]
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    proc = _spawn(cmd)
    reader = threading.Thread(target=_drain_stderr, args=(proc.stderr, tail), daemon=True)
    reader.start()
    stopped_early = True
    try:
        assert proc.stdout is not None
        yield cast(io.BufferedReader, proc.stdout)  # Popen's stdout with the default bufsize
        # A reader that stopped before EOF does not want the rest: stop ffmpeg rather than drain it.
        stopped_early = proc.stdout.read(1) != b""
    finally:
        if stopped_early:
            _kill_group(proc)
        returncode = proc.wait()
        reader.join(timeout=5)
        _unregister(proc)
    if stopped_early:
        return
    if returncode != 0:
        last = tail[-1] if tail else "no output"
        raise FFmpegError(f"{what} failed (ffmpeg exit {returncode}): {last}", cmd=cmd, returncode=returncode,
                          stderr_tail="\n".join(tail))


def read_exact(stream: io.BufferedIOBase, buf: bytearray | memoryview) -> int:
    """Fill ``buf`` from ``stream``; return the bytes read (fewer only at end of stream).

    Pipes return short reads; raw frames and sample blocks must be whole.
    """
    view = memoryview(buf)
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def ffmpeg_pids_writing_under(folder: Path) -> list[int]:
    """ffmpeg/ffprobe processes whose command line mentions ``folder`` (Linux /proc)."""
    needle = str(folder.resolve())
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name.startswith(("ffmpeg", "ffprobe")) and any(
                needle in a.decode(errors="replace") for a in argv[1:]):
            pids.append(int(proc.name))
    return pids


def cleanup_after_cancel(out: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Kill ffmpeg still writing under ``out`` and remove partial files there (idempotent).

    For a cancelled run whose flow process is gone (its own ``finally`` never ran)."""
    root = Path(out)
    killed = []
    for pid in ffmpeg_pids_writing_under(root) if root.exists() else []:
        try:
            os.kill(pid, signal.SIGKILL)
            killed.append(str(pid))
        except ProcessLookupError:
            pass
    removed = []
    if root.exists():
        for p in root.rglob(PARTIAL_GLOB):
            try:
                if p.is_file() or p.is_symlink():
                    p.unlink()
                    removed.append(str(p))
            except OSError:
                pass
    return {"killed": killed, "removed": removed}
