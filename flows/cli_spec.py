"""Placeholder: commands of this capability register on flows.cli.app."""

from flows.cli import app  # noqa: F401
