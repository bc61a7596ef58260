"""Commands that need no orchestration (spec, loudness, verify of a local copy) never import Prefect."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The console script's code path (flows.cli.main) in a fresh interpreter; then which modules loaded.
PROBE = """
import json, sys
sys.argv = ["deliver", *sys.argv[1:]]
from flows.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"exit": code, "prefect": sorted(m for m in sys.modules if m.split(".")[0] == "prefect")}),
      file=sys.stderr)
"""


def _modules(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)
    return json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [("spec", "list"), ("spec", "show", "demo"), ("spec", "lint", "demo"),
                                  ("spec", "explain", "demo"), ("server", "status")])
def test_spec_commands_never_import_prefect(args: tuple[str, ...]) -> None:
    report = _modules(*args)
    assert report["exit"] in (0, 1, None)
    assert report["prefect"] == [], f"deliver {' '.join(args)} imported {report['prefect'][:5]}"


def test_verify_of_a_local_copy_never_imports_prefect(tmp_path: Path) -> None:
    from tests.archive.helpers import make_package

    package = make_package(tmp_path / "PKG", big_bytes=1000)
    report = _modules("verify", str(package), "--json")
    assert report["exit"] in (0, None), report
    assert report["prefect"] == []


def test_loudness_never_imports_prefect(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    wav = tmp_path / "tone.wav"
    sf.write(wav, 0.1 * np.sin(np.linspace(0, 2000, 48000 * 2)), 48000)
    report = _modules("loudness", str(wav), "--json")
    assert report["exit"] in (0, None)
    assert report["prefect"] == []


def test_ycbcr_weights_match_colour_science() -> None:
    """The Kr/Kb table that replaced colour-science's import holds the same numbers."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour

    from tasks.qc.picture_analysis import _KR_KB

    for name, (kr, kb) in _KR_KB.items():
        assert (kr, kb) == tuple(float(k) for k in colour.WEIGHTS_YCBCR[name]), name
