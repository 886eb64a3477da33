#!/usr/bin/python
"""Ansible module: read and change Django migration state inside a Docker container."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: django_migration
short_description: Read and change Django migration state in a container, with a plan
description:
  - Runs on the Docker host and starts Django inside the application's container, either with
    C(docker exec) in the serving container (O(container)) or in a one-off C(docker run --rm)
    container from an image on the application network (O(image)), so it also works while the
    API container crash-loops or is gone.
  - Django itself answers, through C(MigrationLoader) and C(MigrationExecutor); no command output
    is parsed. Each task costs one C(docker exec) or C(docker run) and one Django start.
  - O(state=query) returns every app's applied, unapplied, leaf and ghost migrations.
  - O(state=migrated) computes the exact plan to bring O(app) to O(target) (forwards or
    backwards), or every app to its leaf when O(app) is not given, checks it before anything
    runs, runs C(migrate [APP TARGET] --noinput), and reads the state again.
  - With O(targets), several apps are brought to their own targets in one Django start - for example
    every app back to the leaves the release ledger recorded for the previous release. Django's executor
    plans all targets together, every check below applies to the whole plan, then C(migrate APP TARGET)
    runs app by app in the plan's order, and the state is read again. With O(targets_unlisted=zero),
    apps that the previous release did not have yet go to zero in the same plan.
  - Each plan step names its operations and says whether undoing it is impossible (irreversible,
    Django would raise C(IrreversibleError)) or lossy (a C(RunPython)/C(RunSQL) whose reverse is a
    no-op). A backwards plan with an irreversible step fails; one with a lossy step runs only with
    O(allow_lossy=true).
  - A backwards plan also lists every table and column it drops (RV(drops)) - unapplying C(AddField) drops
    its column, C(CreateModel) its table - with how many rows hold data there, counted in the database
    before anything runs. A drop where rows hold data makes the plan lossy too.
  - A plan that unapplies an app's initial migration (O(target=zero), an app at V(zero) in O(targets),
    O(targets_unlisted=zero), or an app that depends on one going back) takes the whole app out of the
    database and runs only with O(allow_drop_app=true).
  - Ghost migrations (applied in the database, absent from the code in the image) above the target
    make the task fail, naming them and, with O(ledger), the image that contains them.
  - Migrations run beside the serving release. When C(migrate) deadlocks with another session (a
    request of the API), the migration is the one PostgreSQL ends - its session checks for deadlocks
    after 50 ms, not the default 1 s (the role needs C(GRANT SET ON PARAMETER deadlock_timeout),
    PostgreSQL 15; without it the output says so) - its state is brought back and it runs again, up
    to 10 attempts in all, and the request goes through.
  - If C(migrate) fails or times out half-way, the migrations it applied or unapplied are undone
    so the database keeps the migration state it had (unless that would need an irreversible step).
    A timeout that strikes after every migration was applied changes nothing, the task succeeds. If the
    undoing itself is cut off at the hard limit (O(timeout) plus a grace), the task fails with
    RV(kind=state_unknown); check the state with O(state=query).
  - On PostgreSQL, O(state=migrated) holds an advisory lock (key 7201508) from before it reads the state until
    it ends, so migrations on one database run one at a time - also from several hosts of the C(api) group. A
    second task waits for it up to half its O(timeout) (at most 60 s), then fails with RV(kind=migrate_locked),
    naming the session that holds it. Check mode and O(state=query) do not take it.
  - Works with any Django project; the project's C(manage.py) selects its settings as usual.
version_added: "1.0.0"
author:
  - Depotix operations
options:
  state:
    description:
      - V(query) reads the migration state and changes nothing.
      - V(migrated) brings O(app) to O(target), or every app to its leaf migration (as a bare
        C(manage.py migrate) does) when O(app) is not given.
    type: str
    choices: [query, migrated]
    default: query
  app:
    description:
      - Django app label to migrate, with O(state=migrated).
      - Omitted (and without O(targets)), every app is migrated to its leaf migration (the deploy of
        a release).
      - Mutually exclusive with O(targets).
    type: str
  target:
    description:
      - Migration to bring O(app) to - a full name (V(0007_populate_customer_numbers)), a unique
        prefix (V(0007)), or V(zero) to unapply every migration of the app.
      - Omitted, the app's leaf migration (fails if the app has several leaves).
      - Needs O(app). Mutually exclusive with O(targets).
    type: str
  targets:
    description:
      - Several apps to bring to their own targets in one plan, with O(state=migrated) - a dict of app
        label to target.
      - A target is a migration name, a unique prefix, V(zero), null for the app's leaf, or a list of leaf
        names as the release ledger records them, so a ledger entry's C(leaves) can be given as it is.
        In a list, names that another listed name depends on add nothing and an empty list means V(zero);
        leaves that do not depend on each other fail (Django's migrate refuses an app with several leaves).
      - Every app named must have migrations in the code Django runs; the task fails naming the others.
        Quote migration names - YAML reads V(0007) as the number 7.
      - Apps not named are left alone, except for what the plan must do to them because of dependencies
        (see O(targets_unlisted)).
      - The task fails before anything runs when the targets contradict each other (one app's target needs
        migrations that another app's target unapplies).
      - Mutually exclusive with O(app) and O(target).
    type: dict
  targets_unlisted:
    description:
      - What to do with apps that have migrations applied in the database but are not named in O(targets).
      - V(keep) leaves them as they are.
      - V(zero) unapplies all their migrations, in the same plan, for a rollback to a release in which a newer
        app did not exist yet. Run it with the image that contains those apps - the older release's image
        does not have their migrations and fails, naming them as ghosts.
      - Needs O(targets).
    type: str
    choices: [keep, zero]
    default: keep
  allow_lossy:
    description:
      - Run a backwards plan that unapplies lossy steps (data changes that their reverse does not
        undo), or drops tables or columns that hold data (see RV(drops)). Take a backup first.
    type: bool
    default: false
  allow_drop_app:
    description:
      - Run a plan that unapplies an app's initial migration, which drops every table of the app - with
        O(target=zero), an app at V(zero) in O(targets), O(targets_unlisted=zero) reaching an app with
        migrations applied, or an app that depends on another one taken back before its first migration.
      - Without it such a plan fails before anything runs (also in check mode), naming the apps.
        The tables' rows are counted in RV(drops); those holding data also need O(allow_lossy=true).
    type: bool
    default: false
  container:
    description:
      - Running container to C(docker exec) into, for example V(api).
      - If it is not running and O(image) is given, a one-off container from O(image) is used.
      - One of O(container) and O(image) is required.
    type: str
  image:
    description:
      - Image (with tag) to start a one-off C(docker run --rm) container from, for example
        V(depotix/api:2.0). Its entrypoint is replaced by O(python), so an entrypoint that migrates
        on start never runs. The image must already be on the host; it is never pulled.
      - Used when O(container) is not given, or is not running.
    type: str
  network:
    description:
      - Docker network for the one-off container, so it reaches the database (for example
        V(server_appnet)). Needs O(image).
    type: str
  env_file:
    description:
      - Env file on the Docker host for the one-off container (database settings and password).
        Passed to docker with C(--env-file); the module never reads it. Needs O(image).
    type: path
  volumes:
    description:
      - Volumes for the one-off container, in C(docker run --volume) syntax, for example secret
        files mounted read-only (V(/home/deploy/Depotix/secrets:/run/secrets:ro)). Needs O(image).
    type: list
    elements: str
  user:
    description:
      - User to run Django as (C(docker exec --user) / C(docker run --user)). Default, the image's user.
    type: str
  workdir:
    description:
      - Directory in the container holding the project; Django starts from there.
    type: str
    default: /app
  manage_py:
    description:
      - The project's C(manage.py), relative to O(workdir). Run with Django's command line swapped
        out, so it sets C(DJANGO_SETTINGS_MODULE) as it always does.
    type: str
    default: manage.py
  settings:
    description:
      - C(DJANGO_SETTINGS_MODULE) to use, overriding what C(manage.py) and the container set.
    type: str
  python:
    description:
      - Python interpreter in the container that can import the project and Django.
    type: str
    default: python3
  timeout:
    description:
      - Seconds Django may take. At the timeout a running migration is interrupted, rolled back
        and the state restored; the process is killed if it does not stop, and a one-off
        container is removed. The task then fails and says so.
    type: int
    default: 300
  ledger:
    description:
      - JSON release ledger on the Docker host (a list of entries with C(release), C(image),
        C(leaves) per app and C(outcome), or an object with an C(entries) list). Read only to name
        the image that contains ghost migrations.
    type: path
  docker_cli:
    description:
      - Name or path of the docker CLI on the host.
    type: str
    default: docker
  graph_cache:
    description:
      - Directory on the Docker host that keeps each image's migration graph, one file per image id
        (mode 0600, the directory 0700). Every probe keeps the graph of its image there when none is
        kept yet.
      - With it, O(state=query) starts no Django - it reads which image the container runs (one
        C(docker inspect)), the graph kept for that image, and C(django_migrations) through the database
        container's C(psql) (O(database_container)). When any of that is missing or does not check out
        (a new image, a torn file, squashed migrations, the database container down) it asks the probe
        as without a cache, and says why in RV(graph_cache). RV(source) says which answered.
      - Graphs of images no longer on the host are removed whenever a graph is written.
      - Plans and migrations always run Django's own executor. The one exception is O(state=migrated) for
        every app to its leaves (no O(app), no O(targets)) when the graph kept shows every app at its one
        leaf with no ghost - there is nothing to plan or run, and the cache says so (RV(source=cache)).
    type: path
  database_container:
    description:
      - With O(graph_cache), the database container whose C(psql) reads C(django_migrations), over its
        local socket (on the same Docker host).
    type: str
  database_name:
    description: With O(graph_cache), the application's database.
    type: str
  database_user:
    description: With O(graph_cache), the database role C(psql) connects as.
    type: str
    default: postgres
attributes:
  check_mode:
    support: full
    description: Computes and returns the plan and the predicted state; nothing runs in Django.
  diff_mode:
    support: full
    description: Shows the applied migrations of the apps in the plan, before and after.
  platform:
    platforms: posix
    description: Runs on the Docker host; needs the docker CLI and access to the engine.
notes:
  - A O(state=query) runs one C(docker exec) (or C(docker run)) and one Django start; with both
    O(container) and O(image) given, one C(docker inspect) first decides between them. With
    O(graph_cache) and the graph of the image kept, it runs one C(docker inspect) and one C(psql) read
    instead.
  - The probe's source, with the protocol module it imports, is sent to the container on stdin;
    nothing is copied into the image.
  - Backwards plans are checked step by step; a forwards plan is always allowed, and
    RV(rollback_safe) tells whether it could later be undone without loss.
  - With O(targets), C(migrate) runs once per app that has steps in the plan, all in the same Django
    start; if one of them fails, what the earlier ones changed is undone too.
requirements:
  - The docker CLI on the host, and C(timeout) from coreutils to stop a docker client that hangs.
  - Django and Python 3.8 or later in the container (tested with Django 5.2).
"""

