"""Any error, ours or a bug, ends as one line on stderr with the documented exit code; never a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import typer

from flows.cli import clean_errors
from specs.errors import MediaError


def _call(exc: BaseException, capsys) -> tuple[int, str]:
    @clean_errors
    def command() -> None:
        raise exc

    with pytest.raises(typer.Exit) as info:
        command()
    return info.value.exit_code, capsys.readouterr().err


def test_a_bug_is_one_line_exit_3_with_the_traceback_in_the_log(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DELIVER_HOME", str(tmp_path))
    code, err = _call(KeyError("tracks"), capsys)
    assert code == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deliver: error: internal error KeyError"), err
    log = tmp_path / "deliver.log"
    assert str(log) in lines[0]
    assert "Traceback (most recent call last)" in log.read_text()


@pytest.mark.parametrize("exc, code", [
    (FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), "/out/DEMO_v1"), 2),
    (NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/out/file/work"), 2),
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/out"), 2),
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/out/x.mov"), 3),
    (MediaError("master.mov: no video stream (picture master)"), 2),
])
def test_errors_map_to_documented_exit_codes(exc: BaseException, code: int, capsys) -> None:
    got, err = _call(exc, capsys)
    assert got == code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deliver: error:") and "Traceback" not in err
    if isinstance(exc, OSError):
        assert str(Path(str(exc.filename))) in lines[0]
