"""Read and change Django migration state from inside the API container or image.

The ``django_migration`` module sends this file's source to ``python -`` inside
the container, with one JSON request as the only argument (see
``django_migration_docker.container_program``). The probe starts
Django through the project's own ``manage.py`` (so the project's settings
default applies), asks Django's ``MigrationLoader`` and ``MigrationExecutor``
for the state and the plan, optionally migrates (one app, several apps to
their targets, or every app to its leaf), and prints exactly one JSON document
between two sentinel lines, whatever else the project prints.

Requests (``action``):

- ``query``: every app's applied, unapplied, leaf and ghost migrations;
- ``plan``: the same, plus the plan to move ``app`` to ``target``, every app
  named in ``targets`` to its target (and, with ``targets_unlisted: zero``, every
  other app with applied migrations to zero), or every app to its leaf when
  neither is given (check mode), and the tables and columns it drops (``drops``);
- ``migrate``: the plan, then ``migrate [APP TARGET]`` (once per app, in the
  plan's order, for ``targets``), then the state again.

A refused or failed request still prints a document, with ``ok: false``, a
``kind`` and a ``message``. A migrate that fails half-way is undone so the
database keeps the migration state it had before the request.

What the module and the probe share (the request's vocabulary, the result
document's sentinels, ``tail``, ``step_key``...) lives in
``django_migration_protocol``, imported below by its ordinary name: on the host
and in unit tests Ansible's module_utils provide it; in the container
``container_program`` installs it under that name before running this file, as
the only other code the container gets. The module never calls this file's
functions: it imports it only so AnsiballZ ships it, and reads its source.

Apart from that module only the standard library is imported at module level,
and Django inside functions, so the file also imports in unit tests. It must
run on the container's Python (3.8 or later).
"""

from __future__ import annotations

import decimal
import io
import json
import os
import runpy
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from ansible.module_utils.django_migration_protocol import (
    ACTIONS,
    GRAPH_FORMAT,
    UNLISTED_CHOICES,
    TargetSpec,
    drop_holds_data,
    drop_sentence,
    migration_number,
    normalise_targets,
    render,
    state_from_graph,
    step_key,
    tail,
)

_PROBE_COMMAND = "django_migration_probe"

MigrationKey = Tuple[str, str]
AppsState = Dict[str, Dict[str, List[str]]]