EXAMPLES = r"""
- name: Read the migration state from the serving container
  django_migration:
    container: api
  register: api_migrations

- name: Read it without starting Django, from the graph kept for the container's image
  django_migration:
    container: api
    image: depotix/api:2.0
    graph_cache: /var/lib/depotix/migration-graphs
    database_container: server-postgres-1
    database_name: depotix
  register: api_migrations  # api_migrations.source: cache, or probe (and graph_cache.reason says why)

- name: Show the plan to roll inventory back to 0007, changing nothing
  django_migration:
    container: api
    state: migrated
    app: inventory
    target: "0007"
  check_mode: true
  register: rollback_plan

- name: Unapply 0008 with the image that contains it, while the API crash-loops
  django_migration:
    container: api
    image: depotix/api:2.0
    network: server_appnet
    env_file: /home/deploy/Depotix/api.env
    state: migrated
    app: inventory
    target: 0007_populate_customer_numbers
    allow_lossy: true
    ledger: /home/deploy/Depotix/releases.json

- name: Take every app back to the previous release's leaves with the new image, dropping newer apps
  django_migration:
    image: depotix/api:2.1
    network: server_appnet
    env_file: /home/deploy/Depotix/api.env
    state: migrated
    targets: "{{ ledger.previous.leaves }}"
    targets_unlisted: zero
    allow_lossy: true
    allow_drop_app: true
    ledger: /home/deploy/Depotix/releases.json

- name: Bring inventory and apitokens to given migrations in one plan (apitokens leaves the database)
  django_migration:
    container: api
    state: migrated
    targets:
      inventory: "0007"
      apitokens: zero
    allow_drop_app: true
  check_mode: true
  register: token_plan  # token_plan.drops: the tables and columns it drops, with the rows holding data there

- name: Migrate every app to the new release's leaves from its image, before switching containers
  django_migration:
    image: "depotix/api:{{ api_release }}"
    network: server_appnet
    env_file: /home/deploy/Depotix/api.env
    volumes:
      - /home/deploy/Depotix/secrets:/run/secrets:ro
    user: "10001:10001"
    state: migrated
    timeout: 900
  register: api_migrate
  run_once: true
"""

