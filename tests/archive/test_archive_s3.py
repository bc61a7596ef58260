"""Archive to local folders and a real S3 server (SeaweedFS on loopback): one read pass, server-validated
CRC64NVME, HeadObject verification, resume, corruption, restore, catalog, storage options, secrets."""

from __future__ import annotations

import builtins
import io
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from specs.errors import BadInputError, InfrastructureError, VerificationError
from tasks.archive import copy as copy_mod, s3 as s3mod
from tasks.archive.catalog import locate
from tasks.archive.copy import archive_package
from tasks.archive.hashing import digest_file
from tasks.archive.mhl import mhl_expected
from tasks.archive.restoring import restore
from tasks.archive.s3 import UploadRejectedError, choose_part_size
from tasks.archive.verify import verify_uri
from tasks.media.files import PARTIAL_GLOB
from tests.archive import s3server
from tests.archive.helpers import S3_SMALL_PARTS, latest_process, make_package, mhl_rc

MiB = 1024 * 1024


@pytest.fixture
def hooks():
    """Register botocore event handlers on the clients archive code creates (removed afterwards)."""
    added = []

    def add(event, fn):
        s3mod.CLIENT_EVENT_HOOKS.append((event, fn))
        added.append((event, fn))
        s3mod.reset_clients()

    yield add
    for item in added:
        s3mod.CLIENT_EVENT_HOOKS.remove(item)
    s3mod.reset_clients()


def _count_calls(hooks, op: str) -> list[int]:
    n = [0]

    def count(**kwargs):
        n[0] += 1

    hooks(f"before-call.s3.{op}", count)
    return n


# -- part size ------------------------------------------------------------------------------------

def test_choose_part_size_respects_s3_limits():
    assert choose_part_size(100 * MiB) == 16 * MiB
    assert choose_part_size(100 * MiB, 5 * MiB) == 5 * MiB
    two_tb = 2 * 10**12
    part = choose_part_size(two_tb)
    assert part >= two_tb / 10_000 and part % MiB == 0 and -(-two_tb // part) <= 10_000
    assert choose_part_size(40 * 1024**4) <= 5 * 1024 * MiB
    with pytest.raises(BadInputError):
        choose_part_size(60 * 1024**4)


# -- one read pass, several targets -----------------------------------------------------------------

def test_local_and_two_s3_targets_from_one_read(s3, package, tmp_path, prefix, monkeypatch, hooks):
    opened: dict[str, int] = {}
    real_open = builtins.open

    def counting_open(file, *a, **kw):
        if str(file).startswith(str(package)) and "ascmhl" not in str(file):
            opened[str(file)] = opened.get(str(file), 0) + 1
        return real_open(file, *a, **kw)

    monkeypatch.setattr(copy_mod, "open", counting_open, raising=False)
    parts = _count_calls(hooks, "UploadPart")
    progress: list[tuple[int, int]] = []
    targets = [f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}", f"s3://archive-b/{prefix}/eu?{S3_SMALL_PARTS}",
               str(tmp_path / "lto")]
    copies = archive_package(package, targets, title="Film", progress=lambda d, t: progress.append((d, t)))

    files = mhl_expected(package)
    total = sum((package / rel).stat().st_size for rel in files)
    # every source file opened exactly once by the copy pass, whatever the number of targets
    assert sorted(opened) == sorted(str(package / rel) for rel in files)
    assert set(opened.values()) == {1}
    assert progress[-1] == (total, total)
    assert [c.verified for c in copies] == [True, True, True]
    assert [c.uri for c in copies] == [f"s3://archive-a/{prefix}/FILM_v1", f"s3://archive-b/{prefix}/eu/FILM_v1",
                                       (tmp_path / "lto" / "FILM_v1").as_uri()]
    assert all(c.files == len(files) and c.bytes == total for c in copies)
    # the 12 MiB master went up in 3 parts of 5 MiB to each bucket
    assert parts[0] == 2 * 3

    client = s3.client()
    master = package / "IMF" / "MASTER_PRORES.mov"
    want = digest_file(master)
    for bucket, key in (("archive-a", f"{prefix}/FILM_v1"), ("archive-b", f"{prefix}/eu/FILM_v1")):
        h = client.head_object(Bucket=bucket, Key=f"{key}/IMF/MASTER_PRORES.mov", ChecksumMode="ENABLED")
        assert h["ChecksumCRC64NVME"] == want.crc64nvme  # full-object CRC64NVME = what we read
        assert h["ChecksumType"] == "FULL_OBJECT" and h["ContentLength"] == want.size
        assert h["ETag"].strip('"').endswith("-3")
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]}
        assert f"{key}/ascmhl/ascmhl_chain.xml" in keys and f"{key}.deliver-manifest.json" in keys

    # the source history got one transfer generation per copy, and every copy carries the full history
    assert len(list((package / "ascmhl").glob("*.mhl"))) == 1 + 3
    assert latest_process(package) == "transfer"
    local = tmp_path / "lto" / "FILM_v1"
    assert mhl_rc(local) == 0 and mhl_rc(package) == 0
    generations = sorted(p.name for p in (package / "ascmhl").iterdir())
    assert sorted(p.name for p in (local / "ascmhl").iterdir()) == generations
    assert not list(local.rglob(PARTIAL_GLOB))


