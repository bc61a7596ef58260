"""HDR masters: SDR deliverables are tone-mapped to BT.709 with the master's MaxCLL as peak; 10-bit ones keep HDR."""

from __future__ import annotations

import numpy as np
import pytest

from specs.loader import load_spec
from specs.model import AudioMap, Deliverable
from tasks.deliverables.make import transcode_all
from tasks.deliverables.naming import RunFields
from tasks.media.ffmpeg import run_ffmpeg
from tasks.media.probe import probe
from tasks.media.synth import MasterSpec, make_sample_set
from tests.deliverables.helpers import married
from tests.qc.media import pq_master

FIELDS = RunFields(title="FILM", version="v2", date="2031-01-02")
BACKGROUND_NITS, PATCH_NITS, MAX_CLL_NITS = 10.0, 1000.0, 4000


def _hable(x: float) -> float:
    """John Hable's filmic curve (Uncharted 2), as ffmpeg's tonemap filter implements it."""
    a, b, c, d, e, f = 0.15, 0.50, 0.10, 0.20, 0.02, 0.30
    return (x * (a * x + c * b) + d * e) / (x * (a * x + b) + d * f) - e / f


def _expected_sdr_luma(nits: float, peak_nits: float) -> float:
    """8-bit limited-range Y' of a neutral grey: Hable relative to the peak (100 cd/m2 = 1.0), BT.1886 inverse."""
    light = _hable(nits / 100) / _hable(peak_nits / 100)
    return 16 + 219 * light ** (1 / 2.4)


def _luma(path: str, t_s: float) -> np.ndarray:
    raw = run_ffmpeg(["-v", "error", "-ss", str(t_s), "-i", path, "-frames:v", "1", "-pix_fmt", "yuv420p",
                      "-f", "rawvideo", "-"], capture_stdout=True).stdout
    return np.frombuffer(raw[:320 * 180], np.uint8).reshape(180, 320).astype(np.float64)


@pytest.fixture(scope="module")
def hdr(tmp_path_factory):
    """A PQ (HDR10) master, 10 cd/m2 background and a 1000 cd/m2 patch, MaxCLL 4000, married to a 5.1 + 2.0 mix."""
    tmp = tmp_path_factory.mktemp("hdr")
    spec = load_spec("demo")
    media = make_sample_set(tmp / "media", layout="5.1", stereo=True, master=MasterSpec(head_s=4, programme_s=2))
    picture = pq_master(tmp / "pq.mov", background_nits=BACKGROUND_NITS, patch_nits=PATCH_NITS, patch_px=60,
                        frames=150, patch_from=0, max_cll=(MAX_CLL_NITS, 400), patch_xy=(20, 20),
                        start_tc="00:59:56:00")
    return spec, married(picture, list(media.mixes.values()), spec, tmp / "layback.mov")


def test_sdr_screener_of_an_hdr_master_is_tone_mapped_with_the_master_peak(hdr, tmp_path):
    spec, master = hdr
    assert master.primary_video.color_transfer == "smpte2084"
    d = Deliverable(id="s", kind="screener", container="mp4", name="{title}_{id}.mp4",
                    video={"codec": "libx264", "pix_fmt": "yuv420p", "crf": 12},
                    audio=[AudioMap(from_track="stereo-20", codec="aac")], burn_in={"timecode": True})
    r = transcode_all([d], spec, master, tmp_path, fields=FIELDS).deliverables[0]
    v = probe(r.path).primary_video
    assert (v.color_primaries, v.color_transfer, v.color_matrix) == ("bt709", "bt709", "bt709")
    y = _luma(r.path, 0.5)
    patch, background = np.median(y[30:70, 30:70]), np.median(y[100:140, 150:300])
    # Expected from the curve with the MaxCLL of the master (4000) as peak, +-3 code values (H.264 at CRF 12);
    # 1000 cd/m2 as peak would give 235 and 73.
    assert patch == pytest.approx(_expected_sdr_luma(PATCH_NITS, MAX_CLL_NITS), abs=3)  # ~217
    assert background == pytest.approx(_expected_sdr_luma(BACKGROUND_NITS, MAX_CLL_NITS), abs=3)  # ~68


def test_ten_bit_deliverable_of_an_hdr_master_keeps_pq_unless_told(hdr, tmp_path):
    spec, master = hdr
    hevc = {"codec": "libx265", "pix_fmt": "yuv420p10le", "crf": 20}
    keep = Deliverable(id="hdr10", kind="screener", container="mp4", name="{title}_{id}.mp4", video=hevc)
    sdr = Deliverable(id="sdr10", kind="screener", container="mp4", name="{title}_{id}.mp4",
                      video={**hevc, "tone_map": "sdr"})
    made = {r.id: probe(r.path).primary_video
            for r in transcode_all([keep, sdr], spec, master, tmp_path, fields=FIELDS).deliverables}
    assert (made["hdr10"].color_primaries, made["hdr10"].color_transfer) == ("bt2020", "smpte2084")
    assert (made["sdr10"].color_primaries, made["sdr10"].color_transfer) == ("bt709", "bt709")