RETURN = r"""
apps:
  description:
    - Migration state per app, after the task (planned state in check mode).
    - With O(state=query), the state read.
  returned: success
  type: dict
  sample:
    inventory:
      applied: [0001_initial, 0007_populate_customer_numbers]
      unapplied: [0008_add_idempotency_and_constraints]
      leaf: [0008_add_idempotency_and_constraints]
      ghosts: []
  contains:
    applied:
      description: Migrations applied in the database and present in the code, in dependency order.
      type: list
      elements: str
    unapplied:
      description: Migrations in the code not applied, in dependency order.
      type: list
      elements: str
    leaf:
      description: The app's leaf migrations (more than one means a conflict to merge).
      type: list
      elements: str
    ghosts:
      description: Migrations applied in the database whose files the code does not contain.
      type: list
      elements: str
apps_before:
  description:
    - With O(state=migrated), the migration state per app before the task, as RV(apps) describes it (so a
      play that plans or migrates needs no O(state=query) before or after).
  returned: success, with O(state=migrated)
  type: dict
  sample:
    inventory:
      applied: [0001_initial, 0007_populate_customer_numbers, 0008_add_idempotency_and_constraints]
      unapplied: []
      leaf: [0008_add_idempotency_and_constraints]
      ghosts: []
plan:
  description:
    - The steps Django runs (or would run, in check mode), in order. Also returned when the plan is refused.
  returned: state=migrated
  type: list
  elements: dict
  sample:
    - app: inventory
      name: 0008_add_idempotency_and_constraints
      direction: backwards
      irreversible: false
      lossy: true
      atomic: true
      operations:
        - {type: AddField, description: Add field idempotency_key to stockmovement, reversible: true, lossy: false}
        - {type: RunPython, description: Raw Python operation, reversible: true, lossy: true}
  contains:
    app:
      description: App label.
      type: str
    name:
      description: Migration name.
      type: str
    direction:
      description: V(forwards) (apply) or V(backwards) (unapply).
      type: str
    irreversible:
      description: Undoing this step is impossible (an operation without a reverse).
      type: bool
    lossy:
      description: Undoing this step leaves data changed (an operation whose reverse is a no-op).
      type: bool
    atomic:
      description: Django runs the migration in one transaction (where the database allows it).
      type: bool
    operations:
      description: The migration's operations, each with C(type), C(description), C(reversible) and C(lossy).
      type: list
      elements: dict
target:
  description: The migration O(target) resolved to, or V(zero). Null without O(app).
  returned: state=migrated
  type: str
  sample: 0007_populate_customer_numbers
targets:
  description:
    - Per app migrated, the migration it was brought to, or V(zero) - every app's leaf without O(app) and
      O(targets); with O(targets), the apps named (and those O(targets_unlisted=zero) took to zero).
  returned: state=migrated
  type: dict
  sample: {inventory: 0007_populate_customer_numbers, apitokens: zero}
unlisted_zeroed:
  description: Apps not named in O(targets) that O(targets_unlisted=zero) brought (or, in check mode, would bring) to zero.
  returned: state=migrated with targets
  type: list
  elements: str
  sample: [apitokens]
app:
  description: The app migrated (null when every app, or the apps of O(targets), were).
  returned: state=migrated
  type: str
  sample: inventory
before:
  description: Applied migrations per app before the task.
  returned: state=migrated
  type: dict
  sample: {inventory: [0001_initial, 0007_populate_customer_numbers, 0008_add_idempotency_and_constraints]}
after:
  description: Applied migrations per app after the task (planned, in check mode).
  returned: state=migrated
  type: dict
  sample: {inventory: [0001_initial, 0007_populate_customer_numbers]}
lossy_steps:
  description:
    - Plan steps (V(app.name)) whose undoing is lossy, then one line per table or column in RV(drops) where rows
      hold data (or could not be counted). In a backwards plan they block it without O(allow_lossy).
  returned: state=migrated, and failure on V(lossy) or V(drop_app)
  type: list
  elements: str
  sample:
    - inventory.0008_add_idempotency_and_constraints
    - inventory 0008_add_idempotency_and_constraints drops column inventory_stockmovement.idempotency_key (12 rows hold data)
drops:
  description:
    - Every table and column the backwards steps of the plan drop, in plan order - unapplying C(AddField) drops its
      column, C(CreateModel) its table (with the many-to-many tables Django made for them); indexes and constraints
      are not listed, they hold no data. Empty for a forwards plan.
    - Names come from the migration's model state, the counts from the database before anything runs. Drops with
      0 rows are listed but do not make the plan lossy.
  returned: state=migrated, and failure when the plan was refused
  type: list
  elements: dict
  sample:
    - {app: inventory, migration: 0009_inventoryitem_location, table: inventory_inventoryitem, column: location,
       rows_with_data: 0}
    - {app: inventory, migration: 0008_add_idempotency_and_constraints, table: inventory_stockmovement,
       column: idempotency_key, rows_with_data: 12}
  contains:
    app:
      description: App label of the migration that drops it.
      type: str
    migration:
      description: Name of the migration whose undoing drops it.
      type: str
    table:
      description: Database table dropped, or holding the column dropped.
      type: str
    column:
      description: Column dropped; null when the whole table is.
      type: str
    rows_with_data:
      description:
        - Rows holding data there - a table's rows; a column's rows that are not null and, for a plain default
          (an empty string, 0, false), differ from it.
        - Null when they could not be counted (see C(reason)); that counts as holding data.
      type: int
    reason:
      description: Why the rows could not be counted, for example a later migration renamed the column.
      type: str
      returned: when rows_with_data is null
dropped_apps:
  description: On V(drop_app), the apps whose initial migration the plan unapplies.
  returned: failure
  type: list
  elements: str
  sample: [apitokens]
irreversible_steps:
  description: Plan steps (V(app.name)) that cannot be undone; they block a backwards plan.
  returned: state=migrated
  type: list
  elements: str
  sample: []
rollback_safe:
  description: Every forwards step of the plan can later be unapplied without loss.
  returned: state=migrated
  type: bool
  sample: false
migrate_output:
  description: What C(migrate) printed (empty in check mode or when there was nothing to do).
  returned: state=migrated
  type: list
  elements: str
  sample: ["Operations to perform:", "  Target specific migration: 0007_populate_customer_numbers, from inventory"]
runner:
  description: How Django was reached.
  returned: always
  type: dict
  sample: {kind: run, image: depotix/api:2.0, network: server_appnet, name: django-migration-3f2a9c1d0b7e,
           reason: container api is exited}
  contains:
    kind:
      description: V(exec) (serving container), V(run) (one-off container) or V(cache) (no Django, O(graph_cache)).
      type: str
    container:
      description: Container exec'ed into.
      type: str
    image:
      description: Image of the one-off container.
      type: str
    reason:
      description: Why the one-off container was used although O(container) was given.
      type: str
source:
  description:
    - What answered - V(probe) (Django in a container) or V(cache) (the graph kept for the image and
      C(django_migrations), O(graph_cache)).
  returned: success
  type: str
  sample: cache
graph_cache:
  description:
    - With O(graph_cache), what the cache did - RV(graph_cache.reason) why it did not answer a query,
      RV(graph_cache.written) whether this run kept a graph.
  returned: success, with O(graph_cache)
  type: dict
  sample: {used: false, reason: no graph kept yet for image sha256:3f2a..., written: true,
           path: /var/lib/depotix/migration-graphs/3f2a....json, removed: []}
  contains:
    used:
      description: The cache answered the query.
      type: bool
    reason:
      description: Why it did not.
      type: str
    written:
      description: This run kept the graph of its image.
      type: bool
    path:
      description: The file of the image's graph.
      type: str
    removed:
      description: Graph files removed because their images are gone.
      type: list
      elements: str
django_version:
  description: Django version in the container.
  returned: success
  type: str
  sample: 5.2.19
kind:
  description:
    - On failure, what went wrong - V(unknown_app), V(unknown_target), V(ambiguous_target),
      V(multiple_leaves), V(conflicting_targets), V(ghosts), V(irreversible), V(lossy), V(drop_app),
      V(migrate_locked), V(migrate_failed), V(timeout), V(state_unknown), V(django_failed), V(container_unavailable),
      V(docker_failed) and a few more.
    - V(state_unknown) - undoing a failed or timed-out C(migrate) was cut off at the hard limit, so the
      migration state is neither the one before nor the one asked for; run O(state=query).
  returned: failure
  type: str
  sample: ghosts
unknown_apps:
  description: On V(unknown_app) with O(targets), the apps named that the code has no migrations for.
  returned: failure
  type: list
  elements: str
  sample: [apitokens]
conflicts:
  description:
    - On V(conflicting_targets), per app the plan could not leave at its target, the migrations that would
      be C(missing) and those that would be C(extra)ly applied.
  returned: failure
  type: dict
  sample: {shop: {missing: [], extra: [0002_item_sku]}}
restored:
  description: After a failed or timed-out C(migrate), whether the previous migration state was restored.
  returned: failure after migrate started
  type: bool
  sample: true
output:
  description: Last lines of Django's output (traceback included) on failure.
  returned: failure
  type: list
  elements: str
"""