class ProbeError(Exception):
    """A request the probe refuses or cannot complete, with details for the caller."""

    def __init__(self, kind: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details

    def as_result(self) -> Dict[str, Any]:
        result: Dict[str, Any] = {"ok": False, "kind": self.kind, "message": self.message}
        result.update(self.details)
        return result


class ProbeTimeout(BaseException):
    """Raised in the main thread when the request runs out of time.

    A BaseException, so project code that catches Exception cannot swallow it
    and every open transaction.atomic() block rolls back on the way out.
    """


# --- Reading state -----------------------------------------------------------


def ordered_app_nodes(graph: Any, app: str) -> List[str]:
    """Return the names of an app's graph nodes in dependency order."""
    names: List[str] = []
    seen = set()
    for leaf in sorted(graph.leaf_nodes(app)):
        for key in graph.forwards_plan(leaf):
            if key[0] == app and key not in seen:
                seen.add(key)
                names.append(key[1])
    return names


def describe_graph(loader: Any) -> Dict[str, Any]:
    """Return the loaded code's migration graph (GRAPH_FORMAT), as the host keeps it per image.

    ``squashed`` says the project has squashed migrations: Django then shapes the
    graph by what is applied, so such a graph is never kept for later queries.
    """
    graph = loader.graph
    return {
        "format": GRAPH_FORMAT,
        "apps": {
            app: {"order": ordered_app_nodes(graph, app), "leaf": sorted(key[1] for key in graph.leaf_nodes(app))}
            for app in sorted({key[0] for key in graph.nodes})
        },
        "on_disk": sorted([app, name] for app, name in set(loader.disk_migrations) | set(graph.nodes)),
        "squashed": bool(getattr(loader, "replacements", None)),
    }


def describe_state(loader: Any) -> AppsState:
    """Return applied, unapplied, leaf and ghost migrations for every app (``state_from_graph``).

    Ghosts are migrations recorded as applied in the database whose files the
    loaded code does not contain.
    """
    return state_from_graph(describe_graph(loader), loader.applied_migrations)


def applied_keys(state: AppsState) -> List[str]:
    """Return every applied migration (ghosts included) as sorted ``app.name`` strings."""
    keys = []
    for app, info in state.items():
        keys.extend("%s.%s" % (app, name) for name in info["applied"] + info["ghosts"])
    return sorted(keys)


# --- Targets and plans -----------------------------------------------------------


def migration_order(loader: Any) -> Dict[str, List[str]]:
    """Return every app's on-disk migration names in dependency order."""
    graph = loader.graph
    return {app: ordered_app_nodes(graph, app) for app in sorted({key[0] for key in graph.nodes})}


def resolve_target(state: AppsState, order: Dict[str, List[str]], app: str, target: Optional[str]) -> Optional[str]:
    """Return the migration name ``target`` designates in ``app`` (None for zero).

    Accepts an exact name, a unique prefix, ``zero``, or nothing for the leaf.
    """
    known_apps = sorted(name for name, names in order.items() if names)
    if app not in known_apps:
        raise ProbeError(
            "unknown_app",
            "App '%s' has no migrations in this code. Apps with migrations: %s."
            % (app, ", ".join(known_apps) or "none"),
            known_apps=known_apps,
        )
    info = state[app]
    names = order[app]
    if target in (None, ""):
        if len(info["leaf"]) != 1:
            raise ProbeError(
                "multiple_leaves",
                "App '%s' has %d leaf migrations (%s); name the target explicitly or merge them."
                % (app, len(info["leaf"]), ", ".join(info["leaf"])),
                leaf=info["leaf"],
            )
        return info["leaf"][0]
    if target == "zero":
        return None
    if target in names:
        return target
    candidates = [name for name in names if name.startswith(str(target))]
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise ProbeError(
            "ambiguous_target",
            "Target '%s' matches several migrations of '%s': %s. Give more of the name."
            % (target, app, ", ".join(candidates)),
            candidates=candidates,
        )
    raise ProbeError(
        "unknown_target",
        "App '%s' has no migration '%s'. Known migrations: %s (or 'zero')." % (app, target, ", ".join(names)),
        known_migrations=names,
    )


def blocking_ghosts(ghosts: Iterable[str], target: Optional[str]) -> List[str]:
    """Return the ghosts that sit above ``target`` (all of them for zero or an unnumbered target).

    A ghost numbered at or below the target (a leftover of squashed or
    deleted history) is reported by the query but does not block a plan.
    """
    ghosts = sorted(ghosts)
    limit = migration_number(target) if target else None
    if limit is None:
        return ghosts
    return [ghost for ghost in ghosts if (migration_number(ghost) or limit + 1) > limit]


def operation_flags(operation: Any) -> Tuple[bool, bool]:
    """Return (reversible, lossy) for one operation, looking inside SeparateDatabaseAndState.

    Lossy: Django can unapply it, but its reverse does nothing (RunPython.noop,
    an empty RunSQL reverse), so data it changed stays changed.
    """
    from django.db.migrations.operations import RunPython, RunSQL, SeparateDatabaseAndState

    if isinstance(operation, SeparateDatabaseAndState):
        flags = [operation_flags(inner) for inner in operation.database_operations]
        return all(flag[0] for flag in flags), any(flag[1] for flag in flags)
    reversible = bool(operation.reversible)
    lossy = False
    if reversible and isinstance(operation, RunPython):
        lossy = operation.reverse_code is RunPython.noop
    elif reversible and isinstance(operation, RunSQL):
        lossy = operation.reverse_sql in (RunSQL.noop, [], ())
    return reversible, lossy


def describe_operation(operation: Any) -> Dict[str, Any]:
    """Return one operation as a JSON-friendly dict."""
    reversible, lossy = operation_flags(operation)
    try:
        description = operation.describe()
    except Exception:  # a third-party operation with a broken describe() must not hide the plan
        description = type(operation).__name__
    return {
        "type": type(operation).__name__,
        "description": description,
        "reversible": reversible,
        "lossy": lossy,
    }


def describe_plan(plan: Iterable[Tuple[Any, bool]]) -> List[Dict[str, Any]]:
    """Return Django's plan as steps; ``irreversible``/``lossy`` describe undoing each step."""
    steps = []
    for migration, backwards in plan:
        operations = [describe_operation(operation) for operation in migration.operations]
        steps.append(
            {
                "app": migration.app_label,
                "name": migration.name,
                "direction": "backwards" if backwards else "forwards",
                "operations": operations,
                "irreversible": not all(operation["reversible"] for operation in operations),
                "lossy": any(operation["lossy"] for operation in operations),
                "atomic": bool(getattr(migration, "atomic", True)),
            }
        )
    return steps


def predicted_state(state: AppsState, order: Dict[str, List[str]], steps: List[Dict[str, Any]]) -> AppsState:
    """Return the state after ``steps`` ran, without running them."""
    result = json.loads(json.dumps(state))
    for step in steps:
        info = result[step["app"]]
        if step["direction"] == "forwards" and step["name"] not in info["applied"]:
            info["applied"].append(step["name"])
        elif step["direction"] == "backwards" and step["name"] in info["applied"]:
            info["applied"].remove(step["name"])
    for app, info in result.items():
        names = order.get(app, [])
        applied = set(info["applied"])
        info["applied"] = [name for name in names if name in applied]
        info["unapplied"] = [name for name in names if name not in applied]
    return result


def goal_label(app: Optional[str], targets: Dict[str, Optional[str]], named: bool = False) -> str:
    """Return what the request asks for, as words: ``shop to 0003_item_price`` or ``every app to its leaf``.

    ``named``: the targets were named app by app (the ``targets`` request), so all are listed.
    """
    if named:
        return ", ".join("%s to %s" % (name, target or "zero") for name, target in sorted(targets.items()))
    if app:
        return "%s to %s" % (app, targets[app] or "zero")
    return "every app to its leaf"


def refuse_unsafe_plan(
    goal: str,
    steps: List[Dict[str, Any]],
    allow_lossy: bool,
    drops: Optional[List[Dict[str, Any]]] = None,
    initials: Optional[Dict[str, List[str]]] = None,
    allow_drop_app: bool = False,
) -> None:
    """Raise ProbeError for an irreversible backwards step; for unapplying an app's initial
    migration (``initials``) without allow_drop_app; for a lossy backwards step, or a drop
    where rows hold data (``drops``), without allow_lossy."""
    backwards = [step for step in steps if step["direction"] == "backwards"]
    irreversible = [step_key(step) for step in backwards if step["irreversible"]]
    if irreversible:
        raise ProbeError(
            "irreversible",
            "Cannot migrate %s: %s cannot be unapplied (Django would raise IrreversibleError). "
            "Nothing was run. Restore a backup taken before %s instead."
            % (goal, ", ".join(irreversible), irreversible[0]),
            irreversible_steps=irreversible,
        )
    lossy = [step_key(step) for step in backwards if step["lossy"]]
    lost = [drop_sentence(drop) for drop in drops or [] if drop_holds_data(drop)]
    if initials and not allow_drop_app:
        apps = sorted(initials)
        raise ProbeError(
            "drop_app",
            "Migrating %s unapplies %s, the initial migration of %s: every table of %s is dropped (see drops). "
            "Nothing was run. If %s should go (a rollback to a release without it), take a backup, then pass "
            "allow_drop_app: true%s."
            % (
                goal,
                ", ".join("%s.%s" % (app, name) for app in apps for name in initials[app]),
                ", ".join(apps),
                ", ".join(apps),
                ", ".join(apps),
                " and allow_lossy: true (data is dropped)" if (lossy or lost) and not allow_lossy else "",
            ),
            dropped_apps=apps,
            lossy_steps=lossy + lost,
        )
    if (lossy or lost) and not allow_lossy:
        what = ["unapplies %s, whose reverse does nothing: the data it changed stays changed" % ", ".join(lossy)]
        what = (what if lossy else []) + (["drops data: %s" % "; ".join(lost)] if lost else [])
        raise ProbeError(
            "lossy",
            "Migrating %s %s. Nothing was run. Take a backup, then set allow_lossy: true to go ahead."
            % (goal, ", and ".join(what)),
            lossy_steps=lossy + lost,
        )


def unapplied_initials(plan: Iterable[Tuple[Any, bool]], graph: Any) -> Dict[str, List[str]]:
    """Return {app: its initial migrations (initial = True, or no parent in the app) the plan unapplies}."""
    found: Dict[str, List[str]] = {}
    for migration, backwards in plan:
        app, name = key = (migration.app_label, migration.name)
        node = graph.node_map.get(key)
        root = node is not None and not any(parent[0] == app for parent in node.parents)
        if backwards and (getattr(migration, "initial", None) or root):
            found.setdefault(app, []).append(name)
    return found


# --- What a backwards plan drops -------------------------------------------------------------

NO_DEFAULT = object()  # a default that SQL cannot compare cheaply


def plan_drops(connection: Any, loader: Any, plan: Iterable[Tuple[Any, bool]]) -> List[Dict[str, Any]]:
    """Return the tables and columns the plan's backwards steps drop, with the rows holding data there.

    Unapplying AddField drops its column, CreateModel its table (indexes and
    constraints hold no data). Names come from the migration's model state,
    counts from the database now; rows_with_data is None (with a reason) when
    they cannot be counted, e.g. a later migration renamed the column.
    """
    drops: List[Dict[str, Any]] = []
    for migration, backwards in plan:
        if not backwards or not schema_drops(connection, migration.app_label, migration.operations, None):
            continue
        where = {"app": migration.app_label, "migration": migration.name}
        try:
            state = loader.project_state((migration.app_label, migration.name), at_end=False)
            found = schema_drops(connection, migration.app_label, migration.operations, state)
        except Exception as error:  # a third-party operation must not hide the plan
            found = []
            drops.append(dict(where, table=None, column=None, rows_with_data=None, reason=repr(error)))
        for table, column, default in found:
            rows, reason = count_rows(connection, table, column, default)
            drops.append(dict(where, table=table, column=column, rows_with_data=rows, **reason))
    return drops


def schema_drops(connection: Any, app: str, operations: Iterable[Any], state: Any) -> List[Tuple[str, Any, Any]]:
    """Return (table, column or None, default) for what unapplying ``operations`` drops.

    ``state`` (the state before them) is moved forwards through them, as Django
    does, so each name is resolved where its operation sits. With ``state``
    None, only whether they may drop anything (a one-item list) is told.
    """
    from django.db.migrations.operations import AddField, CreateModel, SeparateDatabaseAndState

    found: List[Tuple[str, Any, Any]] = []
    for operation in operations:
        drops = isinstance(operation, (AddField, CreateModel))
        if isinstance(operation, SeparateDatabaseAndState):
            found += schema_drops(
                connection, app, operation.database_operations, None if state is None else state.clone()
            )
        if state is None:
            found += [("", None, None)] if drops else []
            continue
        operation.state_forwards(app, state)
        if not drops:
            continue
        model = state.apps.get_model(
            app, operation.name if isinstance(operation, CreateModel) else operation.model_name
        )
        if not operation.allow_migrate_model(connection.alias, model):
            continue
        fields = model._meta.local_many_to_many
        if isinstance(operation, CreateModel):
            found.append((model._meta.db_table, None, NO_DEFAULT))
        else:
            field = model._meta.get_field(operation.name)
            fields = [field] if field.many_to_many else []
            if field.column and not field.many_to_many and not getattr(field, "generated", False):
                found.append((model._meta.db_table, field.column, comparable_default(field, connection)))
        through = [field.remote_field.through._meta for field in fields]
        found += [(meta.db_table, None, NO_DEFAULT) for meta in through if meta.auto_created]
    tables = {table for table, column, _ in found if column is None}
    return [item for item in found if item[1] is None or item[0] not in tables]


def comparable_default(field: Any, connection: Any) -> Any:
    """Return the field's plain default (an empty string, 0, False) as stored, else NO_DEFAULT."""
    value = field.default if field.has_default() and not callable(field.default) else None
    if not isinstance(value, (str, int, float, decimal.Decimal)):
        return NO_DEFAULT
    try:
        return field.get_db_prep_save(value, connection)
    except Exception:
        return NO_DEFAULT


def count_rows(connection: Any, table: str, column: Optional[str], default: Any) -> Tuple[Optional[int], Dict]:
    """Return (rows holding data, {}), or (None, {"reason": why they could not be counted}).

    A table's rows all hold data; a column's where not null and, for a plain
    default, different from it (not null only, if that comparison fails).
    """
    from django.db import transaction

    quote = connection.ops.quote_name
    query = "SELECT COUNT(*) FROM %s" % quote(table)
    attempts: List[Tuple[str, Optional[List[Any]]]] = [(query, None)]
    if column is not None:
        query += " WHERE %s IS NOT NULL" % quote(column)
        attempts = [(query + " AND %s <> %%s" % quote(column), [default])] if default is not NO_DEFAULT else []
        attempts.append((query, None))
    for sql, params in attempts:
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(sql, params)
                return int(cursor.fetchone()[0]), {}
        except Exception as error:
            problem = "counting failed (renamed or removed by a later migration?): %s: %s" % (
                type(error).__name__,
                str(error).strip(),
            )
    return None, {"reason": problem}


def refuse_ghosts(state: AppsState, targets: Dict[str, Optional[str]]) -> None:
    """Raise ProbeError when an app has ghost migrations above its target."""
    ghosts = {app: blocking_ghosts(state[app]["ghosts"], target) for app, target in targets.items()}
    ghosts = {app: names for app, names in ghosts.items() if names}
    if ghosts:
        raise ProbeError(
            "ghosts",
            "The database has %s applied, which this code does not contain."
            % ", ".join("%s.%s" % (app, name) for app, names in sorted(ghosts.items()) for name in names),
            ghosts=ghosts,
        )


# --- Several apps, each to its own target -------------------------------------------------


def resolve_named_target(
    state: AppsState,
    order: Dict[str, List[str]],
    app: str,
    value: TargetSpec,
    ancestors: Callable[[str, str], Set[str]],
) -> Optional[str]:
    """Return the migration one ``targets`` entry designates in ``app`` (None for zero).

    A list holds leaf names as the release ledger records them: names that are
    ancestors of another listed name add nothing, an empty list means zero.
    ``ancestors(app, name)`` returns the names ``name`` depends on in ``app``.
    """
    if not isinstance(value, list):
        return resolve_target(state, order, app, value)
    names: List[str] = []
    for item in value:
        name = resolve_target(state, order, app, item)
        if name is not None and name not in names:
            names.append(name)
    heads = [name for name in names if not any(other != name and name in ancestors(app, other) for other in names)]
    if len(heads) > 1:
        raise ProbeError(
            "multiple_leaves",
            "targets.%s lists %d leaves that do not depend on each other (%s); Django's migrate refuses an app "
            "with several leaves. Merge them (makemigrations --merge) or name one target."
            % (app, len(heads), ", ".join(heads)),
            leaf=heads,
        )
    return heads[0] if heads else None


def resolve_target_map(
    state: AppsState,
    order: Dict[str, List[str]],
    targets: Dict[str, TargetSpec],
    ancestors: Callable[[str, str], Set[str]],
) -> Dict[str, Optional[str]]:
    """Return {app: migration name or None for zero} for every app named in ``targets``.

    Every app must be one this code has migrations for; all unknown ones are named at once.
    """
    known_apps = sorted(name for name, names in order.items() if names)
    unknown = sorted(set(targets) - set(known_apps))
    if unknown:
        them = "it" if len(unknown) == 1 else "them"
        raise ProbeError(
            "unknown_app",
            "targets names %s, which this code has no migrations for (apps with migrations: %s). Use the image "
            "of the release that contains %s, or leave %s out of targets."
            % (", ".join(unknown), ", ".join(known_apps) or "none", them, them),
            unknown_apps=unknown,
            known_apps=known_apps,
        )
    return {app: resolve_named_target(state, order, app, value, ancestors) for app, value in sorted(targets.items())}


def unlisted_apps(state: AppsState, targets: Dict[str, Any]) -> List[str]:
    """Return the apps with migrations applied in the database (ghosts included) that ``targets`` does not name."""
    return sorted(app for app, info in state.items() if app not in targets and (info["applied"] or info["ghosts"]))


def ordered_targets(state: AppsState, targets: Iterable[Tuple[str, Optional[str]]]) -> List[Tuple[str, Optional[str]]]:
    """Return the (app, target) pairs in the order they are planned and migrated: going down first, then up.

    A target that is zero or already applied can only unapply; unapplying
    first frees what a newer release added before anything else is applied.
    Each target's own plan goes one way only, as Django's executor requires.
    """

    def goes_down(app: str, target: Optional[str]) -> bool:
        return target is None or target in state.get(app, {}).get("applied", [])

    return sorted(targets, key=lambda item: (not goes_down(*item), item[0], item[1] or ""))


def plan_segments(
    migration_plan: Callable[[List[Tuple[str, Optional[str]]]], List[Any]],
    targets: List[Tuple[str, Optional[str]]],
) -> List[List[Any]]:
    """Return, per target, the part of the combined plan it adds.

    Django's executor plans the targets one after the other, each from the
    state the previous ones leave, so the plan for the first k targets is a
    prefix of the plan for all of them, and ``migrate APP TARGET`` run in this
    order runs exactly these parts.
    """
    segments: List[List[Any]] = []
    planned = 0
    for count in range(1, len(targets) + 1):
        plan = migration_plan(targets[:count])
        segments.append(plan[planned:])
        planned = len(plan)
    return segments


def target_conflicts(
    after: AppsState,
    targets: Dict[str, Optional[str]],
    ancestors: Callable[[str, str], Set[str]],
    descendants: Callable[[str, str], Set[str]],
) -> Dict[str, Dict[str, List[str]]]:
    """Return, per app the combined plan would leave off its target, what is missing and what is extra.

    At its target an app has the target and everything it depends on applied,
    and nothing that comes after it. Targets contradict each other when one
    needs what another unapplies (billing's leaf needs shop.0002, shop to 0001).
    """
    conflicts: Dict[str, Dict[str, List[str]]] = {}
    for app, target in sorted(targets.items()):
        applied = after[app]["applied"]
        required = ancestors(app, target) if target else set()
        beyond = descendants(app, target) if target else set(applied)
        missing = sorted(required - set(applied))
        extra = [name for name in applied if name in beyond]
        if missing or extra:
            conflicts[app] = {"missing": missing, "extra": extra}
    return conflicts


def refuse_conflicting_targets(
    conflicts: Dict[str, Dict[str, List[str]]], targets: Dict[str, Optional[str]], unlisted: List[str]
) -> None:
    """Raise ProbeError when the combined plan cannot leave every app at its target."""
    if not conflicts:
        return
    parts = []
    for app, found in sorted(conflicts.items()):
        wrong = ["%s would still be applied" % ", ".join(found["extra"])] if found["extra"] else []
        wrong += ["%s would not be applied" % ", ".join(found["missing"])] if found["missing"] else []
        why = ", where targets_unlisted=zero takes it as it is not named in targets" if app in unlisted else ""
        parts.append("%s would not be at %s%s (%s)" % (app, targets[app] or "zero", why, "; ".join(wrong)))
    raise ProbeError(
        "conflicting_targets",
        "The targets cannot all be reached together, because one app's target depends on migrations that "
        "another's unapplies: %s. Nothing was run. Change targets so that each target has what it depends on."
        % "; ".join(parts),
        conflicts=conflicts,
    )


# --- Running the request ---------------------------------------------------------------


def new_executor(connection: Any) -> Any:
    from django.db.migrations.executor import MigrationExecutor

    return MigrationExecutor(connection)


def current_state(connection: Any) -> AppsState:
    return describe_state(new_executor(connection).loader)


def handle_request(
    request: Dict[str, Any], output: io.StringIO, progress: Optional["Progress"] = None
) -> Dict[str, Any]:
    """Serve one request once Django is set up; return the result document (``progress`` follows it)."""
    import django
    from django.db import connections

    progress = progress or Progress()
    connection = connections["default"]
    if request["action"] == "migrate":
        hold_migrate_lock(connection, min(60.0, float(request.get("timeout") or 120) / 2))
    executor = new_executor(connection)
    before = describe_state(executor.loader)
    result: Dict[str, Any] = {
        "ok": True,
        "django_version": django.get_version(),
        "before": before,
        "graph": describe_graph(executor.loader),
    }
    if request["action"] == "query":
        return progress.settle(result)

    app = request.get("app")
    order = migration_order(executor.loader)
    named = "targets" in request
    unlisted: List[str] = []
    if named:
        targets = resolve_target_map(before, order, request["targets"], graph_ancestors(executor.loader.graph))
        if request.get("targets_unlisted") == "zero":
            unlisted = unlisted_apps(before, targets)
            targets.update({name: None for name in unlisted})
        result["unlisted_zeroed"] = unlisted
    else:
        targets = resolve_targets(before, order, app, request.get("target"))
    goal = goal_label(app, targets, named)
    result["targets"] = {name: target or "zero" for name, target in targets.items()}
    if app:
        result["target"] = result["targets"][app]
    steps: List[Dict[str, Any]] = []
    drops: List[Dict[str, Any]] = []
    runs: List[List[str]] = [[app, targets[app] or "zero"]] if app else [[]]
    try:
        refuse_ghosts(before, targets)
        if named:
            plan, steps, runs = plan_named_targets(executor, before, order, targets, unlisted)
        else:
            plan = list(executor.migration_plan(list(targets.items())))
            steps = describe_plan(plan)
        drops = plan_drops(connection, executor.loader, plan)
        refuse_unsafe_plan(
            goal,
            steps,
            bool(request.get("allow_lossy")),
            drops,
            unapplied_initials(plan, executor.loader.graph),
            bool(request.get("allow_drop_app")),
        )
    except ProbeError as refusal:
        refusal.details.update({key: value for key, value in result.items() if key != "ok"}, plan=steps, drops=drops)
        raise
    result["plan"] = steps
    result["drops"] = drops
    after = predicted_state(before, order, steps)
    if request["action"] == "plan" or not steps:
        result["after"] = after
        return progress.settle(result)

    progress.migrating(result, before, after)
    result["migrate_output"] = run_migrate(connection, runs, goal, before, after, request, output, progress)
    result["after"] = current_state(connection)
    return progress.settle(result)


MIGRATE_LOCK = 7201508  # PostgreSQL advisory lock key: one migrate at a time per database


def hold_migrate_lock(connection: Any, wait: float) -> None:
    """Take MIGRATE_LOCK for this session (freed when the process ends), waiting up to ``wait`` s; else refuse."""
    if connection.vendor != "postgresql":
        return
    import time

    deadline = time.monotonic() + wait
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('application_name', %s, false)", ["django_migration " + os.uname()[1]])
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATE_LOCK])
            if cursor.fetchone()[0]:
                return
            if time.monotonic() > deadline:
                cursor.execute(
                    "SELECT pid, application_name, client_addr, backend_start FROM pg_stat_activity WHERE pid IN"
                    " (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted)",
                    [MIGRATE_LOCK],
                )
                holders = ", ".join("pid %s (%s from %s, connected %s)" % row for row in cursor.fetchall())
                raise ProbeError(
                    "migrate_locked",
                    "Another migrate holds the migration lock (advisory lock %d) of this database: session %s. "
                    "Waited %d s; nothing was migrated. Run again once it has finished."
                    % (MIGRATE_LOCK, holders or "gone", wait),
                )
            time.sleep(0.5)


