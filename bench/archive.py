"""Archive benchmark: our one-pass archive vs plain boto3 ``upload_file`` + a separate hashing pass.

Run: ``.venv/bin/python -m bench.archive [--mb 400] [--repeat 2] [--endpoint URL]``

Makes a package (one large "master" + a few sidecars, ``--mb`` in total) with its ASC MHL history,
starts SeaweedFS on loopback (tests/archive/s3server.py) unless ``--endpoint`` is given, then times,
alternating, best of ``--repeat``:

* **ours**: :func:`tasks.archive.archive_package` to one S3 target — one read pass computing xxh128 +
  CRC64NVME, resumable multipart with server-validated CRC64NVME, HeadObject verification, ASC MHL
  transfer generation, catalog;
* **baseline**: what a user would otherwise do — an xxh128 pass over every file (for the MHL), then
  ``boto3`` ``upload_file`` per file (default ``TransferConfig``; botocore adds its default CRC32).
  No verification after upload, no MHL generation: the baseline does strictly less.

Prints a markdown table with seconds, MB/s and baseline/ours. Files are read from the page cache in
both cases (written just before), so this measures CPU + network path, not the disk.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path

MiB = 1024 * 1024


def _make_package(root: Path, total_mb: int) -> Path:
    from tasks.package import write_mhl_generation

    rnd = random.Random(7)
    root.mkdir(parents=True)
    sidecars = [("audio/mix_51.wav", 0.10), ("audio/mix_20.wav", 0.04), ("subs/en.srt", 0.0001)]
    master_bytes = int(total_mb * MiB * (1 - sum(f for _, f in sidecars)))
    chunk = rnd.randbytes(8 * MiB)
    (root / "IMF").mkdir()
    with open(root / "IMF" / "MASTER.mov", "wb") as fh:
        left = master_bytes
        while left > 0:
            # vary the bytes so nothing can dedupe/compress: xor a counter into each chunk's head
            piece = bytes([left % 251]) + chunk[1:min(len(chunk), left)]
            fh.write(piece)
            left -= len(piece)
    for rel, frac in sidecars:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rnd.randbytes(max(1, int(total_mb * MiB * frac))))
    write_mhl_generation(root, process="in-place", location=str(root), comment="bench package")
    return root


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "ascmhl" not in p.parts)


def run_ours(pkg: Path, bucket: str) -> float:
    from tasks.archive import archive_package

    t0 = time.perf_counter()
    copies = archive_package(pkg, [f"s3://{bucket}/ours-{uuid.uuid4().hex[:8]}"], title="bench")
    dt = time.perf_counter() - t0
    assert copies[0].verified
    return dt


def run_baseline(pkg: Path, bucket: str) -> float:
    import boto3
    import xxhash

    client = boto3.client("s3")
    prefix = f"plain-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    for p in _files(pkg):  # hashing pass (for the MHL)
        h = xxhash.xxh3_128()
        with open(p, "rb") as fh:
            while block := fh.read(8 * MiB):
                h.update(block)
        h.hexdigest()
    for p in _files(pkg):  # upload pass
        client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(pkg).as_posix()}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=400, help="package size in MiB (default 400)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--endpoint", help="use a running S3 endpoint (AWS_* env for credentials) instead of SeaweedFS")
    ap.add_argument("--bucket", default="archive-a")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="deliver-bench-archive-"))
    os.environ.setdefault("DELIVER_CATALOG_URL", f"sqlite:///{work / 'catalog.sqlite'}")
    os.environ.setdefault("DELIVER_STORAGE_CONFIG", str(work / "none.yaml"))
    server = None
    try:
        if args.endpoint:
            os.environ["AWS_ENDPOINT_URL"] = args.endpoint
        else:
            from tests.archive import s3server

            server = s3server.start()
            os.environ.update(server.env())
        pkg = _make_package(work / "BENCH_PKG", args.mb)
        size = sum(p.stat().st_size for p in _files(pkg))
        best = {"ours": float("inf"), "baseline": float("inf")}
        for i in range(args.repeat):
            order = ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours")
            for name in order:
                copy = work / f"pkg-{name}-{i}" / "BENCH_PKG"  # fresh copy: our MHL generations grow
                shutil.copytree(pkg, copy)
                fn = run_ours if name == "ours" else run_baseline
                best[name] = min(best[name], fn(copy, args.bucket))
                shutil.rmtree(copy.parent)
        mb = size / 1e6
        print(f"\nArchive of a {size / MiB:.0f} MiB package to S3 on loopback "
              f"({'SeaweedFS' if server else args.endpoint}), best of {args.repeat}, {os.cpu_count()} CPUs\n")
        print("| method | what it does | seconds | MB/s | ratio (baseline / ours) |")
        print("|---|---|---:|---:|---:|")
        print(f"| ours: `archive_package` | one read: xxh128 + CRC64NVME + multipart upload (server-validated), "
              f"HeadObject verify, ASC MHL generation, catalog | {best['ours']:.2f} | {mb / best['ours']:.0f} | "
              f"{best['baseline'] / best['ours']:.2f}× |")
        print(f"| baseline: xxh128 pass + `upload_file` | two reads, botocore CRC32, no verification, no MHL | "
              f"{best['baseline']:.2f} | {mb / best['baseline']:.0f} | 1.00× |")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