import os
from typing import Any, Dict, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.django_migration_cache import DatabaseOptions, GraphCache, Miss
from ansible.module_utils.django_migration_docker import (
    DjangoMigrationError,
    DockerClient,
    ProbeOptions,
    run_probe,
)
from ansible.module_utils.django_migration_protocol import UNLISTED_CHOICES, normalise_targets
from ansible.module_utils.django_migration_results import failure, migrated_result, query_result

ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = dict(
    state=dict(type="str", default="query", choices=["query", "migrated"]),
    app=dict(type="str"),
    target=dict(type="str"),
    targets=dict(type="dict"),
    targets_unlisted=dict(type="str", default="keep", choices=list(UNLISTED_CHOICES)),
    allow_lossy=dict(type="bool", default=False),
    allow_drop_app=dict(type="bool", default=False),
    container=dict(type="str"),
    image=dict(type="str"),
    network=dict(type="str"),
    env_file=dict(type="path"),
    volumes=dict(type="list", elements="str"),
    user=dict(type="str"),
    workdir=dict(type="str", default="/app"),
    manage_py=dict(type="str", default="manage.py"),
    settings=dict(type="str"),
    python=dict(type="str", default="python3"),
    timeout=dict(type="int", default=300),
    ledger=dict(type="path"),
    docker_cli=dict(type="str", default="docker"),
    graph_cache=dict(type="path"),
    database_container=dict(type="str"),
    database_name=dict(type="str"),
    database_user=dict(type="str", default="postgres"),
)