def plan_named_targets(
    executor: Any,
    before: AppsState,
    order: Dict[str, List[str]],
    targets: Dict[str, Optional[str]],
    unlisted: List[str],
) -> Tuple[List[Tuple[Any, bool]], List[Dict[str, Any]], List[List[str]]]:
    """Return the combined plan (Django's, as steps) and the ``migrate APP TARGET`` runs that carry it out.

    Raises ProbeError when the plan would leave an app off its target.
    """
    graph = executor.loader.graph
    ordered = ordered_targets(before, targets.items())
    segments = plan_segments(executor.migration_plan, ordered)
    plan = [step for segment in segments for step in segment]
    steps = describe_plan(plan)
    after = predicted_state(before, order, steps)
    conflicts = target_conflicts(after, targets, graph_ancestors(graph), graph_descendants(graph))
    refuse_conflicting_targets(conflicts, targets, unlisted)
    runs = [[app, target or "zero"] for (app, target), segment in zip(ordered, segments) if segment]
    return plan, steps, runs


def graph_ancestors(graph: Any) -> Callable[[str, str], Set[str]]:
    """Return a function giving the migrations of ``app`` that ``name`` needs, itself included."""

    def ancestors(app: str, name: str) -> Set[str]:
        return {key[1] for key in graph.forwards_plan((app, name)) if key[0] == app}

    return ancestors


