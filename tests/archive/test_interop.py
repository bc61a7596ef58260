"""ASC MHL histories made by the reference ``ascmhl`` tool (as Hedge, Silverstack and post houses hand them
over), plain folders, the URIs verify/restore accept, and credentials in URIs — all through the CLI.

Each history kind is built with ``ascmhl create`` (the reference implementation, pinned in the venv), then
``deliver archive`` copies it to a folder and to S3 (SeaweedFS), ``deliver verify`` and ``deliver restore``
take both copies, and the reference ``ascmhl-debug verify`` must still accept every extended history.
"""

from __future__ import annotations

import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.archive.helpers import S3_SMALL_PARTS, latest_process

BIN = Path(sys.executable).parent


def ascmhl(*args: object, tool: str = "ascmhl") -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=120)


def reference_verify_rc(root: Path) -> int:
    """Exit code of the reference ``ascmhl-debug verify`` (0: every file matches every generation)."""
    return ascmhl("verify", root, tool="ascmhl-debug").returncode


def reference_directory_hash_errors(root: Path) -> str:
    """What the reference ``ascmhl-debug verify --directory_hash`` reports against every generation's
    directory and root hashes ("" when they all match)."""
    r = ascmhl("verify", "--directory_hash", root, tool="ascmhl-debug")
    return "" if r.returncode == 0 and "ERROR" not in r.stdout + r.stderr else r.stdout + r.stderr


def make_folder(root: Path) -> Path:
    """A camera-card-like folder: files at the top, in a subfolder, an empty subfolder file, a big clip."""
    import random

    rnd = random.Random(7)
    (root / "audio").mkdir(parents=True)
    (root / "clips" / "A001").mkdir(parents=True)
    (root / "clips" / "A001" / "A001C001.mov").write_bytes(rnd.randbytes(6 * 1024 * 1024 + 17))
    (root / "audio" / "mix_51.wav").write_bytes(rnd.randbytes(200_000))
    (root / "notes.txt").write_text("slate 1 take 3\n")
    (root / "EMPTY.txt").write_bytes(b"")
    return root


def data_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and "ascmhl" not in p.relative_to(root).parts}


def generations(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "ascmhl").glob("*.mhl"))


