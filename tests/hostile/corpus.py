"""The hostile-input corpus: files and folders a careless or hostile user hands ``deliver``.

Everything is made once per test module (tiny: a 2 s programme at 320x180) under one folder; the
output folders of the cases live elsewhere (``--out`` may not sit among the inputs). Media are made
with ffmpeg and then damaged byte by byte where the case says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DELIVER = Path(sys.executable).parent / "deliver"
#: A secret-looking value for the credential cases: it must never be printed back.
SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYzzEXAMPLEKEY"


def deliver(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
            timeout_s: float = 300) -> tuple[subprocess.CompletedProcess[str], float]:
    """``deliver ARGS`` as a user runs it (the installed console script); the result and its wall time."""
    full_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    full_env.update(env or {})
    started = time.monotonic()
    proc = subprocess.run([str(DELIVER), *map(str, args)], capture_output=True, text=True, timeout=timeout_s,
                          cwd=cwd, env=full_env, stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - started


def ffmpeg(*args: str | Path) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)


@dataclass
class Corpus:
    """Paths of every hostile input, plus the good ones they are derived from."""

    root: Path
    master: Path
    mix51: Path
    mix20: Path
    files: dict[str, Path] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Path:
        return self.files[name]


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def _stsz_damaged(master: Path, out: Path) -> Path:
    """The master with the sample count of its video track's ``stsz`` box (ISO/IEC 14496-12 §8.7.3) set to 0:
    ffprobe still lists the stream, every decode fails."""
    data = bytearray(master.read_bytes())
    at = data.find(b"stsz")
    assert at > 0, "no stsz box in the generated master"
    data[at + 12:at + 16] = struct.pack(">I", 0)
    return _write(out, bytes(data))


def make_corpus(root: Path) -> Corpus:
    from tasks.media.synth import MasterSpec, make_sample_set

    media = make_sample_set(root / "media", layout="5.1", stereo=True, master=MasterSpec(programme_s=2, head_s=3))
    c = Corpus(root=root, master=media.master, mix51=media.mixes["5.1"], mix20=media.mixes["2.0"])
    bad = root / "in"
    bad.mkdir()
    master_bytes = c.master.read_bytes()
    f = c.files
    # media
    f["random.mov"] = _write(bad / "random.mov", os.urandom(200_000))
    f["truncated.mov"] = _write(bad / "truncated.mov", master_bytes[: len(master_bytes) // 2])
    f["zero.mov"] = _write(bad / "zero.mov", b"")
    f["stsz.mov"] = _stsz_damaged(c.master, bad / "stsz.mov")
    f["text.mov"] = _write(bad / "text.mov", "this is a text file, not a QuickTime movie\n")
    f["audio_only.mov"] = bad / "audio_only.mov"
    ffmpeg("-f", "lavfi", "-i", "sine=d=2", "-c:a", "pcm_s24le", f["audio_only.mov"])
    f["sparse.mov"] = bad / "sparse.mov"  # 8 GiB of nothing, sparse: sizes must not make us read it all
    with open(f["sparse.mov"], "wb") as fh:
        fh.truncate(8 << 30)
    # mixes
    f["4ch.wav"] = bad / "4ch.wav"
    ffmpeg("-i", c.mix51, "-af", "pan=4c|c0=c0|c1=c1|c2=c2|c3=c3", "-c:a", "pcm_s24le", f["4ch.wav"])
    f["44k.wav"] = bad / "44k.wav"
    ffmpeg("-i", c.mix51, "-ar", "44100", "-c:a", "pcm_s24le", f["44k.wav"])
    f["one_sample.wav"] = bad / "one_sample.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=sample_rate=48000", "-frames:a", "1", "-c:a", "pcm_s24le", f["one_sample.wav"])
    f["truncated.wav"] = _write(bad / "truncated.wav", c.mix20.read_bytes()[:4000])
    # specs
    specs = root / "specs"
    head = ("schema: 1\nname: {}\nextends: demo\ndescription: a hostile case\n"
            "provenance: {{document: deliver tests, version: '1', confidence: NC}}\n")
    f["bomb.yaml"] = _write(specs / "bomb.yaml", "schema: 1\nname: bomb\n" + "\n".join(
        [f"a0: &a0 [{', '.join(['x'] * 10)}]"]
        + [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]" for n in range(1, 9)]) + "\n")
    f["deep.yaml"] = _write(specs / "deep.yaml", "schema: 1\nname: deep\npicture: " + "{a: " * 20_000 + "1"
                            + "}" * 20_000 + "\n")
    with open(_write(specs / "keys.yaml", "schema: 1\nname: keys\n"), "a", encoding="utf-8") as fh:
        line = "x" * 240
        for n in range(200_000):  # 50 MB of keys
            fh.write(f"key_{n:06d}: {line}\n")
    f["keys.yaml"] = specs / "keys.yaml"
    f["passwd.yaml"] = _write(specs / "passwd.yaml", "schema: 1\nname: passwd\nextends: /etc/passwd\n")
    f["unknown.yaml"] = _write(specs / "unknown.yaml", head.format("unknown") + "pictur:\n  width: 1\n")
    f["types.yaml"] = _write(specs / "types.yaml", head.format("types") + "picture:\n  width: wide\n")
    f["escape.yaml"] = _write(specs / "escape.yaml", head.format("escape") + "deliverables:\n"
                              "  - id: screener\n    kind: screener\n    container: mp4\n"
                              "    video: {codec: libx264, profile: high, pix_fmt: yuv420p, crf: 23}\n"
                              "    audio:\n      - {from_track: stereo-20, codec: aac}\n"
                              "    name: \"../../{title}_{id}.{ext}\"\n")
    (root / "empty-specs").mkdir()
    # paths
    f["a_file"] = _write(root / "paths" / "a_file", "a plain file\n")
    loop_a, loop_b = root / "paths" / "loop_a", root / "paths" / "loop_b"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    f["loop"] = loop_a
    return c


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str, *, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``where`` for the block (needs root and mount(2); raises OSError otherwise)."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0 or not shutil.which("mount"):
        raise OSError("mounting a tmpfs needs root and mount(8)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise OSError(f"mount -t tmpfs failed: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount(where: Path, size: str) -> None:
    """Give a mounted tmpfs more room (the user freeing space)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)
