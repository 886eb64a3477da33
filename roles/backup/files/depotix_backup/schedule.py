"""The host's daily job (cron): a verified dump labelled with the ledger's release, the offsite copy, retention."""

from __future__ import annotations

from typing import Any

from depotix_backup.dump import cmd_dump
from depotix_backup.errors import BackupError
from depotix_backup.offsite import cmd_offsite
from depotix_backup.retention import cmd_prune


def cmd_scheduled(config: dict[str, Any]) -> dict[str, Any]:
    """The daily job: a verified dump labelled with the ledger's release, the offsite copy, retention.

    Retention runs only after a good dump, and also when the offsite copy failed; the
    run then fails, saying so.
    """
    dumped = cmd_dump(config, None)
    offsite: dict[str, Any] | None = None
    offsite_error = None
    try:
        offsite = cmd_offsite(config, dumped["file"])
    except BackupError as exc:
        offsite_error = str(exc)
    pruned = cmd_prune(config, dry_run=False, verified=dumped["file"])
    if offsite_error:
        raise BackupError(f"{dumped['file']} is verified and retention ran, but {offsite_error}")
    return {"changed": True, "dump": dumped, "offsite": offsite, "prune": pruned}
