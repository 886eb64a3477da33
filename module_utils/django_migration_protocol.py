"""What the django_migration module and its in-container probe agree on: the wire protocol and its vocabulary.

Both sides use this one file, so each constant has a single source:

- the request: ``ACTIONS``, ``UNLISTED_CHOICES`` and ``normalise_targets``
  (the module checks ``targets`` on the host, the probe again in the container);
- the result: one JSON document between the ``BEGIN`` and ``END`` sentinel
  lines, stamped with ``PROTOCOL``; the probe writes it with ``render``, the
  module finds it in whatever else was printed with ``parse_output``;
- ``tail``: the last lines of output worth showing, ``OUTPUT_TAIL_LINES`` of them;
- names: ``step_key`` (a plan step as ``app.name``) and ``migration_number``;
- drops (tables and columns a backwards plan drops): ``drop_sentence`` and
  ``drop_holds_data``, so the refusal's and the module's ``lossy_steps`` read alike;
- the migration state: ``state_from_graph`` turns an image's migration graph
  (``GRAPH_FORMAT``: what the probe reports as ``graph``, and what the host keeps
  per image) and the applied migrations into every app's state, so the probe and
  the cached query (``django_migration_cache``) answer with one rule.

On the host it is imported as ``ansible.module_utils.django_migration_protocol``.
In the container ``django_migration_docker.container_program`` installs it under
that same name before the probe runs, so the probe's ordinary import finds it
there without Ansible. Hence: standard library only, and Python 3.8 or later.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Iterable, List, Optional, Union

BEGIN = "----- django_migration result begin -----"
END = "----- django_migration result end -----"
PROTOCOL = 1
ACTIONS = ("query", "plan", "migrate")
UNLISTED_CHOICES = ("keep", "zero")
OUTPUT_TAIL_LINES = 20
# Version of the migration graph document (the probe's ``graph``, the host's cache files).
GRAPH_FORMAT = 1

# A targets entry: a name or prefix (or "zero"), None for the leaf, or a list of leaf names.
TargetSpec = Union[None, str, List[str]]


# --- The migration state --------------------------------------------------------------------


def state_from_graph(graph: Dict[str, Any], applied: Iterable[Any]) -> Dict[str, Dict[str, List[str]]]:
    """Return applied, unapplied, leaf and ghost migrations for every app.

    ``graph`` is the image's migration graph: ``apps`` ({app: {order: names in
    dependency order, leaf: leaf names}}) and ``on_disk`` (every [app, name] with
    a file). ``applied`` holds (app, name) pairs recorded in django_migrations.
    Ghosts are applied migrations whose files the image does not contain.
    """
    done = {(str(app), str(name)) for app, name in applied}
    on_disk = {(str(app), str(name)) for app, name in graph["on_disk"]}
    apps = graph["apps"]
    state: Dict[str, Dict[str, List[str]]] = {}
    for app in sorted(set(apps) | {key[0] for key in done}):
        names = list(apps.get(app, {}).get("order", []))
        state[app] = {
            "applied": [name for name in names if (app, name) in done],
            "unapplied": [name for name in names if (app, name) not in done],
            "leaf": sorted(apps.get(app, {}).get("leaf", [])),
            "ghosts": sorted(key[1] for key in done if key[0] == app and key not in on_disk),
        }
    return state


# --- The result document -------------------------------------------------------------------


def render(result: Dict[str, Any]) -> str:
    """Return the result between sentinel lines, as ``parse_output`` reads it."""
    result = dict(result, protocol=PROTOCOL)
    return "\n%s\n%s\n%s\n" % (BEGIN, json.dumps(result, sort_keys=True, default=str), END)


def parse_output(stdout: str) -> Optional[Dict[str, Any]]:
    """Return the last result document in ``stdout``, or None when there is none."""
    start = stdout.rfind(BEGIN)
    if start < 0:
        return None
    end = stdout.find(END, start)
    if end < 0:
        return None
    try:
        document = json.loads(stdout[start + len(BEGIN) : end])
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def tail(text: str, lines: int = OUTPUT_TAIL_LINES) -> List[str]:
    """Return the last ``lines`` lines of ``text`` that say something.

    Blank lines and the ^^^^ markers of recent tracebacks are dropped, so the
    lines kept show more of what happened.
    """
    kept = [line for line in text.splitlines() if line.strip() and not re.match(r"^\s*[~^]+\s*$", line)]
    return kept[-lines:]


# --- Names -----------------------------------------------------------------------------------


def step_key(step: Dict[str, Any]) -> str:
    """Return a plan step as ``app.name``."""
    return "%s.%s" % (step["app"], step["name"])


def migration_number(name: str) -> Optional[int]:
    """Return the leading number of a migration name (``0007_x`` -> 7), if any."""
    match = re.match(r"(\d+)", name)
    return int(match.group(1)) if match else None


# --- Drops ----------------------------------------------------------------------------------
# A drop: {"app", "migration", "table", "column" (None for the whole table), "rows_with_data"
# (None when they could not be counted), and "reason" when they could not}.


def drop_holds_data(drop: Dict[str, Any]) -> bool:
    """Return whether a drop loses data: rows hold data there, or they could not be counted."""
    rows = drop.get("rows_with_data")
    return rows is None or rows > 0


def drop_sentence(drop: Dict[str, Any]) -> str:
    """Return a drop as a line for ``lossy_steps``: ``inventory 0009_x drops column t.c (12 rows hold data)``."""
    where = "%s %s" % (drop["app"], drop["migration"])
    if not drop.get("table"):
        return "%s drops tables or columns that could not be worked out (%s)" % (where, drop.get("reason"))
    what = "column %s.%s" % (drop["table"], drop["column"]) if drop.get("column") else "table %s" % drop["table"]
    rows = drop.get("rows_with_data")
    if rows is None:
        held = "rows holding data could not be counted: %s" % drop.get("reason", "unknown")
    else:
        held = "1 row holds data" if rows == 1 else "%d rows hold data" % rows
    return "%s drops %s (%s)" % (where, what, held)


# --- The targets request ---------------------------------------------------------------------


def normalise_targets(targets: Any) -> Dict[str, TargetSpec]:
    """Return a ``targets`` request as {app: name, None or list of names}; raise ValueError saying what is wrong.

    Numbers are refused rather than turned into names: YAML reads ``0007`` as 7,
    which would then match no migration, or the wrong one by prefix.
    """
    if not isinstance(targets, dict) or not targets:
        raise ValueError(
            "targets must map at least one app label to its target, for example "
            "{inventory: 0007_populate_customer_numbers}; got %r." % (targets,)
        )
    normalised: Dict[str, TargetSpec] = {}
    for app, value in targets.items():
        if isinstance(value, list) and all(_is_name(item) for item in value):
            normalised[str(app)] = list(value)
        elif value is None or _is_name(value):
            normalised[str(app)] = value
        else:
            raise ValueError(
                "targets.%s must be a migration name, a unique prefix, 'zero', or a list of leaf names as "
                "the release ledger records them; got %r. Quote numbers: '0007', not 0007." % (app, value)
            )
    return normalised


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value)
