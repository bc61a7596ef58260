"""The one exception root of deliver.

It lives in ``specs`` because ``specs`` is the bottom layer (flows -> tasks -> specs): every other
module may import it, and ``specs`` itself imports nothing of ours. Every message says what went
wrong, where, and how to fix it. The CLI maps the class to the documented exit code.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DeliverError",
    "BadInputError",
    "SpecError",
    "MediaError",
    "OutputExistsError",
    "OutputLockedError",
    "VerificationError",
    "InfrastructureError",
    "FFmpegError",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_BAD_INPUT",
    "EXIT_INFRASTRUCTURE",
]

EXIT_OK = 0
EXIT_FAILED = 1  # QC failed / verification mismatch / lint errors
EXIT_BAD_INPUT = 2  # missing file, corrupt media, wrong spec, unknown key
EXIT_INFRASTRUCTURE = 3  # ffmpeg crashed, storage unreachable, Prefect API down


class DeliverError(Exception):
    """Root of every error deliver raises on purpose."""

    exit_code: int = EXIT_INFRASTRUCTURE


class BadInputError(DeliverError, ValueError):
    """The user gave us something we cannot work with (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class SpecError(BadInputError):
    """A delivery spec is invalid; the message carries file:line:column."""

    issues: list[Any]  # set by specs.loader: every problem found (LintIssue), not only the first


class MediaError(BadInputError):
    """A media file is missing, unreadable, corrupt or not what the spec allows."""


class OutputExistsError(BadInputError, FileExistsError):
    """An output name is taken: deliver never overwrites a master, a mix or a deliverable (exit 2)."""


class OutputLockedError(BadInputError):
    """Another run holds the output folder (exit 2): two runs never write one folder at once."""


class VerificationError(DeliverError):
    """A copy does not match its source (exit 1). Never downgraded to a warning."""

    exit_code = EXIT_FAILED


class InfrastructureError(DeliverError, RuntimeError):
    """A tool, server or store failed (exit 3); usually worth a retry."""

    exit_code = EXIT_INFRASTRUCTURE


class FFmpegError(InfrastructureError):
    """ffmpeg/ffprobe exited non-zero. Carries the command and the tail of its stderr."""

    def __init__(self, message: str, *, cmd: list[str] | None = None, returncode: int | None = None,
                 stderr_tail: str = "") -> None:
        super().__init__(message)
        self.cmd = cmd or []
        self.returncode = returncode
        self.stderr_tail = stderr_tail