def test_server_validates_crc64nvme(s3, prefix, package, hooks):
    """A part damaged in transit is rejected by the server (BadDigest) and surfaced as a retryable error;
    the upload is kept, and the next run sends only the part that is missing."""
    state = {"done": False}

    def corrupt_first_part(params, **kwargs):
        if not state["done"]:
            raw = params["body"]
            body = bytearray(raw.read() if hasattr(raw, "read") else raw)
            body[100] ^= 0xFF  # the x-amz-checksum-crc64nvme header still has the true part's CRC
            params["body"] = io.BytesIO(bytes(body))
            state["done"] = True

    hooks("before-call.s3.UploadPart", corrupt_first_part)
    parts = _count_calls(hooks, "UploadPart")
    target = f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}&concurrency=1&max_attempts=1"
    with pytest.raises(UploadRejectedError, match="BadDigest"):
        archive_package(package, [target], title="Film")
    client = s3.client()
    key = f"{prefix}/FILM_v1/IMF/MASTER_PRORES.mov"
    upload = client.list_multipart_uploads(Bucket="archive-a", Prefix=key)["Uploads"][0]
    stored = [p["PartNumber"] for p in client.list_parts(Bucket="archive-a", Key=key,
                                                           UploadId=upload["UploadId"]).get("Parts", [])]
    assert 1 not in stored  # the damaged part was never stored
    sent_before = parts[0]
    copies = archive_package(package, [target], title="Film")
    assert copies[0].verified and parts[0] - sent_before == 3 - len(stored)

    # single PUT with a wrong CRC64NVME: rejected too
    c = s3mod.client_for(s3mod.S3Target(name="x", bucket="archive-a"))
    from tasks.archive.hashing import crc64nvme, crc64nvme_b64
    with pytest.raises(Exception) as exc:
        c.put_object(Bucket="archive-a", Key=f"{prefix}/bad", Body=b"abc",
                     ChecksumCRC64NVME=crc64nvme_b64(crc64nvme(b"abd")))
    assert "BadDigest" in str(exc.value) or "checksum" in str(exc.value).lower()


def test_resume_after_interrupted_multipart_upload(s3, tmp_path, prefix, hooks):
    pkg = make_package(tmp_path / "RESUME", big_bytes=23 * MiB + 7)  # 5 parts of 5 MiB
    calls = {"n": 0, "fail_at": 3}

    def interrupt(**kwargs):
        calls["n"] += 1
        if calls["fail_at"] and calls["n"] == calls["fail_at"]:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/simulated-outage")

    hooks("before-call.s3.UploadPart", interrupt)
    target = f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}&concurrency=1&max_attempts=1&part_retries=0"
    with pytest.raises(InfrastructureError, match="unreachable"):
        archive_package(pkg, [target], title="Resume")
    client = s3.client()
    key = f"{prefix}/RESUME/IMF/MASTER_PRORES.mov"
    uploads = client.list_multipart_uploads(Bucket="archive-a", Prefix=key)["Uploads"]
    assert len(uploads) == 1
    listed = client.list_parts(Bucket="archive-a", Key=key, UploadId=uploads[0]["UploadId"])["Parts"]
    done = [p["PartNumber"] for p in listed]
    # Parts 1 and 2 landed, part 3 failed; with a read-ahead pipeline part 4 may already have
    # been in flight when the failure surfaced (timing-dependent), never part 3.
    assert done[:2] == [1, 2] and 3 not in done

    calls.update(n=0, fail_at=0)
    copies = archive_package(pkg, [target], title="Resume")
    assert calls["n"] == 5 - len(done)  # only the missing parts are sent: the uploaded ones are reused
    assert copies[0].verified
    h = client.head_object(Bucket="archive-a", Key=key, ChecksumMode="ENABLED")
    assert h["ChecksumCRC64NVME"] == digest_file(pkg / "IMF" / "MASTER_PRORES.mov").crc64nvme
    assert not client.list_multipart_uploads(Bucket="archive-a", Prefix=key).get("Uploads")
    assert verify_uri(copies[0].uri).ok


