"""Where the post-house tests find PostgreSQL, and the reason they give when it is absent (no cluster)."""

from __future__ import annotations

from pathlib import Path

from tests.postgres import pg_tool, postgres_missing


def _debian_layout(root: Path, majors: list[str]) -> None:
    for major in majors:
        bin_dir = root / major / "bin"
        bin_dir.mkdir(parents=True)
        for tool in ("initdb", "pg_ctl", "postgres", "psql", "createdb"):
            (bin_dir / tool).write_text("#!/bin/sh\n")
            (bin_dir / tool).chmod(0o755)


def test_off_path_the_newest_debian_major_is_used(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()  # PATH: no PostgreSQL, only util-linux setpriv (needed as root)
    (tmp_path / "bin" / "setpriv").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "setpriv").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    _debian_layout(tmp_path / "pg", ["9", "15", "16"])
    assert pg_tool("initdb", tmp_path / "pg") == str(tmp_path / "pg" / "16" / "bin" / "initdb")  # 16 > 9
    assert postgres_missing(tmp_path / "pg") is None


def test_absent_postgresql_gives_the_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert pg_tool("initdb", tmp_path / "none") is None
    reason = postgres_missing(tmp_path / "none")
    assert reason is not None and "initdb" in reason and "apt-get install postgresql" in reason