def graph_descendants(graph: Any) -> Callable[[str, str], Set[str]]:
    """Return a function giving the migrations of ``app`` that Django unapplies to bring it back to ``name``."""

    def descendants(app: str, name: str) -> Set[str]:
        children = [child for child in graph.node_map[(app, name)].children if child[0] == app]
        return {key[1] for child in children for key in graph.backwards_plan(child) if key[0] == app}

    return descendants


def resolve_targets(
    state: AppsState, order: Dict[str, List[str]], app: Optional[str], target: Optional[str]
) -> Dict[str, Optional[str]]:
    """Return {app: migration name or None for zero}: one app, or every app to its leaf."""
    if app:
        return {app: resolve_target(state, order, app, target)}
    return {name: resolve_target(state, order, name, None) for name, names in order.items() if names}


def run_migrate(
    connection: Any,
    runs: List[List[str]],
    goal: str,
    before: AppsState,
    expected: AppsState,
    request: Dict[str, Any],
    output: io.StringIO,
    progress: "Progress",
) -> List[str]:
    """Run ``migrate [APP TARGET]`` once per entry of ``runs``, in order; return what it printed.

    On any failure, also in a later run, bring the migration state back to
    ``before``, then raise; but a timeout once the state is ``expected`` (in
    post_migrate handlers, say) is no failure: the migrations stand.
    """
    from django.core.management import call_command

    migrate_output = progress.migrate_output
    yield_to_other_sessions(connection, migrate_output)
    attempt = 0
    failed: Optional[BaseException] = None
    while True:
        attempt += 1
        try:
            for arguments in runs:
                call_command(
                    "migrate",
                    *arguments,
                    interactive=False,
                    verbosity=1,
                    stdout=migrate_output,
                    stderr=migrate_output,
                )
            stop_soft_timer()  # inside the try: a timeout that strikes before this line is handled below
            break
        except BaseException as error:
            if try_again_after_lock_conflict(connection, error, attempt, before, request, migrate_output):
                continue
            stop_soft_timer()
            failed = error
            break
    if failed is not None:
        error = failed
        if isinstance(error, ProbeTimeout) and state_reached(connection, expected):
            lines = migrate_output.getvalue().splitlines() + [TIMER_AFTER_MIGRATE % request.get("timeout")]
            progress.migrated(lines)
            return lines
        output.write(migrate_output.getvalue())
        output.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        raise migrate_failure(connection, goal, before, request, error, progress) from None
    lines = migrate_output.getvalue().splitlines()
    progress.migrated(lines)
    return lines