def test_rerun_keeps_finished_objects_and_refuses_to_overwrite_different_ones(s3, package, tmp_path, prefix, hooks):
    target = f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}"
    archive_package(package, [target, str(tmp_path / "nas")], title="Film")
    puts = _count_calls(hooks, "UploadPart")
    archive_package(package, [target, str(tmp_path / "nas")], title="Film")
    assert puts[0] == 0  # nothing re-sent
    other = make_package(tmp_path / "other" / "FILM_v1", big_bytes=1000, seed=2)
    with pytest.raises(VerificationError, match="refusing to overwrite"):
        archive_package(other, [target], title="Film")
    with pytest.raises(VerificationError, match="MASTER_PRORES"):
        archive_package(other, [str(tmp_path / "nas")], title="Film")


# -- fixity -------------------------------------------------------------------------------------------

def test_verify_detects_corrupt_local_copy_and_s3_object(s3, package, tmp_path, prefix, monkeypatch):
    copies = archive_package(package, [f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}", str(tmp_path / "lto")],
                             title="Film")
    assert all(verify_uri(c.uri).ok for c in copies)
    assert verify_uri(f"s3://archive-a/{prefix}").ok  # a target prefix: every package under it
    assert verify_uri(str(tmp_path / "lto")).ok

    local = tmp_path / "lto" / "FILM_v1" / "audio" / "mix_51.wav"
    data = bytearray(local.read_bytes())
    data[5000] ^= 1
    local.write_bytes(bytes(data))
    client = s3.client()
    key = f"{prefix}/FILM_v1/report.json"
    size = client.head_object(Bucket="archive-a", Key=key)["ContentLength"]
    client.put_object(Bucket="archive-a", Key=key, Body=b"X" * size)  # same size, other bytes

    r_local = verify_uri(copies[1].uri)
    assert not r_local.ok and [(m.path, m.kind) for m in r_local.mismatches] == [("audio/mix_51.wav", "mismatch")]
    r_s3 = verify_uri(copies[0].uri)
    assert not r_s3.ok and [(m.path, m.kind) for m in r_s3.mismatches] == [("report.json", "mismatch")]
    # without the catalog (another machine): the manifest stored next to the package is enough
    monkeypatch.setenv("DELIVER_CATALOG_URL", f"sqlite:///{tmp_path / 'empty.sqlite'}")
    assert [m.path for m in verify_uri(copies[0].uri).mismatches] == ["report.json"]
    # a missing object and an unrecorded one
    client.delete_object(Bucket="archive-a", Key=f"{prefix}/FILM_v1/EMPTY.txt")
    client.put_object(Bucket="archive-a", Key=f"{prefix}/FILM_v1/stray.bin", Body=b"x")
    kinds = {m.path: m.kind for m in verify_uri(copies[0].uri).mismatches}
    assert kinds == {"report.json": "mismatch", "EMPTY.txt": "missing", "stray.bin": "new"}


# -- restore ------------------------------------------------------------------------------------------

def test_restore_round_trip_adds_generation(s3, package, tmp_path, prefix):
    copies = archive_package(package, [f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}&storage_class=DEEP_ARCHIVE"],
                             title="Film")
    gens_before = len(list((package / "ascmhl").glob("*.mhl")))
    # SeaweedFS stores DEEP_ARCHIVE but has no archive semantics (RestoreObject → MethodNotAllowed):
    # the objects are readable, so restore downloads them directly.
    report = restore(copies[0].uri, tmp_path / "restored")
    dest = tmp_path / "restored" / "FILM_v1"
    assert report.ok and report.dest == str(dest) and report.files == len(mhl_expected(package))
    assert len(list((dest / "ascmhl").glob("*.mhl"))) == gens_before + 1
    assert latest_process(dest) == "transfer" and "restore" in sorted((dest / "ascmhl").glob("*.mhl"))[-1].read_text()
    assert mhl_rc(dest) == 0
    for rel in mhl_expected(package):
        assert (dest / rel).read_bytes() == (package / rel).read_bytes()
    assert not [p for p in (tmp_path / "restored").iterdir() if p.name.startswith(".")]
    with pytest.raises(BadInputError, match="not empty"):
        restore(copies[0].uri, tmp_path / "restored")

    # a corrupted object: nothing restored, the file is named
    client = s3.client()
    key = f"{prefix}/FILM_v1/IMF/CPL.xml"
    size = client.head_object(Bucket="archive-a", Key=key)["ContentLength"]
    client.put_object(Bucket="archive-a", Key=key, Body=b"Y" * size)
    with pytest.raises(VerificationError, match="IMF/CPL.xml"):
        restore(copies[0].uri, tmp_path / "again")
    assert not (tmp_path / "again" / "FILM_v1").exists()


