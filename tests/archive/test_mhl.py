"""tasks/archive/mhl.py and hashing.py: xxh128, ASC MHL generations with our own hashes, verification."""

from __future__ import annotations

import pytest
import xxhash

from specs.errors import BadInputError, VerificationError
from tasks.archive.hashing import crc64nvme, crc64nvme_b64, digest_file, hash_file_xxh128
from tasks.archive.mhl import mhl_expected, verify_mhl, write_mhl_generation
from tests.archive.helpers import latest_process, make_package, mhl_rc


def test_hash_file_xxh128_matches_xxhash_and_crc64nvme(tmp_path):
    p = tmp_path / "f.bin"
    data = bytes(range(256)) * 40_000  # > one 8 MiB block? no: 10 MB -> two blocks
    p.write_bytes(data)
    assert hash_file_xxh128(p) == xxhash.xxh3_128(data).hexdigest()
    d = digest_file(p)
    assert d.size == len(data) and d.crc64nvme == crc64nvme_b64(crc64nvme(data))
    # crc64nvme of an empty object, as S3 reports it
    assert crc64nvme_b64(crc64nvme(b"")) == "AAAAAAAAAAA="


def test_generations_in_place_then_transfer_readable_by_ascmhl(tmp_path):
    root = make_package(tmp_path / "PKG")
    assert latest_process(root) == "in-place"
    hashes = {rel: h for rel, (h, _s) in mhl_expected(root).items()}
    gen = write_mhl_generation(root, process="transfer", location="s3://b/p/PKG", comment="copy", hashes=hashes)
    assert gen.name.startswith("0002_PKG_") and gen.exists()
    assert latest_process(root) == "transfer"
    text = gen.read_text()
    assert 'action="verified"' in text and "<location>s3://b/p/PKG</location>" in text
    assert mhl_rc(root) == 0
    assert verify_mhl(root) == []


def test_mismatch_missing_new_reported_and_no_generation_written(tmp_path):
    root = make_package(tmp_path / "PKG", big_bytes=1000)
    (root / "report.json").write_text('{"verdict": "fail"}\n')
    (root / "audio" / "mix_51.wav").unlink()
    (root / "extra.txt").write_text("x")
    kinds = {m.path: m.kind for m in verify_mhl(root)}
    assert kinds == {"report.json": "mismatch", "audio/mix_51.wav": "missing", "extra.txt": "new"}
    before = sorted((root / "ascmhl").iterdir())
    with pytest.raises(VerificationError, match="report.json"):
        write_mhl_generation(root, process="transfer", location="x", comment="")
    assert sorted((root / "ascmhl").iterdir()) == before
    assert mhl_rc(root) != 0


def test_tampered_history_is_a_verification_error(tmp_path):
    root = make_package(tmp_path / "PKG", big_bytes=1000)
    mhl = sorted((root / "ascmhl").glob("0001_*.mhl"))[0]
    mhl.write_text(mhl.read_text().replace("test package", "test packagE"))
    with pytest.raises(VerificationError, match="damaged"):
        verify_mhl(root)


def test_bad_inputs(tmp_path):
    with pytest.raises(BadInputError):
        write_mhl_generation(tmp_path / "nope", process="in-place", location="", comment="")
    with pytest.raises(BadInputError):
        verify_mhl(tmp_path)
    root = make_package(tmp_path / "PKG", big_bytes=10)
    with pytest.raises(BadInputError, match="not in the package"):
        write_mhl_generation(root, process="transfer", location="", comment="", hashes={"ghost.mov": "0" * 32})