MODULE_RULES: Dict[str, Any] = dict(
    required_one_of=[("container", "image")],
    required_by={
        "network": "image",
        "env_file": "image",
        "volumes": "image",
        "target": "app",
        "graph_cache": ("database_container", "database_name"),
    },
    mutually_exclusive=[("targets", "app"), ("targets", "target")],
    supports_check_mode=True,
)


def build_request(module: AnsibleModule) -> Dict[str, Any]:
    """Return the probe request for the module's state and check mode."""
    params = module.params
    if params["state"] == "query":
        return {"action": "query"}
    request: Dict[str, Any] = {
        "action": "plan" if module.check_mode else "migrate",
        "allow_lossy": params["allow_lossy"],
        "allow_drop_app": params["allow_drop_app"],
    }
    if params["targets"] is not None:
        request.update(targets=params["targets"], targets_unlisted=params["targets_unlisted"])
    else:
        request.update(app=params["app"] or None, target=params["target"] or None)
    return request


def check_targets(module: AnsibleModule) -> None:
    """Fail on targets and targets_unlisted that cannot mean anything; normalise targets in place."""
    params = module.params
    if params["targets"] is None:
        if params["targets_unlisted"] == "zero":
            module.fail_json(
                msg="targets_unlisted=zero needs targets: without them every app would be unlisted and go to zero."
            )
        return
    if params["state"] != "migrated":
        module.fail_json(msg="targets needs state=migrated; state=query reads every app anyway.")
    try:
        params["targets"] = normalise_targets(params["targets"])
    except ValueError as error:
        module.fail_json(msg=str(error))


