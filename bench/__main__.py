"""`make bench`: run every benchmark, each against the tool a user would otherwise use, in one run.

Each module prints a markdown table with its ratio; copy the figures into the README's
performance section. Run one alone with ``python -m bench.<name>``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import time

import bench


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    only = set(sys.argv[1:])
    failed = []
    for name in names:
        if only and name not in only:
            continue
        print(f"\n## bench.{name}\n", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        try:
            # the names picked on this command line are not the module's own options
            rc = module.main([]) if inspect.signature(module.main).parameters else module.main()
        except SystemExit as exc:  # a module's main may sys.exit()
            rc = exc.code
        if rc not in (None, 0):
            failed.append(name)
        print(f"\n(bench.{name} took {time.monotonic() - started:.0f} s)", flush=True)
    if failed:
        print(f"\nbenchmarks that missed their target or failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
