"""`deliver loudness` start-up stays lean: no Prefect, no ``scipy.signal`` on that path."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.audio.signals import FS, noise

ROOT = Path(__file__).resolve().parents[2]

# The console script's own code path (flows.cli.main registers every command module), run in a
# fresh interpreter; afterwards report which heavy packages were imported.
PROBE = """
import json, sys
sys.argv = ["deliver", "loudness", sys.argv[1], "--json"]
from flows.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
mods = {m: m in sys.modules for m in ("prefect", "scipy.signal", "scipy.stats")}
print(json.dumps({"exit": code, "modules": mods}), file=sys.stderr)
"""


def test_loudness_command_imports_no_prefect(tmp_path: Path) -> None:
    wav = tmp_path / "tiny.wav"
    sf.write(wav, noise(FS, 4.0, -23.0, channels=2, seed=7), FS, subtype="PCM_24")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE, str(wav)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    wall = time.perf_counter() - t0
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["exit"] in (0, None), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["integrated_lufs"] is not None
    assert not report["modules"]["prefect"], "deliver loudness imported prefect (~1 s of start-up)"
    assert not report["modules"]["scipy.signal"], "deliver loudness imported scipy.signal (~0.6 s of start-up)"
    print(f"deliver loudness on a 4 s stereo WAV: {wall:.2f} s wall (fresh interpreter)")


def test_sosfilt_kernel_matches_scipy_bit_for_bit() -> None:
    import scipy.signal as sps

    from tasks.audio import loudness

    sos = loudness.k_weighting_sos(48000)
    x = np.random.default_rng(5).standard_normal((3, 20000))
    ref_y, ref_zf = sps.sosfilt(sos, x, axis=-1, zi=np.zeros((2, 3, 2)))
    # in two pieces with the state carried, through our kernel entry point
    y = np.ascontiguousarray(x)
    zi = np.zeros((3, 2, 2))
    a, b = y[:, :7001].copy(), y[:, 7001:].copy()
    loudness.sosfilt_inplace(sos, a, zi)
    loudness.sosfilt_inplace(sos, b, zi)
    ref2, _ = sps.sosfilt(sos, x[:, 7001:], axis=-1,
                          zi=sps.sosfilt(sos, x[:, :7001], axis=-1, zi=np.zeros((2, 3, 2)))[1])
    assert np.array_equal(a, ref_y[:, :7001])
    assert np.array_equal(b, ref2)
    assert np.array_equal(zi.transpose(1, 0, 2), ref_zf)
    # the fallback (public scipy.signal.sosfilt) gives the same numbers
    saved = loudness._SOSFILT_KERNEL
    try:
        loudness._SOSFILT_KERNEL = False
        c = np.ascontiguousarray(x[:, :7001])
        zc = np.zeros((3, 2, 2))
        loudness.sosfilt_inplace(sos, c, zc)
        assert np.array_equal(c, ref_y[:, :7001])
    finally:
        loudness._SOSFILT_KERNEL = saved
