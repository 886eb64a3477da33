"""Read the release ledger to name the image that contains given migrations.

The ledger is a JSON file on the Docker host, written by the deploy play: a
list of entries (or an object with an ``entries`` list) such as::

    {"release": "2.0", "image": "depotix-lab/api:2.0",
     "leaves": {"inventory": ["0008_add_idempotency_and_constraints"]}, "outcome": "ok"}

The django_migration module uses it only to tell the operator which image can
unapply a "ghost" migration: one the database has applied but the current
image does not contain. Reading the file is module_utils/release_ledger.py's
job (``load_entries``), shared with the release_ledger module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from ansible.module_utils.django_migration_protocol import migration_number


@dataclass(frozen=True)
class ImageHint:
    """The ledger entry whose image contains the migrations, and how sure that is."""

    release: str
    image: str
    exact: bool  # the release has the newest of the migrations as its leaf

    def sentence(self) -> str:
        how = (
            "has them as its migration leaves" if self.exact else "is the first whose migration leaves lie beyond them"
        )
        return "image %s (release %s in the ledger %s)" % (self.image, self.release, how)


def entry_leaves(entry: Dict[str, Any], app: str) -> List[str]:
    leaves = (entry.get("leaves") or {}).get(app) or []
    return [leaves] if isinstance(leaves, str) else [str(leaf) for leaf in leaves]


def _beyond(leaves: Sequence[str], name: str) -> bool:
    """True when a leaf is numbered at or after ``name`` (so that release likely contains it)."""
    wanted = migration_number(name)
    return wanted is not None and any((migration_number(leaf) or -1) >= wanted for leaf in leaves)


def image_containing(entries: List[Dict[str, Any]], migrations: Dict[str, Sequence[str]]) -> Optional[ImageHint]:
    """Return the release image that contains every one of ``migrations`` ({app: names}), if the ledger knows one.

    Preferred: the newest successful release whose leaf, in each app, is the
    newest of the names; else the oldest release whose leaves lie beyond all of them.
    """
    wanted = {app: list(names) for app, names in migrations.items() if names}
    if not wanted:
        return None
    usable = [entry for entry in entries if entry.get("image")]
    exact = [
        entry for entry in usable if all(_newest(names) in entry_leaves(entry, app) for app, names in wanted.items())
    ]
    if exact:
        good = [entry for entry in exact if entry.get("outcome", "ok") == "ok"] or exact
        return _hint(good[-1], exact=True)
    beyond = [
        entry
        for entry in usable
        if all(_beyond(entry_leaves(entry, app), name) for app, names in wanted.items() for name in names)
    ]
    if beyond:
        good = [entry for entry in beyond if entry.get("outcome", "ok") == "ok"] or beyond
        return _hint(good[0], exact=False)
    return None


def _newest(names: Sequence[str]) -> str:
    return max(names, key=lambda name: (migration_number(name) or -1, name))


def _hint(entry: Dict[str, Any], exact: bool) -> ImageHint:
    return ImageHint(release=str(entry.get("release", "?")), image=str(entry["image"]), exact=exact)
