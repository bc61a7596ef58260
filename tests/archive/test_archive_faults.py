"""Fault tests: a misbehaving network (connection resets, lost answers, 503 SlowDown) between boto3 and
SeaweedFS, and a ``deliver archive`` process killed midway that resumes and reuses its uploaded parts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from specs.errors import InfrastructureError
from tasks.archive.copy import archive_package
from tasks.archive.hashing import digest_file
from tasks.archive.verify import verify_uri
from tests.archive.faultproxy import FaultProxy
from tests.archive.helpers import S3_SMALL_PARTS, make_package, mhl_rc

MiB = 1024 * 1024
DELIVER = Path(sys.executable).parent / "deliver"


@pytest.fixture
def proxy(s3):
    with FaultProxy(upstream=s3.endpoint, seed=5) as p:
        yield p


def test_archive_through_resets_and_slowdown_completes_and_verifies(s3, proxy, tmp_path, prefix):
    pkg = make_package(tmp_path / "FAULTY", big_bytes=23 * MiB + 3)  # 5 parts of 5 MiB
    proxy.set_faults(reset_rate=0.08, reset_after_rate=0.08, slowdown_rate=0.08)

    # Without retries (one attempt per request, no part retries) this network breaks the archive …
    no_retry = f"s3://archive-a/{prefix}/bare?{S3_SMALL_PARTS}&endpoint_url={proxy.endpoint}&max_attempts=1&part_retries=0"
    with pytest.raises(InfrastructureError):
        archive_package(pkg, [no_retry], title="Faulty")

    # … with our retry configuration (botocore standard retries + part-level retries) it completes.
    target = f"s3://archive-a/{prefix}?{S3_SMALL_PARTS}&endpoint_url={proxy.endpoint}&concurrency=3"
    before = dict(proxy.faults)
    copies = archive_package(pkg, [target], title="Faulty")
    injected = {k: proxy.faults[k] - before[k] for k in before}
    assert all(n > 0 for n in injected.values()), injected  # every kind of fault really happened
    assert copies[0].verified and copies[0].uri == f"s3://archive-a/{prefix}/FAULTY"

    # the stored object is the source, whole-object CRC64NVME checked by the server and by us
    want = digest_file(pkg / "IMF" / "MASTER_PRORES.mov")
    h = s3.client().head_object(Bucket="archive-a", Key=f"{prefix}/FAULTY/IMF/MASTER_PRORES.mov",
                                ChecksumMode="ENABLED")
    assert h["ChecksumCRC64NVME"] == want.crc64nvme and h["ContentLength"] == want.size
    assert h["ETag"].strip('"').endswith("-5")
    # fixity afterwards: directly, and again through the faulty network
    assert verify_uri(copies[0].uri).ok
    assert verify_uri(f"{copies[0].uri}?endpoint_url={proxy.endpoint}").ok
    assert not s3.client().list_multipart_uploads(Bucket="archive-a", Prefix=f"{prefix}/FAULTY/").get("Uploads")


def _parts(client, key: str) -> dict[int, str]:
    uploads = client.list_multipart_uploads(Bucket="archive-a", Prefix=key).get("Uploads", [])
    out: dict[int, str] = {}
    for u in uploads:
        for p in client.list_parts(Bucket="archive-a", Key=key, UploadId=u["UploadId"]).get("Parts", []):
            out[p["PartNumber"]] = p["ETag"]
    return out


def test_killed_archive_resumes_and_reuses_uploaded_parts(s3, proxy, tmp_path, prefix):
    if not DELIVER.exists():
        pytest.skip("console script 'deliver' not installed (pip install -e .)")
    pkg = make_package(tmp_path / "KILLED", big_bytes=30 * MiB)  # 6 parts of 5 MiB
    key = f"{prefix}/KILLED/IMF/MASTER_PRORES.mov"
    uri = f"s3://archive-a/{prefix}?part_size_mib=5&multipart_threshold_mib=5&concurrency=1"
    env = {**os.environ, **s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint}
    proxy.set_faults(delay_s=0.5)  # throttle part uploads so the kill lands midway
    cmd = [str(DELIVER), "archive", str(pkg), "--to", uri, "--title", "Killed"]
    client = s3.client()

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(_parts(client, key)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the upload never got 2 parts in"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    proxy.wait_idle()  # a part the proxy already had may still land: count it as uploaded
    before = _parts(client, key)
    assert 2 <= len(before) < 6, before
    assert not client.list_objects_v2(Bucket="archive-a", Prefix=key).get("Contents")  # nothing final yet

    sent_before_rerun = len(proxy.part_uploads())
    proxy.set_faults(delay_s=0.0)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    sent = proxy.part_uploads()[sent_before_rerun:]
    # only the missing parts went over the wire again; the uploaded ones were reused
    assert sorted(sent) == sorted(set(range(1, 7)) - set(before)), (sent, sorted(before))
    assert not client.list_multipart_uploads(Bucket="archive-a", Prefix=key).get("Uploads")
    h = client.head_object(Bucket="archive-a", Key=key, ChecksumMode="ENABLED")
    want = digest_file(pkg / "IMF" / "MASTER_PRORES.mov")
    assert h["ChecksumCRC64NVME"] == want.crc64nvme and h["ETag"].strip('"').endswith("-6")
    check = subprocess.run([str(DELIVER), "verify", f"s3://archive-a/{prefix}/KILLED"],
                           env={**os.environ, **s3.env()}, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert mhl_rc(pkg) == 0