# kind -> how the reference tool builds the history of make_folder(DIR)
KINDS = {
    "xxh128": [["create", "-h", "xxh128", "{d}"]],
    "xxh128-no-dir-hashes": [["create", "-n", "-h", "xxh128", "{d}"]],
    "md5": [["create", "-h", "md5", "{d}"]],
    "sha1": [["create", "-h", "sha1", "{d}"]],
    "xxh64": [["create", "-h", "xxh64", "{d}"]],
    "xxh3": [["create", "-h", "xxh3", "{d}"]],
    "c4": [["create", "-h", "c4", "{d}"]],
    "two-generations": [["create", "-h", "xxh128", "{d}"], ["create", "-h", "md5", "{d}"]],
    "ignore-patterns": [["create", "-h", "xxh128", "-i", "*.tmp", "-i", "cache/", "{d}"]],
    "nested": [["create", "-h", "md5", "{d}/clips"], ["create", "-h", "xxh128", "{d}"]],
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_reference_histories_archive_verify_restore(kind, s3, tmp_path, prefix, run):
    src = make_folder(tmp_path / "CARD_A001")
    if kind == "ignore-patterns":
        (src / "render.tmp").write_text("scratch")
        (src / "cache").mkdir()
        (src / "cache" / "thumb.jpg").write_bytes(b"\xff\xd8thumb")
    for step in KINDS[kind]:
        r = ascmhl(*[a.format(d=src) for a in step])
        assert r.returncode == 0, r.stdout + r.stderr
    assert reference_verify_rc(src) == 0
    before = generations(src)
    expected_files = data_files(src) - ({"render.tmp", "cache/thumb.jpg"} if kind == "ignore-patterns" else set())

    s3_target = f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}"
    r = run("archive", src, "--to", tmp_path / "lto", "--to", s3_target, "--title", "Card A001")
    assert r.exit_code == 0, r.stderr
    copy_local, copy_s3 = tmp_path / "lto" / "CARD_A001", f"s3://archive-a/{prefix}/CARD_A001"
    assert f"verified  {copy_local.as_uri()}  {len(expected_files)} files" in r.stdout
    assert f"verified  {copy_s3}  {len(expected_files)} files" in r.stdout

    # the history was extended (one transfer generation per copy), never rewritten
    after = generations(src)
    assert after[: len(before)] == before and len(after) == len(before) + 2
    assert latest_process(src) == "transfer"
    assert reference_verify_rc(src) == 0
    assert data_files(copy_local) == expected_files  # ignored files were not copied
    assert reference_verify_rc(copy_local) == 0
    new = (src / "ascmhl" / after[-1]).read_text()
    assert "<roothash>" in new and "<path lastmodificationdate" in new  # our generation has directory hashes
    # the reference -dh check itself crashes on its own -n generations (no root hash: AttributeError) and
    # on its own nested md5-in-xxh128 history (KeyError 'md5'), before deliver touched them
    dir_hashes_checkable = kind not in ("xxh128-no-dir-hashes", "nested")
    if dir_hashes_checkable:
        assert reference_directory_hash_errors(src) == ""
        assert reference_directory_hash_errors(copy_local) == ""
    if kind in ("md5", "sha1", "xxh64", "xxh3", "c4"):
        # a file recorded in another format: the new generation verified it in that format and added xxh128
        text = (src / "ascmhl" / after[len(before)]).read_text()  # the first generation deliver added
        block = text[text.index(">notes.txt</path>"):]
        block = block[: block.index("</hash>")]
        assert re.search(rf'<{kind} action="verified"', block) and 'xxh128 action="verified"' in block
    if kind == "nested":
        # the reference tool gave clips/ 2 generations (its own, then from the parent run); deliver adds 2
        assert len(generations(src / "clips")) == 2 + 2 and reference_verify_rc(src / "clips") == 0
        assert (copy_local / "clips" / "ascmhl" / "ascmhl_chain.xml").is_file()

    for uri in (copy_local, copy_s3):
        r = run("verify", uri)
        assert r.exit_code == 0, r.stdout + r.stderr
        assert r.stdout.startswith("OK")
    for n, uri in enumerate((copy_local, copy_s3)):
        r = run("restore", uri, "--to", tmp_path / f"restored{n}")
        assert r.exit_code == 0, r.stderr
        restored = tmp_path / f"restored{n}" / "CARD_A001"
        assert data_files(restored) == expected_files
        assert reference_verify_rc(restored) == 0
        assert latest_process(restored) == "transfer"
        if dir_hashes_checkable:
            assert reference_directory_hash_errors(restored) == ""


def test_changed_file_in_md5_history_is_named_in_its_format(tmp_path, run):
    src = make_folder(tmp_path / "CARD")
    assert ascmhl("create", "-h", "md5", src).returncode == 0
    (src / "notes.txt").write_text("slate 1 take 4\n")
    r = run("verify", src)
    assert r.exit_code == 1 and "notes.txt" in r.stderr
    assert re.search(r"notes\.txt.*expected md5 [0-9a-f]{32}, found md5 [0-9a-f]{32}", r.stdout)
    r = run("archive", src, "--to", tmp_path / "lto")
    assert r.exit_code == 1 and "notes.txt" in r.stderr and "missing" not in r.stderr
    assert len(generations(src)) == 1  # no generation written over a changed file


def test_directory_entries_are_not_missing_files(tmp_path, run):
    """The reported failure: a history with a directory entry `audio` was read as a missing file."""
    src = make_folder(tmp_path / "PKG")
    assert ascmhl("create", "-h", "xxh128", src).returncode == 0
    assert "<directoryhash>" in (src / "ascmhl" / generations(src)[0]).read_text()
    r = run("archive", src, "--to", tmp_path / "lto")
    assert r.exit_code == 0, r.stderr
    assert "missing" not in r.stderr


