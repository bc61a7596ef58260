"""deliver archive / verify / restore / locate: output and exit codes (0 ok, 1 mismatch, 2 bad input, 3 unreachable)."""

from __future__ import annotations

import json

from tests.archive import s3server
from tests.archive.helpers import S3_SMALL_PARTS, mhl_rc


def test_archive_verify_locate_restore_and_corruption_exit_1(s3, package, tmp_path, prefix, run):
    s3_uri = f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}"
    r = run("archive", package, "--to", s3_uri, "--to", tmp_path / "lto", "--title", "Film")
    assert r.exit_code == 0, r.stderr
    assert f"verified  s3://archive-a/{prefix}/FILM_v1" in r.stdout
    copy_s3, copy_local = f"s3://archive-a/{prefix}/FILM_v1", tmp_path / "lto" / "FILM_v1"

    assert run("verify", copy_s3).exit_code == 0
    assert run("verify", copy_local).exit_code == 0
    r = run("locate", "Film", "--json")
    assert r.exit_code == 0 and len({loc["copy_uri"] for loc in json.loads(r.stdout)}) == 2

    (copy_local / "IMF" / "CPL.xml").write_text("<CompositionPlaylist>tampered</CompositionPlaylist>\n")
    r = run("verify", copy_local)
    assert r.exit_code == 1 and "IMF/CPL.xml" in r.stdout and "IMF/CPL.xml" in r.stderr
    client = s3.client()
    key = f"{prefix}/FILM_v1/audio/mix_51.wav"
    client.put_object(Bucket="archive-a", Key=key, Body=b"\0" * 300_000)
    r = run("verify", copy_s3)
    assert r.exit_code == 1 and "audio/mix_51.wav" in r.stderr
    assert "Traceback" not in r.stderr

    r = run("restore", copy_s3, "--to", tmp_path / "restored")
    assert r.exit_code == 1 and "audio/mix_51.wav" in r.stderr  # corrupt object: nothing restored
    client.put_object(Bucket="archive-a", Key=key, Body=(package / "audio" / "mix_51.wav").read_bytes())
    r = run("restore", copy_s3, "--to", tmp_path / "restored")
    assert r.exit_code == 0, r.stderr
    assert "restored and verified" in r.stdout and mhl_rc(tmp_path / "restored" / "FILM_v1") == 0

    for out in (r.stdout, r.stderr):
        assert s3server.SECRET_KEY not in out


def test_exit_codes_bad_input_and_unreachable(s3, package, tmp_path, run):
    r = run("archive", tmp_path / "nope", "--to", tmp_path / "x")
    assert r.exit_code == 2 and r.stderr.startswith("deliver: error:")
    assert run("archive", package).exit_code == 2  # no targets
    assert run("archive", package, "--to", "gopher://x").exit_code == 2
    assert run("verify", tmp_path / "empty-does-not-exist").exit_code == 2
    r = run("archive", package, "--to", "s3://archive-a/x?endpoint_url=http://127.0.0.1:9&max_attempts=1")
    assert r.exit_code == 3 and "unreachable" in r.stderr
    r = run("locate", "never-archived")
    assert r.exit_code == 1 and "no archived copies" in r.stderr
