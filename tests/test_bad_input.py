"""Bad input: one clear line on stderr, the documented exit code, no traceback, nothing under a final name.

The hostile corpus (:data:`CASES`, issue 14) runs each case through the installed ``deliver`` script in a
subprocess, as a user would. The cases that reach a flow share the local Prefect server the first one starts
(:mod:`flows.server`, under the session's ``DELIVER_HOME``; tests/conftest.py stops it). Each asserts:

* the exit code of the README (2 bad input, 3 infrastructure);
* exactly one line on stderr, ``deliver: error: ...``, naming the input at fault (S3 retry notes, which
  say what is being retried, are the only other lines allowed);
* no traceback and no Prefect log line (``| ERROR``) on stderr or stdout;
* nothing under a final name in the output folder (log files aside), and no ``*.partial*`` left.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The installed console script, exactly as a user runs it.
DELIVER = [str(Path(sys.executable).parent / "deliver")]


def _deliver(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DELIVER, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def fake_mov(tmp_path: Path) -> Path:
    p = tmp_path / "master.mov"
    p.write_text("this is a text file, not a QuickTime movie\n")
    return p


def _assert_one_clean_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_qc_of_text_file_named_mov(fake_mov, tmp_path):
    proc = _deliver("qc", str(fake_mov), "--spec", "demo", "--json", str(tmp_path / "r.json"), cwd=tmp_path)
    _assert_one_clean_line(proc, "master.mov", "not readable media")
    assert not (tmp_path / "r.json").exists()


def test_run_with_text_file_named_mov_writes_nothing(fake_mov, tmp_path):
    out = tmp_path / "out"
    proc = _deliver("run", "--master", str(fake_mov), "--mix", str(fake_mov), "--spec", "demo", "--title", "T",
                    "--out", str(out), cwd=tmp_path)
    _assert_one_clean_line(proc, "master.mov")
    assert not out.exists()


def test_missing_file_and_unknown_spec(tmp_path):
    _assert_one_clean_line(_deliver("qc", str(tmp_path / "nope.mov"), "--spec", "demo", cwd=tmp_path), "not found")
    real = tmp_path / "x.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(real)], check=True)
    proc = _deliver("qc", str(real), "--spec", "no-such-spec", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no-such-spec" in proc.stderr


def test_wrong_channel_count_mix_is_bad_input(tmp_path):
    from tasks.media.synth import WrongChannelCountDefect, make_sample_set

    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True,
                            defects=[WrongChannelCountDefect(channels=4)])
    out = tmp_path / "out"
    proc = _deliver("run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]), "--mix",
                    str(media.mixes["2.0"]), "--spec", "demo", "--title", "T", "--out", str(out), cwd=tmp_path)
    _assert_one_clean_line(proc, "4 channels")
    assert not out.exists()


def test_run_with_a_language_that_is_not_a_tag_is_bad_input(tmp_path):
    from tasks.media.synth import make_sample_set

    media = make_sample_set(tmp_path / "media", layout="5.1", stereo=True)
    out = tmp_path / "out"
    proc = _deliver("run", "--master", str(media.master), "--mix", str(media.mixes["5.1"]), "--mix",
                    str(media.mixes["2.0"]), "--spec", "demo", "--title", "T", "--out", str(out), "--lang", "Deutsch",
                    cwd=tmp_path)
    _assert_one_clean_line(proc, "--lang 'Deutsch' is not a language tag")
    assert not out.exists()



# ---------------------------------------------------------------------------------------------------------------
# The hostile corpus
# ---------------------------------------------------------------------------------------------------------------

from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from tests.hostile.corpus import SECRET, Corpus, deliver, make_corpus, mounted_tmpfs  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One hostile input: the command line, the documented exit code, what the one stderr line must name."""

    id: str
    argv: Callable[[Corpus, Path], list[str | Path]]
    code: int
    names: Callable[[Corpus, Path], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    #: the line must not contain these (credentials)
    hidden: tuple[str, ...] = ()
    #: wall-clock limit of the whole command, seconds (refused fast)
    max_s: float = 120.0


def _run(c: Corpus, out: Path, *, master: Path | None = None, mixes: list[Path] | None = None, spec: str = "demo",
         title: str = "T", extra: tuple[str | Path, ...] = ()) -> list[str | Path]:
    args: list[str | Path] = ["run", "--master", master or c.master]
    for mix in mixes if mixes is not None else [c.mix51, c.mix20]:
        args += ["--mix", mix]
    return [*args, "--spec", spec, "--title", title, "--out", out, *extra]


def _name(key: str) -> Callable[[Corpus, Path], list[str]]:
    return lambda c, out: [c[key].name]


_SPEC = "spec"
_UNREACHABLE_S3 = "s3://bucket/titles?endpoint_url=http://127.0.0.1:9"

CASES: list[Case] = [
    # -- media -----------------------------------------------------------------------------------------------
    Case("master-random-bytes", lambda c, o: _run(c, o, master=c["random.mov"]), 2, _name("random.mov")),
    Case("master-truncated", lambda c, o: _run(c, o, master=c["truncated.mov"]), 2, _name("truncated.mov")),
    Case("master-zero-bytes", lambda c, o: _run(c, o, master=c["zero.mov"]), 2,
         lambda c, o: ["zero.mov", "empty"]),
    Case("master-stsz-damaged", lambda c, o: _run(c, o, master=c["stsz.mov"]), 2,
         lambda c, o: ["stsz.mov", "picture master", "damaged container index"]),
    Case("qc-stsz-damaged", lambda c, o: ["qc", c["stsz.mov"], "--spec", "demo", "--json", o / "r.json"], 2,
         lambda c, o: ["stsz.mov", "damaged container index"]),
    Case("master-not-media", lambda c, o: _run(c, o, master=c["text.mov"]), 2, lambda c, o: ["text.mov",
                                                                                             "not readable media"]),
    Case("master-is-a-wav", lambda c, o: _run(c, o, master=c.mix20), 2, lambda c, o: [c.mix20.name, "no video"]),
    Case("master-audio-only", lambda c, o: _run(c, o, master=c["audio_only.mov"]), 2,
         lambda c, o: ["audio_only.mov", "no video"]),
    Case("master-8-gib-sparse", lambda c, o: _run(c, o, master=c["sparse.mov"]), 2, _name("sparse.mov"), max_s=60),
    Case("qc-of-a-wav", lambda c, o: ["qc", c.mix20, "--spec", "demo", "--json", o / "r.json"], 2,
         lambda c, o: [c.mix20.name, "not a picture master"]),
    # -- mixes -----------------------------------------------------------------------------------------------
    Case("mix-wrong-channel-count", lambda c, o: _run(c, o, mixes=[c["4ch.wav"], c.mix20]), 2,
         lambda c, o: ["4ch.wav", "4 channels"]),
    Case("mix-wrong-rate", lambda c, o: _run(c, o, mixes=[c["44k.wav"], c.mix20]), 2,
         lambda c, o: ["44k.wav", "44100 Hz"]),
    Case("mix-one-sample", lambda c, o: _run(c, o, mixes=[c["one_sample.wav"], c.mix51]), 2, _name("one_sample.wav")),
    Case("mix-truncated-wav", lambda c, o: _run(c, o, mixes=[c["truncated.wav"], c.mix51]), 2,
         _name("truncated.wav")),
    Case("mix-not-media", lambda c, o: _run(c, o, mixes=[c["text.mov"], c.mix20]), 2, _name("text.mov")),
    Case("loudness-one-sample", lambda c, o: ["loudness", c["one_sample.wav"]], 2,
         lambda c, o: ["one_sample.wav", "400 ms gating block"]),
    Case("loudness-truncated-wav", lambda c, o: ["loudness", c["truncated.wav"]], 2,
         lambda c, o: ["truncated.wav", "truncated"]),
    Case("loudness-zero-bytes", lambda c, o: ["loudness", c["zero.mov"]], 2, lambda c, o: ["zero.mov", "empty"]),
    # -- specs -----------------------------------------------------------------------------------------------
    Case("spec-yaml-bomb", lambda c, o: _run(c, o, spec=str(c["bomb.yaml"])), 2,
         lambda c, o: ["bomb.yaml", "aliases"], max_s=30),
    Case("spec-20000-levels", lambda c, o: _run(c, o, spec=str(c["deep.yaml"])), 2,
         lambda c, o: ["deep.yaml", "nested more than 64 levels"], max_s=30),
    Case("spec-show-20000-levels", lambda c, o: [_SPEC, "show", c["deep.yaml"]], 2,
         lambda c, o: ["deep.yaml", "nested more than 64 levels"], max_s=30),
    Case("spec-50-mb-of-keys", lambda c, o: _run(c, o, spec=str(c["keys.yaml"])), 2,
         lambda c, o: ["keys.yaml", "at most 1 MB"], max_s=30),
    Case("spec-extends-etc-passwd", lambda c, o: _run(c, o, spec=str(c["passwd.yaml"])), 2,
         lambda c, o: ["passwd.yaml", "/etc/passwd"]),
    Case("spec-unknown-key", lambda c, o: _run(c, o, spec=str(c["unknown.yaml"])), 2,
         lambda c, o: ["unknown.yaml:6", "pictur"]),
    Case("spec-wrong-type", lambda c, o: _run(c, o, spec=str(c["types.yaml"])), 2,
         lambda c, o: ["types.yaml:7", "'wide' is not a number"]),
    Case("spec-missing-file", lambda c, o: _run(c, o, spec=str(c.root / "specs" / "nope.yaml")), 2,
         lambda c, o: ["nope.yaml"]),
    Case("spec-lint-missing-file", lambda c, o: [_SPEC, "lint", c.root / "specs" / "nope.yaml"], 2,
         lambda c, o: ["nope.yaml", "no such spec file"]),
    Case("spec-lint-empty-folder", lambda c, o: [_SPEC, "lint", c.root / "empty-specs"], 2,
         lambda c, o: ["empty-specs", "no spec files"]),
    Case("spec-name-escapes-package", lambda c, o: _run(c, o, spec=str(c["escape.yaml"])), 2,
         lambda c, o: ["escape.yaml", "../../{title}_{id}.{ext}"]),
    # -- paths and name fields -------------------------------------------------------------------------------
    Case("out-is-a-file", lambda c, o: _run(c, c["a_file"]), 2, lambda c, o: ["--out", "a_file", "is a file"],
         max_s=30),
    Case("out-under-a-file", lambda c, o: _run(c, c["a_file"] / "out"), 2,
         lambda c, o: ["--out", "a_file", "regular file"], max_s=30),
    Case("out-symlink-loop", lambda c, o: _run(c, c["loop"]), 2, lambda c, o: ["--out", "loop_a", "symbolic link loop"],
         max_s=30),
    Case("archive-symlink-loop", lambda c, o: _run(c, o, extra=("--archive", c["loop"])), 2,
         lambda c, o: ["--archive", "loop_a", "symbolic link loop"], max_s=30),
    Case("archive-is-a-file", lambda c, o: _run(c, o, extra=("--archive", c["a_file"])), 2,
         lambda c, o: ["--archive", "a_file", "is a file"], max_s=30),
    Case("archive-cmd-to-symlink-loop", lambda c, o: ["archive", c.root / "media", "--to", c["loop"]], 2,
         lambda c, o: ["--to", "loop_a", "symbolic link loop"]),
    Case("archive-cmd-to-a-file", lambda c, o: ["archive", c.root / "media", "--to", c["a_file"]], 2,
         lambda c, o: ["--to", "a_file", "is a file"]),
    Case("restore-to-a-file", lambda c, o: ["restore", c.root / "media", "--to", c["a_file"]], 2,
         lambda c, o: ["--to", "a_file", "is a file"]),
    Case("qc-report-under-a-file", lambda c, o: ["qc", c.master, "--spec", "demo", "--json", c["a_file"] / "r.json"],
         2, lambda c, o: ["--json", "a_file", "regular file"]),
    Case("recipient-escapes-folder", lambda c, o: _run(c, o, extra=("--recipient", "../../etc")), 2,
         lambda c, o: ["--recipient", "../../etc"], max_s=30),
    Case("date-escapes-folder", lambda c, o: _run(c, o, extra=("--date", "../../2026-12-07")), 2,
         lambda c, o: ["--date", "../../2026-12-07"], max_s=30),
    Case("title-shell-metacharacters", lambda c, o: _run(c, o, title="T;rm -rf ~"), 2,
         lambda c, o: ["--title", "T;rm -rf ~", "letters, digits"], max_s=30),
    Case("title-command-substitution", lambda c, o: _run(c, o, title="$(touch pwned)"), 2,
         lambda c, o: ["--title", "$(touch pwned)"], max_s=30),
    # -- credentials in URIs -----------------------------------------------------------------------------------
    Case("s3-uri-with-key-and-secret",
         lambda c, o: _run(c, o, extra=("--archive", f"s3://AKIAEXAMPLE:{SECRET}@bucket/x")), 2,
         lambda c, o: ["credentials are not accepted in a URI", "s3://***@bucket/x"], hidden=(SECRET, "AKIAEXAMPLE")),
    Case("s3-uri-with-secret-query", lambda c, o: _run(
        c, o, extra=("--archive", f"s3://bucket/x?aws_secret_access_key={SECRET}")), 2,
        lambda c, o: ["credentials are not accepted in a URI", "aws_secret_access_key=***"], hidden=(SECRET,)),
    Case("restore-uri-with-secret", lambda c, o: ["restore", f"s3://AKIAEXAMPLE:{SECRET}@bucket/x/P", "--to", o],
         2, lambda c, o: ["credentials are not accepted in a URI"], hidden=(SECRET, "AKIAEXAMPLE")),
    # -- infrastructure ------------------------------------------------------------------------------------------
    Case("prefect-api-down", lambda c, o: _run(c, o), 3, lambda c, o: ["Prefect API", "127.0.0.1:9"],
         env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}),
    Case("s3-unreachable-archive-cmd", lambda c, o: ["archive", c.root / "media", "--to", _UNREACHABLE_S3], 3,
         lambda c, o: ["s3://bucket", "http://127.0.0.1:9", "unreachable", "tried to connect"],
         env={"DELIVER_S3_UNREACHABLE_BUDGET_S": "4", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": SECRET},
         hidden=(SECRET,), max_s=30),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("hostile"))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def _final_names(folder: Path, kept: tuple[str, ...] = ()) -> list[str]:
    """Files under ``folder`` that are outputs under their final name (logs, the run lock, the steps' resume
    records and ``kept`` names aside)."""
    from tasks.media.files import LOCK_NAME, RECORDS_DIR

    return [str(p.relative_to(folder)) for p in _files(folder)
            if p.suffix != ".log" and p.name not in (*kept, LOCK_NAME)
            and not p.relative_to(folder).is_relative_to(RECORDS_DIR)]


def assert_refused(proc, code: int, names: list[str], *, hidden: tuple[str, ...] = ()) -> str:
    """The documented exit code and one ``deliver: error:`` line naming every one of ``names``; no traceback,
    no Prefect log line. Returns the line."""
    both = proc.stderr + proc.stdout
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in both and "| ERROR" not in both and "RecursionError" not in both, both[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("deliver: error:")]
    notes = [ln for ln in lines if ln not in errors and "retrying" not in ln and
             not ln.startswith("deliver: started a local Prefect server")]
    assert len(errors) == 1 and not notes, proc.stderr
    for name in names:
        assert name in errors[0], f"{name!r} not in {errors[0]!r}"
    for secret in hidden:
        assert secret not in both, f"{secret!r} printed"
    return errors[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_cleanly(case: Case, corpus: Corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    before = _files(corpus.root)
    proc, wall_s = deliver(*case.argv(corpus, out), cwd=tmp_path, env=case.env)
    assert_refused(proc, case.code, case.names(corpus, out), hidden=case.hidden)
    assert wall_s < case.max_s, f"took {wall_s:.1f} s (limit {case.max_s} s)"
    assert _final_names(out) == [], "outputs left under a final name"
    assert not [p for p in _files(tmp_path) if ".partial" in p.name]
    assert _files(corpus.root) == before, "an input folder was written to"
    assert not (tmp_path / "pwned").exists()


def test_the_corpus_has_at_least_30_cases() -> None:
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


def test_out_unwritable_is_refused_up_front(corpus: Corpus, tmp_path: Path) -> None:
    """--out on a read-only filesystem. As root, chmod stops no write, so the folder is a tmpfs mounted
    read-only (the same refusal a non-root user meets on a folder without write permission)."""
    try:
        ctx = mounted_tmpfs(tmp_path / "ro", "1M", read_only=True)
        ro = ctx.__enter__()
    except OSError as exc:
        pytest.skip(f"cannot mount a read-only tmpfs here: {exc}")
    try:
        proc, wall_s = deliver(*_run(corpus, ro / "out"), cwd=tmp_path)
        assert_refused(proc, 2, ["--out", str(ro), "not writable"])
        assert wall_s < 30
        proc, _ = deliver("restore", corpus.root / "media", "--to", ro / "r", cwd=tmp_path)
        assert_refused(proc, 2, ["--to", str(ro), "not writable"])
    finally:
        ctx.__exit__(None, None, None)


def test_s3_unreachable_in_a_run_is_retried_within_its_budget(corpus: Corpus, tmp_path: Path) -> None:
    """The whole deliver run with an archive target whose endpoint refuses connections: the archive step
    retries the connection for at most DELIVER_S3_UNREACHABLE_BUDGET_S (each retry logged with what it retries),
    then exit 3 with one line; Prefect does not retry the step again on top."""
    out = tmp_path / "out"
    budget_s = 4
    proc, wall_s = deliver(*_run(corpus, out, extra=("--archive", _UNREACHABLE_S3)), cwd=tmp_path,
                           env={"DELIVER_S3_UNREACHABLE_BUDGET_S": str(budget_s), "AWS_ACCESS_KEY_ID": "test",
                                "AWS_SECRET_ACCESS_KEY": SECRET})
    line = assert_refused(proc, 3, ["s3://bucket", "unreachable", f"limit {budget_s} s"], hidden=(SECRET,))
    assert str(out / "work" / "deliver.log") in line
    log = (out / "work" / "deliver.log").read_text()
    assert "retrying HeadBucket s3://bucket" in log and SECRET not in log
    assert log.count("tried to connect") >= 1 and "Retry 1/" not in log.split("retrying HeadBucket", 1)[1]
    assert wall_s < 120, f"{wall_s:.0f} s"


# ---------------------------------------------------------------------------------------------------------------
# Full disk (issue 14, build point 8): a small tmpfs fills up during the deliverables and during the archive
# ---------------------------------------------------------------------------------------------------------------

from tests.hostile.corpus import remount  # noqa: E402


def _small_disk(where: Path, size: str):
    try:
        return mounted_tmpfs(where, size)
    except OSError as exc:  # pragma: no cover - CI runs as root on a machine that can mount
        pytest.skip(f"this machine cannot mount a tmpfs (needs root and mount(2)): {exc}")


def test_disk_full_during_deliverables_exits_3_and_a_rerun_completes(corpus: Corpus, tmp_path: Path) -> None:
    """The layback (about the size of master + mixes) fits, the mezzanine does not: exit 3 naming the file being
    written, no partial left, nothing in the package folder; after space is freed the same command completes."""
    inputs_kib = sum(p.stat().st_size for p in (corpus.master, corpus.mix51, corpus.mix20)) // 1024
    disk = tmp_path / "disk"
    with _small_disk(disk, f"{inputs_kib + 1200}k"):
        out = disk / "out"
        argv = _run(corpus, out)
        proc, _ = deliver(*argv, cwd=tmp_path)
        line = assert_refused(proc, 3, ["no space left on device", str(out / "T_v1")])
        assert ".partial" in line  # the file being written when the disk filled, by its partial name
        assert not [p for p in _files(disk) if ".partial" in p.name]
        assert _final_names(out / "T_v1") == []
        assert _final_names(out) == ["work/T_v1_layback.mov"]  # the finished step, kept for the rerun
        remount(disk, "64m")
        proc, _ = deliver(*argv, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        made = {p.name for p in _files(out / "T_v1")}
        assert {"T_v1_mezzanine.mov", "T_v1_screener.mp4", "manifest.json"} <= made
        assert not [p for p in _files(disk) if ".partial" in p.name]


def test_disk_full_during_layback_exits_3_naming_the_file(corpus: Corpus, tmp_path: Path) -> None:
    """A 2 MiB disk cannot hold the married master: exit 3 naming the layback being written (never ffmpeg's bare
    "Conversion failed!"), no partial file left, nothing under a final name."""
    disk = tmp_path / "disk"
    with _small_disk(disk, "2m"):
        out = disk / "out"
        proc, _ = deliver(*_run(corpus, out), cwd=tmp_path)
        line = assert_refused(proc, 3, ["no space left on device", str(out / "work" / "T_v1_layback.partial")])
        assert re.search(r"T_v1_layback\.partial[^ ]*\.mov", line), line  # the partial name, whoever wrote it
        assert "Conversion failed" not in proc.stderr
        assert not [p for p in _files(disk) if ".partial" in p.name]
        assert _final_names(out) == []


def test_disk_full_during_archive_exits_3_and_a_rerun_completes(corpus: Corpus, tmp_path: Path) -> None:
    """A 1 MiB archive disk for a 7 MiB folder: exit 3 naming the target folder, no partial file left on it (only
    files copied whole), nothing recorded; after space is freed the same command archives and verifies every
    file."""
    package = tmp_path / "package"
    shutil.copytree(corpus.root / "media", package)
    disk = tmp_path / "vault"
    with _small_disk(disk, "1m"):
        argv = ["archive", package, "--to", disk / "lto", "--title", "FULL"]
        proc, _ = deliver(*argv, cwd=tmp_path)
        assert_refused(proc, 3, ["no space left on device", str(disk / "lto" / "package")])
        left = _files(disk)
        assert not [p for p in left if ".partial" in p.name]
        # a file copied whole before the disk filled may stay (the rerun verifies it); never a torn one
        for p in left:
            assert p.read_bytes() == (package / p.relative_to(disk / "lto" / "package")).read_bytes(), p
        assert sum(p.stat().st_size for p in left) < 1 << 20
        remount(disk, "64m")
        proc, _ = deliver(*argv, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        copied = {p.relative_to(disk / "lto" / "package") for p in _files(disk / "lto" / "package")}
        assert {Path(p.name) for p in _files(corpus.root / "media")} <= copied
        assert "verified" in proc.stdout


def test_archive_of_a_read_only_folder_is_refused_before_any_copy(corpus: Corpus, tmp_path: Path) -> None:
    """A camera card or a mounted master volume that cannot take the ASC MHL history: exit 2 naming the folder,
    before a byte reaches the target (the copies would otherwise be made, then left without their history)."""
    card = tmp_path / "card"
    with _small_disk(card, "32m"):
        package = card / "A001"
        shutil.copytree(corpus.root / "media", package)
        subprocess.run(["mount", "-o", "remount,ro", str(card)], check=True)
        vault = tmp_path / "vault"
        proc, _ = deliver("archive", package, "--to", vault, "--title", "CARD", cwd=tmp_path)
        assert_refused(proc, 2, [str(package), "read-only"])
        assert not vault.exists() or not _files(vault)
        assert not (package / "ascmhl").exists()
