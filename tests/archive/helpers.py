"""Helpers shared by tests/archive and tests/flows/test_archive_flow.py."""

from __future__ import annotations

from pathlib import Path


def make_package(root: Path, *, big_bytes: int = 12 * 1024 * 1024 + 12345, seed: int = 1) -> Path:
    """A small delivery package: a multipart-sized 'master', sidecars, a nested file, an empty file,
    and generation 1 of its ASC MHL history (process in-place)."""
    import random

    from tasks.archive.mhl import write_mhl_generation

    rnd = random.Random(seed)
    root.mkdir(parents=True)
    (root / "IMF").mkdir()
    (root / "IMF" / "MASTER_PRORES.mov").write_bytes(rnd.randbytes(big_bytes))
    (root / "IMF" / "CPL.xml").write_text("<CompositionPlaylist/>\n")
    (root / "audio").mkdir()
    (root / "audio" / "mix_51.wav").write_bytes(rnd.randbytes(300_000))
    (root / "EMPTY.txt").write_bytes(b"")
    (root / "report.json").write_text('{"verdict": "pass"}\n')
    write_mhl_generation(root, process="in-place", location=str(root), comment="test package")
    return root


def mhl_rc(root: Path) -> int:
    """Exit code ascmhl's own verify gives for a folder (0 = every file matches its history)."""
    import click
    from ascmhl import commands

    try:
        commands.verify_entire_folder(str(root), False, None, None)
        return 0
    except click.ClickException as exc:
        return exc.exit_code


def latest_process(root: Path) -> str:
    import re

    mhls = sorted((root / "ascmhl").glob("*.mhl"))
    return re.search(r"<process>([^<]+)</process>", mhls[-1].read_text()).group(1)


S3_SMALL_PARTS = "part_size_mib=5&multipart_threshold_mib=5"