def test_restore_from_local_copy(package, tmp_path):
    copies = archive_package(package, [str(tmp_path / "nas")], title="Film")
    report = restore(copies[0].uri, tmp_path / "back")
    assert report.ok and mhl_rc(tmp_path / "back" / "FILM_v1") == 0


class _ArchiveClassClient:
    """Wraps a real client: objects look like DEEP_ARCHIVE and RestoreObject is recorded (SeaweedFS has no
    archive semantics and moto is not installed — see the README's fidelity notes)."""

    def __init__(self, real, restored: bool):
        self.real, self.restored, self.requests = real, restored, []

    def head_object(self, **kw):
        h = dict(self.real.head_object(**kw))
        h["StorageClass"] = "DEEP_ARCHIVE"
        if self.restored:
            h["Restore"] = 'ongoing-request="false", expiry-date="Fri, 21 Dec 2040 00:00:00 GMT"'
        elif kw["Key"] in {r["Key"] for r in self.requests}:
            h["Restore"] = 'ongoing-request="true"'
        return h

    def restore_object(self, **kw):
        self.requests.append(kw)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_restore_of_archive_class_requests_restore_and_reports_when_ready(s3, package, tmp_path, prefix, monkeypatch):
    from tasks.archive import restoring

    copies = archive_package(package, [f"s3://archive-a/{prefix}?restore_tier=Bulk&restore_days=3"], title="Film")
    fake = _ArchiveClassClient(s3mod.client_for(s3mod.S3Target(name="x", bucket="archive-a")), restored=False)
    monkeypatch.setattr(restoring, "client_for", lambda target: fake)
    report = restoring.restore(copies[0].uri + "?restore_tier=Bulk&restore_days=3", tmp_path / "r")
    assert not report.ok and report.pending and all(p.requested for p in report.pending)
    assert {r["RestoreRequest"]["GlacierJobParameters"]["Tier"] for r in fake.requests} == {"Bulk"}
    assert {r["RestoreRequest"]["Days"] for r in fake.requests} == {3}
    hours = (report.ready_by - report.pending[0].ready_by).total_seconds()
    assert hours == 0 and report.pending[0].tier == "Bulk"
    assert not (tmp_path / "r" / "FILM_v1").exists()
    # asked again while running: no new request
    n = len(fake.requests)
    again = restoring.restore(copies[0].uri, tmp_path / "r")
    assert not again.ok and len(fake.requests) == n and not any(p.requested for p in again.pending)
    # once restored: downloaded and verified
    fake.restored = True
    done = restoring.restore(copies[0].uri, tmp_path / "r")
    assert done.ok and mhl_rc(tmp_path / "r" / "FILM_v1") == 0


# -- catalog ------------------------------------------------------------------------------------------

def test_locate_by_title_and_hash(s3, package, tmp_path, prefix):
    copies = archive_package(package, [f"s3://archive-a/{prefix}", str(tmp_path / "lto")], title="The Film")
    found = locate("the film")
    rels = mhl_expected(package)
    assert len(found) == 2 * len(rels)
    master_hash = rels["IMF/MASTER_PRORES.mov"][0]
    where = locate(master_hash)
    assert sorted(loc.uri for loc in where) == sorted(f"{c.uri}/IMF/MASTER_PRORES.mov" for c in copies)
    assert all(loc.verified and loc.last_verified_at for loc in where)
    first = {loc.copy_uri: loc.last_verified_at for loc in where}
    verify_uri(copies[0].uri)
    later = {loc.copy_uri: loc.last_verified_at for loc in locate(master_hash)}
    assert later[copies[0].uri] > first[copies[0].uri] and later[copies[1].uri] == first[copies[1].uri]
    assert locate("nothing-like-this") == []


# -- storage options --------------------------------------------------------------------------------