def check_host_inputs(module: AnsibleModule) -> str:
    """Fail early on inputs the host can check; return the docker CLI's path."""
    params = module.params
    if params["timeout"] <= 0:
        module.fail_json(msg="timeout must be a positive number of seconds, got %d." % params["timeout"])
    if params["env_file"] and not os.path.isfile(params["env_file"]):
        module.fail_json(msg="env_file %s does not exist on the Docker host." % params["env_file"])
    docker = module.get_bin_path(params["docker_cli"])
    if not docker:
        module.fail_json(
            msg="docker CLI %r not found on this host; install docker or set docker_cli." % params["docker_cli"]
        )
    return docker


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **MODULE_RULES)
    check_targets(module)
    docker = check_host_inputs(module)
    client = DockerClient(
        run=lambda argv, data: module.run_command(argv, data=data, binary_data=True),
        docker=docker,
        timeout_bin=module.get_bin_path("timeout"),
    )
    options = ProbeOptions.from_params(module.params)
    cache = graph_cache(module, client)
    cache_report: Dict[str, Any] = {}
    if cache is not None and module.params["state"] == "query":
        try:
            module.exit_json(**dict(cache.query(options), graph_cache={"used": True}))
        except Miss as miss:
            cache_report = {"used": False, "reason": str(miss)}
    elif cache is not None and every_app_to_its_leaf(module):
        try:
            module.exit_json(**settled_result(module, cache.at_leaves(options)))
        except Miss as miss:
            cache_report = {"used": False, "reason": str(miss)}

    problem = None
    try:
        document, runner = run_probe(client, options, build_request(module))
        if not document.get("ok"):
            raise failure(document, runner, module.params["ledger"])
    except DjangoMigrationError as error:
        problem = error
    if problem is not None:
        # Outside the except block: the failure is explained in msg, not as a module traceback.
        module.fail_json(msg=problem.msg, **problem.details)

    extra: Dict[str, Any] = {"source": "probe"}
    if cache is not None:
        # Why the cache did not answer comes first; what keeping the graph did, after.
        try:
            cache_report = dict(cache.remember(runner, document), **cache_report)
        except OSError as error:
            cache_report = dict({"written": False, "reason": "the graph could not be kept: %s" % error}, **cache_report)
        extra["graph_cache"] = dict(cache_report, used=False)
    document.pop("graph", None)
    if module.params["state"] == "query":
        module.exit_json(**dict(query_result(document, runner), **extra))
    result = migrated_result(document, runner, module.params["app"], module.check_mode)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**dict(result, **extra))