TIMER_AFTER_MIGRATE = "(django_migration) The timeout of %s s struck after every migration was applied; they stand."

# A migration that takes its locks in another order than concurrent sessions (the API's
# writes) can deadlock with them, and PostgreSQL then ends the migration's transaction:
# nothing of it stands, so it is run again, up to MIGRATE_ATTEMPTS times in all.
LOCK_CONFLICTS = {"40P01": "deadlock", "55P03": "lock wait timeout", "40001": "serialization failure"}
MIGRATE_ATTEMPTS = 10
RETRY_NOTE = (
    "(django_migration) attempt %d of %d ended in a %s with another session; the migration state is back to "
    "where it started, running migrate again"
)


# The migration checks for a deadlock after this long (PostgreSQL's default is 1 s): when it
# crosses the API's requests, the migration is the one PostgreSQL ends (and it runs again,
# above), not a client's request. The role needs the right to set it (PostgreSQL 15:
# GRANT SET ON PARAMETER deadlock_timeout; the postgres role grants it); without it the
# migration runs with the default, and says so.
MIGRATE_DEADLOCK_TIMEOUT = "50ms"
NO_YIELD_NOTE = (
    "(django_migration) could not set deadlock_timeout for the migration (%s): a deadlock with a request "
    "may end the request instead of the migration"
)