def test_plain_folder_gets_first_generation_from_the_copy_read_pass(s3, tmp_path, prefix, run, monkeypatch):
    src = make_folder(tmp_path / "MASTERS")
    files = data_files(src)
    opened: dict[str, int] = {}
    real_open = builtins.open

    def counting_open(file, *a, **kw):  # every open() of a source data file, in any module
        p = str(file)
        if p.startswith(str(src) + "/") and "/ascmhl/" not in p:
            opened[p] = opened.get(p, 0) + 1
        return real_open(file, *a, **kw)

    monkeypatch.setattr(builtins, "open", counting_open)
    r = run("archive", src, "--to", tmp_path / "lto", "--to", f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}")
    monkeypatch.setattr(builtins, "open", real_open)
    assert r.exit_code == 0, r.stderr
    # each source file read exactly once: the copies and every hash of the new history come from that read
    assert opened == {str(src / rel): 1 for rel in files}

    gens = generations(src)
    assert len(gens) == 3 and gens[0].startswith("0001_MASTERS_")
    first = (src / "ascmhl" / gens[0]).read_text()
    assert "<process>in-place</process>" in first
    assert len(re.findall(r'<xxh128 action="original"', first)) == len(files)
    assert [re.search(r"<process>([^<]+)</process>", (src / "ascmhl" / g).read_text()).group(1)
            for g in gens[1:]] == ["transfer", "transfer"]
    assert reference_verify_rc(src) == 0
    assert reference_verify_rc(tmp_path / "lto" / "MASTERS") == 0
    assert "write_mhl_generation" not in r.stderr + r.stdout
    r = run("restore", f"s3://archive-a/{prefix}/MASTERS", "--to", tmp_path / "back")
    assert r.exit_code == 0, r.stderr
    assert data_files(tmp_path / "back" / "MASTERS") == files


def test_verify_and_restore_accept_target_uri_and_copy_uri(s3, tmp_path, prefix, run):
    src = make_folder(tmp_path / "PKGNAME")
    s3_target = f"s3://archive-a/{prefix}/titles/PKGNAME"
    local_target = tmp_path / "nas" / "PKGNAME"
    r = run("archive", src, "--to", s3_target, "--to", local_target)
    assert r.exit_code == 0, r.stderr
    s3_copy, local_copy = f"{s3_target}/PKGNAME", local_target / "PKGNAME"
    assert f"verified  {s3_copy}  " in r.stdout and f"verified  {local_copy.as_uri()}  " in r.stdout

    for n, uri in enumerate((s3_target, s3_copy, local_target, local_copy, local_copy.as_uri())):
        r = run("verify", uri)
        assert r.exit_code == 0, (uri, r.stderr)
        r = run("restore", uri, "--to", tmp_path / f"r{n}")
        assert r.exit_code == 0, (uri, r.stderr)
        assert data_files(tmp_path / f"r{n}" / "PKGNAME") == data_files(src)

    # a wrong URI: one line naming what is there instead
    for cmd in ("verify", "restore"):
        extra = ["--to", tmp_path / "never"] if cmd == "restore" else []
        r = run(cmd, f"s3://archive-a/{prefix}/titles/PKGNAM", *extra)
        assert r.exit_code == 2
        assert r.stderr.strip() == (f"deliver: error: no package at s3://archive-a/{prefix}/titles/PKGNAM; "
                                    f"found packages: {s3_copy}")
        r = run(cmd, tmp_path / "nas" / "PKGNAM", *extra)
        assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
        assert f"no package at {tmp_path / 'nas' / 'PKGNAM'}; found packages: {local_copy}" in r.stderr
    assert not (tmp_path / "never").exists()

    # a target holding two packages: verify checks both, restore asks which one
    other = make_folder(tmp_path / "OTHER")
    assert run("archive", other, "--to", local_target).exit_code == 0
    r = run("verify", local_target)
    assert r.exit_code == 0 and r.stdout.count("OK") == 2
    r = run("restore", local_target, "--to", tmp_path / "r-two")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert f"no single package at {local_target}; found packages: {local_target / 'OTHER'}, {local_copy}" in r.stderr


SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLESECRET"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize("uri", [
    f"s3://{KEY_ID}:{SECRET}@archive-a/x",
    f"s3://{KEY_ID}@archive-a/x",
    f"s3://archive-a/x?aws_access_key_id={KEY_ID}&aws_secret_access_key={SECRET}",
    f"s3://archive-a/x?storage_class=STANDARD&aws_session_token={SECRET}",
    f"s3://archive-a/x?endpoint_url=http://{KEY_ID}:{SECRET}@127.0.0.1:9",
])
def test_credentials_in_uris_are_refused_and_never_printed(uri, tmp_path, run):
    src = make_folder(tmp_path / "PKG")
    for args in (["archive", src, "--to", uri], ["archive", src, "--to", uri, "--prefect"],
                 ["verify", uri], ["verify", uri, "--prefect"], ["restore", uri, "--to", tmp_path / "r"]):
        r = run(*args)
        out = r.stdout + r.stderr
        assert r.exit_code == 2, (args, out)
        assert len(r.stderr.strip().splitlines()) == 1 and "credentials are not accepted in a URI" in r.stderr
        assert SECRET not in out and KEY_ID not in out and "***" in r.stderr
    assert not (src / "ascmhl").exists() and not (tmp_path / "r").exists()


def test_empty_folders_reach_local_copies_so_directory_hashes_verify(tmp_path, run):
    src = make_folder(tmp_path / "CARD")
    (src / "clips" / "A002").mkdir()  # an empty folder counts in its parent's directory hashes
    assert ascmhl("create", "-h", "xxh128", src).returncode == 0
    assert run("archive", src, "--to", tmp_path / "lto").exit_code == 0
    copy = tmp_path / "lto" / "CARD"
    assert (copy / "clips" / "A002").is_dir()
    assert reference_directory_hash_errors(copy) == ""
    r = run("restore", copy, "--to", tmp_path / "back")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "back" / "CARD" / "clips" / "A002").is_dir()
    assert reference_directory_hash_errors(tmp_path / "back" / "CARD") == ""


def test_credentials_in_a_configured_endpoint_are_refused_and_never_printed(tmp_path, run, monkeypatch):
    config = tmp_path / "storage.yaml"
    config.write_text(f"targets:\n  offsite:\n    uri: s3://archive-a/x\n"
                      f"    endpoint_url: http://{KEY_ID}:{SECRET}@127.0.0.1:9\n")
    monkeypatch.setenv("DELIVER_STORAGE_CONFIG", str(config))
    r = run("archive", make_folder(tmp_path / "PKG"), "--to", "offsite")
    assert r.exit_code == 2 and "credentials are not accepted in a URI" in r.stderr
    assert SECRET not in r.stdout + r.stderr and KEY_ID not in r.stdout + r.stderr


def test_empty_folders_come_back_from_s3_so_directory_hashes_verify(s3, tmp_path, prefix, run):
    src = make_folder(tmp_path / "CARD")
    (src / "clips" / "A002").mkdir()  # S3 stores no folders: the restore makes it from the history
    assert ascmhl("create", "-h", "xxh128", src).returncode == 0
    target = f"s3://archive-a/{prefix}/cards"
    assert run("archive", src, "--to", target).exit_code == 0
    r = run("restore", f"{target}/CARD", "--to", tmp_path / "back")
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "back" / "CARD" / "clips" / "A002").is_dir()
    assert reference_directory_hash_errors(tmp_path / "back" / "CARD") == ""
