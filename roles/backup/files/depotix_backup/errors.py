"""The exceptions that end a run with a one-line message instead of a traceback."""

from __future__ import annotations


class BackupError(Exception):
    """A failure with a message meant for the operator."""


class Corrupt(BackupError):
    """The dump is damaged: it differs from its checksum, or pg_restore reads it and rejects it."""


class Unreachable(BackupError):
    """A check could not run (the docker CLI, its daemon, the container or the disk did not answer).

    It says nothing about the dump: nothing is deleted because of it.
    """


class Terminated(Exception):
    """SIGTERM or SIGHUP: unwind so that temporary files are removed."""
