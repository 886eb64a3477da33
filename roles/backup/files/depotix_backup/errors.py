"""The two exceptions that end a run with a one-line message instead of a traceback."""

from __future__ import annotations


class BackupError(Exception):
    """A failure with a message meant for the operator."""


class Terminated(Exception):
    """SIGTERM or SIGHUP: unwind so that temporary files are removed."""
