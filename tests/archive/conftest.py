"""Archive test fixtures: a real S3 server (SeaweedFS) on loopback, packages with an ASC MHL history."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flows.cli.archive  # noqa: F401 - registers the commands
from flows.cli import app
from tests.archive import s3server
from tests.archive.helpers import make_package


@pytest.fixture(scope="session")
def s3():
    """SeaweedFS on 127.0.0.1 for the session; AWS_* set for this test process only, restored after."""
    with s3server.running() as server:
        yield server


@pytest.fixture(autouse=True)
def _isolated_catalog(tmp_path, monkeypatch):
    """Each test its own catalog and no site storage config."""
    monkeypatch.setenv("DELIVER_CATALOG_URL", f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    monkeypatch.setenv("DELIVER_STORAGE_CONFIG", str(tmp_path / "no-storage.yaml"))


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def package(tmp_path) -> Path:
    return make_package(tmp_path / "FILM_v1")


@pytest.fixture
def run():
    """``run(*args)``: the ``deliver`` CLI in-process (typer CliRunner), stdout and stderr apart."""
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(app, [str(a) for a in args])

    return invoke