def test_storage_class_sse_object_lock_and_legal_hold(s3, package, prefix):
    target = (f"s3://{s3server.LOCK_BUCKET}/{prefix}?{S3_SMALL_PARTS}&storage_class=GLACIER_IR&sse=AES256"
              "&object_lock_mode=GOVERNANCE&retain_days=2&legal_hold=true")
    copies = archive_package(package, [target], title="Film")
    assert copies[0].storage_class == "GLACIER_IR"
    client = s3.client()
    for rel in ("IMF/MASTER_PRORES.mov", "report.json"):  # multipart and single PUT
        key = f"{prefix}/FILM_v1/{rel}"
        h = client.head_object(Bucket=s3server.LOCK_BUCKET, Key=key)
        assert h["StorageClass"] == "GLACIER_IR"
        assert h["ServerSideEncryption"] == "AES256"
        ret = client.get_object_retention(Bucket=s3server.LOCK_BUCKET, Key=key)["Retention"]
        assert ret["Mode"] == "GOVERNANCE"
        hold = client.get_object_legal_hold(Bucket=s3server.LOCK_BUCKET, Key=key)["LegalHold"]
        assert hold["Status"] == "ON"
        vid = h.get("VersionId")
        with pytest.raises(ClientError):  # AccessDenied: the version is under retention and legal hold
            client.delete_object(Bucket=s3server.LOCK_BUCKET, Key=key, VersionId=vid)
    assert verify_uri(copies[0].uri).ok


# -- errors ---------------------------------------------------------------------------------------------

def test_bad_input_and_unreachable(s3, package, tmp_path):
    with pytest.raises(BadInputError, match="no such package"):
        archive_package(tmp_path / "missing", [str(tmp_path / "x")], title="t")
    with pytest.raises(BadInputError, match="unsupported target"):
        archive_package(package, ["ftp://host/x"], title="t")
    with pytest.raises(BadInputError, match="unknown target"):
        archive_package(package, ["offsite-eu"], title="t")
    with pytest.raises(BadInputError, match="bucket does not exist"):
        archive_package(package, ["s3://no-such-bucket-here/x"], title="t")
    with pytest.raises(BadInputError, match="inside the package"):
        archive_package(package, [str(package / "sub")], title="t")
    with pytest.raises(InfrastructureError, match="unreachable"):
        archive_package(package, ["s3://archive-a/x?endpoint_url=http://127.0.0.1:9&max_attempts=1"], title="t")


def test_named_targets_from_storage_config(s3, package, tmp_path, prefix, monkeypatch):
    cfg = tmp_path / "storage.yaml"
    cfg.write_text(f"""
targets:
  offsite:
    uri: s3://archive-b/{prefix}
    storage_class: STANDARD_IA
    part_size_mib: 5
    multipart_threshold_mib: 5
  lto:
    uri: {tmp_path / 'lto'}
""")
    monkeypatch.setenv("DELIVER_STORAGE_CONFIG", str(cfg))
    copies = archive_package(package, ["offsite", "lto"], title="Film")
    assert [c.target for c in copies] == ["offsite", "lto"]
    assert copies[0].storage_class == "STANDARD_IA" and copies[0].uri == f"s3://archive-b/{prefix}/FILM_v1"
    cfg.write_text("targets:\n  bad:\n    uri: s3://b/p\n    colour: red\n")
    with pytest.raises(BadInputError, match="colour"):
        archive_package(package, ["bad"], title="Film")


# -- secrets ------------------------------------------------------------------------------------------

def test_credentials_never_in_catalog_manifest_mhl_or_logs(s3, package, tmp_path, prefix, caplog):
    caplog.set_level("DEBUG")
    copies = archive_package(package, [f"s3://archive-a/{prefix}", str(tmp_path / "lto")], title="Film")
    verify_uri(copies[0].uri)
    restore(copies[0].uri, tmp_path / "r")
    client = s3.client()
    manifest = client.get_object(Bucket="archive-a", Key=f"{prefix}/FILM_v1.deliver-manifest.json")["Body"].read()
    ours = [manifest, (Path(str(tmp_path / "catalog.sqlite"))).read_bytes()]
    ours += [p.read_bytes() for p in (package / "ascmhl").iterdir()]
    ours += [p.read_bytes() for p in (tmp_path / "r" / "FILM_v1" / "ascmhl").iterdir()]
    ours += [json.dumps([c.model_dump() for c in copies]).encode()]
    for blob in ours:
        assert s3server.SECRET_KEY.encode() not in blob
        assert s3server.ACCESS_KEY.encode() not in blob
    # logs at DEBUG (botocore's included): never the secret. (The access key ID appears in botocore's
    # own DEBUG lines of signed headers — it is an identifier, not a secret.)
    assert s3server.SECRET_KEY not in caplog.text