def yield_to_other_sessions(connection: Any, migrate_output: io.StringIO) -> None:
    """Make the migration's session the first to check for deadlocks, so that it is the one ended."""
    if getattr(connection, "vendor", "") != "postgresql":
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET deadlock_timeout = '%s'" % MIGRATE_DEADLOCK_TIMEOUT)
    except Exception as error:  # permission denied, or not PostgreSQL
        migrate_output.write(NO_YIELD_NOTE % str(error).strip().splitlines()[0] + "\n")


def lock_conflict(error: BaseException) -> Optional[str]:
    """Return what kind of lock conflict ended a migrate (an error or one it was raised from), or None."""
    seen: Set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if code in LOCK_CONFLICTS:
            return LOCK_CONFLICTS[code]
        current = current.__cause__ or current.__context__
    return None


def try_again_after_lock_conflict(
    connection: Any,
    error: BaseException,
    attempt: int,
    before: AppsState,
    request: Dict[str, Any],
    migrate_output: io.StringIO,
) -> bool:
    """After a migrate ended by a lock conflict: bring the state back to ``before`` and say to run again.

    False (the failure stands) for any other error, a timeout, the last attempt, or a
    state that could not be brought back.
    """
    conflict = None if isinstance(error, ProbeTimeout) else lock_conflict(error)
    if conflict is None or attempt >= MIGRATE_ATTEMPTS:
        return False
    restored, _note, _now = restore_state(connection, before, bool(request.get("allow_lossy")))
    if not restored:
        return False
    migrate_output.write(RETRY_NOTE % (attempt, MIGRATE_ATTEMPTS, conflict) + "\n")
    time.sleep(min(0.5 * attempt, 2.0))
    return True


def reached(now: Optional[AppsState], expected: Optional[AppsState]) -> bool:
    """Return whether every app in ``expected`` has exactly the applied migrations it lists."""
    return bool(now and expected) and all(
        now.get(app, {}).get("applied") == info["applied"] for app, info in expected.items()
    )


def state_reached(connection: Any, expected: AppsState) -> bool:
    try:
        return reached(current_state(connection), expected)
    except Exception:
        return False


def migrate_failure(
    connection: Any,
    goal: str,
    before: AppsState,
    request: Dict[str, Any],
    error: BaseException,
    progress: Optional["Progress"] = None,
) -> ProbeError:
    """Restore the state migrate started from, and describe the failure and the restore."""
    progress = progress or Progress()
    timed_out = isinstance(error, ProbeTimeout)
    kind = "timeout" if timed_out else "migrate_failed"
    what = (
        "timed out after %s s" % request.get("timeout")
        if timed_out
        else "failed: %s: %s" % (type(error).__name__, error)
    )
    headline = "Migrating %s %s." % (goal, what)
    progress.restoring(kind, headline)
    restored, restore_note, now = restore_state(connection, before, bool(request.get("allow_lossy")))
    failure = ProbeError(
        kind,
        "%s %s" % (headline, restore_note),
        restored=restored,
        before=before,
        after=now,
    )
    progress.settle(failure.as_result())
    return failure


def state_heads(info: Dict[str, List[str]], graph: Any, app: str) -> List[MigrationKey]:
    """Return the applied migrations of ``app`` that have no applied child in the same app."""
    applied = set(info["applied"])
    heads = []
    for name in info["applied"]:
        children = graph.node_map[(app, name)].children if (app, name) in graph.node_map else set()
        if not any(child[0] == app and child[1] in applied for child in children):
            heads.append((app, name))
    return heads


def restore_state(connection: Any, before: AppsState, allow_lossy: bool) -> Tuple[bool, str, Optional[AppsState]]:
    """Migrate every app whose applied set changed back to ``before``.

    The way back can both unapply (what a later app applied) and apply again
    (what an earlier app unapplied); Django's executor runs one direction per
    plan, so each app goes back on its own, those going down first.
    Returns (restored, a sentence for the operator, the state now).
    """
    try:
        now = current_state(connection)
        changed = sorted(app for app in before if app in now and now[app]["applied"] != before[app]["applied"])
        if not changed:
            return True, "The migration state is unchanged.", now
        executor = new_executor(connection)
        heads: List[Tuple[str, Optional[str]]] = []
        for app in changed:
            heads.extend(state_heads(before[app], executor.loader.graph, app) or [(app, None)])
        targets = ordered_targets(now, heads)
        segments = plan_segments(executor.migration_plan, targets)
        steps = describe_plan(step for segment in segments for step in segment)
        blocked = [step_key(step) for step in steps if step["direction"] == "backwards" and step["irreversible"]]
        blocked += [
            step_key(step) for step in steps if step["direction"] == "backwards" and step["lossy"] and not allow_lossy
        ]
        if blocked:
            return (
                False,
                (
                    "It could not be undone automatically (%s would have to be unapplied); applied now: %s."
                    % (", ".join(blocked), ", ".join(applied_keys({app: now[app] for app in changed})))
                ),
                now,
            )
        for target, segment in zip(targets, segments):
            if segment:
                executor = new_executor(connection)
                executor.migrate([target], plan=executor.migration_plan([target]))
        now = current_state(connection)
        if all(now[app]["applied"] == before[app]["applied"] for app in changed):
            return (
                True,
                "The migration state was restored to what it was before (%s undone)."
                % ", ".join(step_key(step) for step in steps),
                now,
            )
        return False, "Restoring the previous state did not complete; check with state=query.", now
    except BaseException as error:  # the restore must never hide the original failure
        return (
            False,
            "Restoring the previous state failed too (%s: %s); check with state=query."
            % (
                type(error).__name__,
                error,
            ),
            None,
        )


