"""The DCP picture encode spread over a 2-worker local Dask cluster equals the single-process encode.

The chunks (``tasks.dcp.picture.encode_chunk`` over frame ranges) each decode only their own range;
the track file is written in frame order from them. Equal means: the same codestream bytes for every
frame, hence the same essence and index in the picture track file.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from fractions import Fraction
from pathlib import Path

import pytest

from specs.errors import BadInputError
from tasks.dcp.codestream import check_codestream
from tasks.dcp.config import EncodeConfig, encode_config
from tasks.dcp.container import CONTAINERS, place_picture
from tasks.dcp.picture import PicturePlan, encode_picture, iter_picture_distributed
from tasks.mxf.reader import read_track
from tasks.mxf.writer import write_picture_track

pytestmark = pytest.mark.skipif(shutil.which("grk_compress") is None, reason="grokj2k-tools is needed (make setup)")


def test_two_dask_workers_give_the_single_process_picture_track(tmp_path: Path) -> None:
    import contextlib

    from tasks.dcp.plan import dask_client

    master = tmp_path / "m.mov"
    frames = 5
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=1920x1080:r=24", "-frames:v",
                    str(frames), "-c:v", "prores_ks", "-pix_fmt", "yuv422p10le", "-color_primaries", "bt709",
                    "-color_trc", "bt709", "-colorspace", "bt709", str(master)], check=True)
    flat = CONTAINERS[("2k", "flat")]
    plan = PicturePlan(place_picture(1920, 1080, Fraction(1), flat), fps=24, frame_count=frames)
    single = [p.read_bytes() for p in encode_picture(master, plan, 1, tmp_path / "single")]
    with contextlib.ExitStack() as stack:
        client = dask_client(EncodeConfig(dask_address="local", workers=2, chunk_frames=2), stack)
        assert len(client.scheduler_info()["workers"]) == 2
        chunked = list(iter_picture_distributed(master, plan, client, chunk=2))  # chunks of 2, 2 and 1
    assert len(chunked) == frames and chunked == single
    assert all(check_codestream(f) == [] for f in chunked)

    asset = uuid.uuid4()
    tracks = []
    for name, data in (("single", single), ("dask", chunked)):
        out = tmp_path / f"{name}.mxf"
        write_picture_track(iter(data), out, Fraction(24), flat.width, flat.height, asset_id=asset)
        tracks.append(read_track(out))
    a, b = tracks
    assert list(a.iter_frames()) == list(b.iter_frames()) == single
    assert a.index_entries == b.index_entries and a.duration == b.duration == frames


def test_encode_config_reads_the_file_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DELIVER_DCP_DASK", "DELIVER_DCP_WORKERS", "DELIVER_DCP_CHUNK_FRAMES", "DELIVER_DCP_CONFIG",
                 "DELIVER_DCP_MAX_DROPPED_BITS"):
        monkeypatch.delenv(name, raising=False)
    assert encode_config() == EncodeConfig(None, None, 48)  # configs/dcp.yaml: this machine's processes
    cfg = tmp_path / "dcp.yaml"
    cfg.write_text("encode: {dask_address: 'tcp://render:8786', chunk_frames: 240}\n")
    assert encode_config(cfg) == EncodeConfig("tcp://render:8786", None, 240)
    monkeypatch.setenv("DELIVER_DCP_DASK", "local")
    monkeypatch.setenv("DELIVER_DCP_WORKERS", "2")
    assert encode_config(cfg) == EncodeConfig("local", 2, 240)
    monkeypatch.setenv("DELIVER_DCP_WORKERS", "none")
    with pytest.raises(BadInputError, match="the DCP encode workers is 'none': give a whole number of at least 1"):
        encode_config(cfg)
    monkeypatch.delenv("DELIVER_DCP_WORKERS")
    assert encode_config(cfg).max_dropped_bits == 0  # the default: every frame at the full 12 bits
    cfg.write_text("encode: {max_dropped_bits: 4}\n")
    assert encode_config(cfg).max_dropped_bits == 4  # a site's opt-in: up to 4 bits under a grainy frame's noise
    monkeypatch.setenv("DELIVER_DCP_MAX_DROPPED_BITS", "2")
    assert encode_config(cfg).max_dropped_bits == 2
    monkeypatch.setenv("DELIVER_DCP_MAX_DROPPED_BITS", "6")
    with pytest.raises(BadInputError, match="max_dropped_bits is '6': give 0 to 4"):
        encode_config(cfg)