def every_app_to_its_leaf(module: AnsibleModule) -> bool:
    """Whether the request is state=migrated for every app to its leaves (no app, no targets)."""
    params = module.params
    return params["state"] == "migrated" and not params["app"] and params["targets"] is None


class CachedRunner:
    """The graph kept for the image, where a runner is expected (it describes itself alike)."""

    def __init__(self, described: Dict[str, Any]) -> None:
        self.described = described

    def describe(self) -> Dict[str, Any]:
        return self.described


def settled_result(module: AnsibleModule, answer: Dict[str, Any]) -> Dict[str, Any]:
    """Return the state=migrated result of a migrate to the leaves that has nothing to do."""
    document = {"before": answer["apps"], "after": answer["apps"], "plan": [], "drops": [],
                "django_version": answer["django_version"]}
    result = migrated_result(document, CachedRunner(answer["runner"]), None, module.check_mode)
    if not module._diff:
        result.pop("diff")
    return dict(result, source="cache", graph_cache={"used": True})


def graph_cache(module: AnsibleModule, client: DockerClient) -> Optional[GraphCache]:
    """Return the graph cache the options ask for, or None."""
    params = module.params
    if not params["graph_cache"]:
        return None
    database = DatabaseOptions(
        container=params["database_container"], name=params["database_name"], user=params["database_user"]
    )
    return GraphCache(client, params["graph_cache"], database)


if __name__ == "__main__":
    main()
