"""Benchmarks (`make bench`): ratios against the tools a user would otherwise run, in the same run."""
