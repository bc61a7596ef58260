"""Fixtures for the loudness tests: the official EBU test set folder (DELIVER_EBU_TEST_SET)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EBU_ENV = "DELIVER_EBU_TEST_SET"


@pytest.fixture(scope="session")
def ebu_dir() -> Path:
    """Folder with the official EBU Loudness Test Set v05 WAVs, or skip with the reason."""
    value = os.environ.get(EBU_ENV, "")
    if not value:
        pytest.skip(f"{EBU_ENV} is not set; point it at the EBU loudness test set folder "
                    "(make test uses ../shared/ebu-loudness-test-set when it exists)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"{EBU_ENV}={value} is not a folder")
    return path
