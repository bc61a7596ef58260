"""Benchmarks (`make bench`): ratios against the tools a user would otherwise run, in the same run."""

import sys


def exit_code(misses: list[str]) -> int:
    """Print each missed target on stderr; the bench's exit code (1 when any target was missed)."""
    for miss in misses:
        print(f"target missed: {miss}", file=sys.stderr)
    return 1 if misses else 0
