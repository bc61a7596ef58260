"""The whole archive round trip in one test: a delivery package archived to two S3 buckets and a local
folder in one call, every copy verified (API and CLI), restored to new folders with identical xxh128 of
every file, and ``deliver locate TITLE`` listing all three copies."""

from __future__ import annotations

from pathlib import Path

import xxhash
from typer.testing import CliRunner

import flows.cli.archive  # noqa: F401 - registers the commands
from flows.cli import app
from tasks.archive.verify import verify_uri
from tests.archive.helpers import S3_SMALL_PARTS, make_package, mhl_rc

MiB = 1024 * 1024


def _xxh128_tree(root: Path) -> dict[str, str]:
    """xxh128 of every file under ``root`` except the ASC MHL history (which gains generations)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and "ascmhl" not in p.relative_to(root).parts:
            h = xxhash.xxh3_128()
            with open(p, "rb") as fh:
                while block := fh.read(MiB):
                    h.update(block)
            out[p.relative_to(root).as_posix()] = h.hexdigest()
    return out


def test_two_buckets_and_a_folder_verify_restore_round_trip_and_locate(s3, tmp_path, prefix):
    run = CliRunner().invoke
    pkg = make_package(tmp_path / "GreatFilm_FTR_EN_2398", big_bytes=17 * MiB + 5)  # 4 parts in each bucket
    source = _xxh128_tree(pkg)
    targets = [f"s3://archive-a/{prefix}/us?{S3_SMALL_PARTS}", f"s3://archive-b/{prefix}/eu?{S3_SMALL_PARTS}",
               str(tmp_path / "lto-staging")]
    r = run(app, ["archive", str(pkg), "--title", "Great Film", *[a for t in targets for a in ("--to", t)]])
    assert r.exit_code == 0, r.stderr
    copies = [f"s3://archive-a/{prefix}/us/{pkg.name}", f"s3://archive-b/{prefix}/eu/{pkg.name}",
              (tmp_path / "lto-staging" / pkg.name).as_uri()]
    for uri in copies:
        assert f"verified  {uri}" in r.stdout

    for i, uri in enumerate(copies):
        report = verify_uri(uri)
        assert report.ok and report.files >= len(source), report.mismatches
        v = run(app, ["verify", uri])
        assert v.exit_code == 0 and v.stdout.startswith("OK"), v.stdout + v.stderr

        back = tmp_path / f"restored-{i}"
        rr = run(app, ["restore", uri, "--to", str(back)])
        assert rr.exit_code == 0 and "restored and verified" in rr.stdout, rr.stderr
        assert _xxh128_tree(back / pkg.name) == source  # identical hashes, every file
        assert mhl_rc(back / pkg.name) == 0

    loc = run(app, ["locate", "Great Film"])
    assert loc.exit_code == 0, loc.stderr
    listed = {line.split()[1] for line in loc.stdout.splitlines() if line.strip()}
    for uri in copies:
        assert f"{uri}/IMF/MASTER_PRORES.mov" in listed
        assert {f"{uri}/{rel}" for rel in source} <= listed
    assert len(listed) == 3 * len(source)