# --- Starting Django through manage.py ------------------------------------------------


def start_django(request: Dict[str, Any], work: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
    """Start Django the way the project's manage.py does, then run ``work``.

    manage.py sets DJANGO_SETTINGS_MODULE with os.environ.setdefault and calls
    execute_from_command_line; running it with that function swapped for
    ``work`` honours any project's manage.py without knowing its settings.
    """
    if request.get("settings"):
        os.environ["DJANGO_SETTINGS_MODULE"] = request["settings"]
    try:
        import django.core.management as management
    except ImportError as error:
        raise ProbeError(
            "django_missing",
            "Django cannot be imported by %s (%s). Point the python option at the interpreter "
            "that runs the project." % (sys.executable, error),
        ) from None

    manage_py = os.path.abspath(request.get("manage_py") or "manage.py")
    outcome: Dict[str, Dict[str, Any]] = {}

    def entry(argv: Optional[List[str]] = None) -> None:
        django_setup()
        outcome["result"] = work()

    if not os.path.isfile(manage_py):
        if not os.environ.get("DJANGO_SETTINGS_MODULE"):
            raise ProbeError(
                "manage_py_missing",
                "%s does not exist and DJANGO_SETTINGS_MODULE is not set. Set workdir and "
                "manage_py to the project's manage.py, or set settings." % manage_py,
            )
        sys.path.insert(0, os.getcwd())
        entry()
        return outcome["result"]

    sys.path.insert(0, os.path.dirname(manage_py))
    original = management.execute_from_command_line
    management.execute_from_command_line = entry
    sys.argv = [manage_py, _PROBE_COMMAND]
    try:
        runpy.run_path(manage_py, run_name="__main__")
    except SystemExit as exit_:
        if "result" not in outcome and exit_.code not in (None, 0):
            raise ProbeError("manage_py_exit", "%s exited with %s before Django started." % (manage_py, exit_.code))
    finally:
        management.execute_from_command_line = original
    if "result" not in outcome:
        raise ProbeError(
            "manage_py_unusual",
            "%s did not call django.core.management.execute_from_command_line; set the settings "
            "option so Django can be started without it." % manage_py,
        )
    return outcome["result"]


def django_setup() -> None:
    import django

    try:
        django.setup()
    except ProbeTimeout:
        raise
    except BaseException as error:
        raise DjangoStartError(error) from error


class DjangoStartError(Exception):
    """django.setup() failed: settings, an app import or the app registry."""


# --- Timeouts ----------------------------------------------------------------------------
# The soft timer (SIGALRM at ``timeout``) raises ProbeTimeout in the main thread: the running
# migration rolls back, the previous state is restored. The hard timer (a thread, at timeout
# plus grace) kills a process stuck where signals cannot reach, or whose restore overran, after
# printing what Progress says is true.


class Progress:
    """How far the request got: phase starting, migrating, migrated, restoring or settled.

    ``document`` is the result to print once known (migrated: with the planned ``after``).
    """

    def __init__(self) -> None:
        self.phase, self.kind, self.headline = "starting", "timeout", ""
        self.base: Dict[str, Any] = {}
        self.before: Optional[AppsState] = None
        self.expected: Optional[AppsState] = None
        self.migrate_output = io.StringIO()
        self.document: Optional[Dict[str, Any]] = None

    def migrating(self, base: Dict[str, Any], before: AppsState, expected: AppsState) -> None:
        self.base, self.before, self.expected, self.phase = dict(base), before, expected, "migrating"

    def migrated(self, lines: List[str]) -> None:
        self.document, self.phase = dict(self.base, after=self.expected, migrate_output=lines), "migrated"

    def restoring(self, kind: str, headline: str) -> None:
        self.kind, self.headline, self.phase = kind, headline, "restoring"

    def settle(self, document: Dict[str, Any]) -> Dict[str, Any]:
        self.document, self.phase = document, "settled"
        return document


_SOFT_TIMER = {"armed": False}  # disarmed first when stopped, so a signal on its way raises nothing


def _raise_timeout(signum: int, frame: Any) -> None:
    if _SOFT_TIMER["armed"]:
        _SOFT_TIMER["armed"] = False
        raise ProbeTimeout()


def start_soft_timer(seconds: float) -> None:
    """Interrupt the main thread after ``seconds`` so a running migration rolls back cleanly."""
    if seconds > 0 and hasattr(signal, "setitimer"):
        _SOFT_TIMER["armed"] = True
        signal.signal(signal.SIGALRM, _raise_timeout)
        signal.setitimer(signal.ITIMER_REAL, seconds)


def stop_soft_timer() -> None:
    _SOFT_TIMER["armed"] = False
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, 0)


def read_state_elsewhere(wait: float) -> Optional[AppsState]:
    """Return the migration state read on this thread's own connection; None after ``wait`` s or on error."""
    box: Dict[str, AppsState] = {}

    def read() -> None:
        from django.db import connections

        try:
            box["state"] = current_state(connections["default"])
            connections["default"].close()
        except BaseException:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(wait)
    return box.get("state")


