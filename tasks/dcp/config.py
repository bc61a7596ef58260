"""The DCP configuration: ``configs/dcp.yaml``, or the file ``$DELIVER_DCP_CONFIG`` names.

Two parts: ``signer_dir`` (the site's SMPTE ST 430-2 signing chain, :mod:`tasks.dcp.sign`) and
``encode`` (where the JPEG 2000 picture encode runs, :mod:`tasks.dcp.picture`). The environment
overrides the encode part: ``DELIVER_DCP_DASK`` (a scheduler address, or ``local``),
``DELIVER_DCP_WORKERS`` (local encode processes, or the workers of a ``local`` Dask cluster) and
``DELIVER_DCP_CHUNK_FRAMES``; ``max_dropped_bits`` (``DELIVER_DCP_MAX_DROPPED_BITS``, 0-4, default 0)
bounds the low bits a grainy frame may leave uncoded under its noise floor. The default codes every frame at
the full 12 bits of SMPTE ST 428-1; 4 is faster on grain (about 1.9x less Grok CPU) at ~0.15 dB PSNR, a site's
opt-in (see :func:`tasks.dcp.picture.coded_bits`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from specs.errors import BadInputError
from tasks.dcp.picture import MAX_DROPPED_BITS

__all__ = ["DEFAULT_CONFIG", "EncodeConfig", "read_dcp_config", "encode_config"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "dcp.yaml"


@dataclass(frozen=True)
class EncodeConfig:
    """Where the picture encode runs.

    ``dask_address`` None: processes on this machine (``workers`` of them, default the run's).
    ``"local"``: a Dask LocalCluster of ``workers`` processes. ``tcp://host:8786``: that cluster's
    workers, each encoding ``chunk_frames``-frame ranges of the master (which they must read at the
    same path: shared storage), the track file written here in frame order.
    """

    dask_address: str | None = None
    workers: int | None = None
    chunk_frames: int = 48
    max_dropped_bits: int = 0  # full 12-bit precision unless the site opts in


def read_dcp_config(config: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The DCP config as a mapping ({} when the file is absent)."""
    path = Path(config or os.environ.get("DELIVER_DCP_CONFIG") or DEFAULT_CONFIG)
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: a DCP config is a mapping (signer_dir, encode)")
    return data


def _positive(value: object, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value))
    except ValueError:
        number = 0
    if number < 1:
        raise BadInputError(f"{what} is {value!r}: give a whole number of at least 1")
    return number


def encode_config(config: str | os.PathLike[str] | None = None) -> EncodeConfig:
    """The ``encode`` part of the DCP config with the environment's overrides."""
    encode = read_dcp_config(config).get("encode") or {}
    if not isinstance(encode, dict):
        raise BadInputError("the DCP config's encode: is a mapping (dask_address, workers, chunk_frames)")
    address = os.environ.get("DELIVER_DCP_DASK") or encode.get("dask_address") or None
    workers = _positive(os.environ.get("DELIVER_DCP_WORKERS") or encode.get("workers"), "the DCP encode workers")
    chunk = _positive(os.environ.get("DELIVER_DCP_CHUNK_FRAMES") or encode.get("chunk_frames"),
                      "the DCP encode chunk_frames")
    dropped = os.environ.get("DELIVER_DCP_MAX_DROPPED_BITS") or encode.get("max_dropped_bits")
    if dropped in (None, ""):
        dropped = 0
    elif str(dropped) not in {str(n) for n in range(MAX_DROPPED_BITS + 1)}:
        raise BadInputError(f"the DCP encode max_dropped_bits is {dropped!r}: give 0 to {MAX_DROPPED_BITS}")
    return EncodeConfig(dask_address=str(address) if address else None, workers=workers, chunk_frames=chunk or 48,
                        max_dropped_bits=int(str(dropped)))
