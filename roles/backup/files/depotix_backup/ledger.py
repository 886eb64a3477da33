"""The release the host's ledger says runs now: the label of scheduled dumps.

The ledger's rule (which release runs now) is the release_ledger module's own code,
installed by the backup role in the same lib_dir as this package (found beside it in
the repository).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from release_ledger import release_stack


def ledger_release(config: dict[str, Any]) -> str | None:
    """Return the current release from the host's ledger, or None when there is no readable ledger."""
    path = config.get("ledger")
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    entries = data.get("entries") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        return None
    stack = release_stack([e for e in entries if isinstance(e, dict)])
    return stack[-1].get("release") if stack else None
