"""Reads benchmark: how many times a deliverable's bytes are read between its publishing and its package.

Run: ``.venv/bin/python -m bench.reads [--mb 500] [--files 2] [--repeat 3]``

Writes ``--files`` files of ``--mb`` MB (10^6 B; random bytes) into a package folder, then, alternating
so machine load hits both alike, ``--repeat`` times each:

* **ours**: publish each with its output record (:func:`tasks.media.files.atomic_output` with a
  ``Provenance`` and the package's formats: xxh128 + MD5 in the one publish read), then
  :func:`tasks.package.write_package` with the run's ``out_root``: it takes the recorded digests;
* **before**: publish with the record's xxh128 only, then ``write_package`` without records: it reads every
  file again for xxh128 + MD5 (what every run did before the records carried the digests).

Prints bytes read by the file hasher (:func:`tasks.archive.hashing.bytes_hashed`, exact) and the median
seconds of publish + package; exits 1 when ours reads the media more than once. The files come from the
page cache (just written), so the seconds measure the hashing CPU, not the storage: on storage slower
than the hash the saving is one full read of every deliverable.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

MB = 1000 * 1000


def _one(root: Path, blobs: list[Path], *, records: bool) -> tuple[float, int]:
    from tasks.archive.hashing import PACKAGE_FORMATS, bytes_hashed
    from tasks.media.files import Provenance, atomic_output
    from tasks.package import write_package

    if root.exists():
        shutil.rmtree(root)
    pkg = root / "T_v1"
    pkg.mkdir(parents=True)
    files = []
    hashed = bytes_hashed()
    started = time.perf_counter()
    for k, blob in enumerate(blobs):
        final = pkg / f"T_v1_file{k}.bin"
        with atomic_output(final, provenance=Provenance("bench", root),
                           formats=PACKAGE_FORMATS if records else ()) as tmp:
            os.link(blob, tmp)  # the bytes "written" by the encoder: no copy, so only the hashing is timed
        files.append((final, "extra"))
    write_package(pkg, files, title="T", version="v1", out_root=root if records else None)
    return time.perf_counter() - started, bytes_hashed() - hashed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="deliver-bench-reads-") as tmp:
        top = Path(tmp)
        blobs = []
        for k in range(args.files):
            blob = top / f"blob{k}.bin"
            with open(blob, "wb") as fh:
                for _ in range(args.mb):
                    fh.write(os.urandom(MB))
            blobs.append(blob)
        media = args.files * args.mb * MB
        runs: dict[str, list[tuple[float, int]]] = {"ours": [], "before": []}
        for _ in range(args.repeat):
            for name in ("ours", "before"):
                runs[name].append(_one(top / name, blobs, records=name == "ours"))
    print(f"{args.files} files x {args.mb} MB, publish + package, median of {args.repeat}\n")
    print("| method | bytes hashed | reads of the media | seconds |\n|---|---|---|---|")
    for name, got in runs.items():
        read = max(b for _s, b in got)
        print(f"| {name} | {read:,} | {read / media:.2f} | {statistics.median(s for s, _b in got):.2f} |")
    ours = max(b for _s, b in runs["ours"])
    return 0 if ours < 1.01 * media else 1  # the manifest's few KB on top of one read


if __name__ == "__main__":
    sys.exit(main())