def hard_timeout_document(
    progress: Progress, seconds: float, output: io.StringIO, read_state: Callable[[], Optional[AppsState]]
) -> Dict[str, Any]:
    """Return what to print when the hard timer kills the process: only what is known to be true."""
    killed = "Django was still busy %s s after the request started (timeout plus grace) and was killed" % seconds
    document = progress.document
    if document is not None:
        return document if document["ok"] else dict(document, output=tail(output.getvalue()))
    known = {"ok": False, "kind": "timeout", "restored": False, "output": tail(output.getvalue())}
    if progress.phase == "starting":
        return dict(known, message="%s before migrate began; nothing was migrated." % killed)
    now = read_state()
    known.update(before=progress.before, after=now)
    applied = "" if now is None else " (applied just before: %s)" % (", ".join(applied_keys(now)) or "none")
    if progress.phase == "migrating" and reached(now, progress.expected):
        note = "(django_migration) %s after every migration was applied; they stand." % killed
        return dict(progress.base, after=now, migrate_output=progress.migrate_output.getvalue().splitlines() + [note])
    if progress.phase == "migrating":
        message = "%s; the database rolled back the migration in progress%s. Check with state=query." % (
            killed,
            applied,
        )
        return dict(known, message=message)
    if reached(now, progress.before):
        message = "%s The state before was restored, then %s." % (progress.headline, killed.replace("Django", "it"))
        return dict(known, kind=progress.kind, restored=True, message=message)
    message = (
        "%s Restoring the previous migration state did not complete: %s, so the migration state is unknown%s. "
        "Run state=query and bring the apps where they must be (or restore a backup)."
        % (progress.headline, killed.replace("Django", "it"), applied)
    )
    return dict(known, kind="state_unknown", message=message)


def start_hard_timer(
    seconds: float,
    emit: Callable[[Dict[str, Any]], None],
    output: io.StringIO,
    progress: Optional[Progress] = None,
    wait: float = 1.0,
) -> None:
    """Kill the process after ``seconds`` if the main thread is stuck where signals cannot reach.

    The database rolls back the open transaction when the connection drops.
    ``wait``: how long to read the migration state first (see hard_timeout_document).
    """
    if seconds <= 0:
        return
    progress = progress or Progress()

    def kill() -> None:
        try:
            document = hard_timeout_document(progress, seconds, output, lambda: read_state_elsewhere(wait))
        except BaseException as error:  # the process must end with a document
            document = {"ok": False, "kind": "state_unknown", "message": "Killed at %s s (%r)." % (seconds, error)}
        emit(document)
        os._exit(3)

    timer = threading.Timer(seconds, kill)
    timer.daemon = True
    timer.start()


# --- Input and output --------------------------------------------------------------------


def parse_request(argv: List[str]) -> Dict[str, Any]:
    """Return the JSON request given as the first argument, checked."""
    if len(argv) < 2:
        raise ProbeError("bad_request", "Usage: python - '<json request>'")
    try:
        request = json.loads(argv[1])
    except ValueError as error:
        raise ProbeError("bad_request", "The request is not JSON: %s" % error) from None
    if request.get("action") not in ACTIONS:
        raise ProbeError("bad_request", "action must be one of %s" % ", ".join(ACTIONS))
    if request.get("target") and not request.get("app"):
        raise ProbeError("bad_request", "target needs app")
    if "targets" in request:
        if request.get("app") or request.get("target"):
            raise ProbeError("bad_request", "targets excludes app and target")
        try:
            request["targets"] = normalise_targets(request["targets"])
        except ValueError as error:
            raise ProbeError("bad_request", str(error)) from None
    if (request.get("targets_unlisted") or "keep") not in UNLISTED_CHOICES:
        raise ProbeError("bad_request", "targets_unlisted must be one of %s" % ", ".join(UNLISTED_CHOICES))
    return request


def make_emitter(stream: Any) -> Callable[[Dict[str, Any]], None]:
    """Return a function that writes one result document, once, even from two threads."""
    lock = threading.Lock()
    emitted: List[bool] = []

    def emit(result: Dict[str, Any]) -> None:
        with lock:
            if emitted:
                return
            emitted.append(True)
            stream.write(render(result))
            stream.flush()

    return emit


def failure_result(error: BaseException, output: io.StringIO) -> Dict[str, Any]:
    """Return the document for an exception that escaped the request."""
    if isinstance(error, ProbeError):
        result = error.as_result()
        result.setdefault("output", tail(output.getvalue()))
        return result
    if isinstance(error, ProbeTimeout):
        kind, message = "timeout", "Django did not finish before the timeout; nothing was migrated."
    elif isinstance(error, DjangoStartError):
        error = error.__cause__ or error
        kind, message = "django_failed", "Django could not start: %s: %s" % (type(error).__name__, error)
    else:
        kind, message = "django_failed", "Django failed: %s: %s" % (type(error).__name__, error)
    output.write("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    return {"ok": False, "kind": kind, "message": message, "output": tail(output.getvalue())}


def main(argv: Optional[List[str]] = None) -> int:
    """Serve the request in ``argv``; print one result document; return the exit code."""
    real_stdout, real_stderr = sys.stdout, sys.stderr
    emit = make_emitter(real_stdout)
    output = io.StringIO()
    try:
        request = parse_request(list(sys.argv if argv is None else argv))
    except ProbeError as error:
        emit(error.as_result())
        return 2
    progress = Progress()
    timeout = float(request.get("timeout") or 0)
    grace = float(request.get("grace") or 0)
    start_hard_timer(timeout + grace if timeout else 0, emit, output, progress, wait=min(5.0, max(0.5, grace / 2)))
    start_soft_timer(timeout)
    # Whatever the project prints (settings, app imports, logging) must not mix with the result.
    sys.stdout = sys.stderr = output
    try:
        result = start_django(request, lambda: handle_request(request, output, progress))
    except BaseException as error:
        stop_soft_timer()
        result = late_failure_result(progress, error, output)
    finally:
        stop_soft_timer()
        sys.stdout, sys.stderr = real_stdout, real_stderr
    emit(result)
    return 0


def late_failure_result(progress: Progress, error: BaseException, output: io.StringIO) -> Dict[str, Any]:
    """Return the document for an exception that escaped the request; a success reached before stands."""
    known = progress.document
    if known is None or not known.get("ok") or isinstance(error, ProbeError):
        return failure_result(error, output)
    if progress.phase == "settled":
        return known
    note = "(django_migration) migrate completed; reading the state again failed (%r): after is planned." % error
    return dict(known, migrate_output=list(known["migrate_output"]) + [note])


if __name__ == "__main__":
    sys.exit(main())
