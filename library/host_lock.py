#!/usr/bin/python
"""Ansible module: take and give back the lock that lets one run at a time change a Depotix host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_lock
short_description: Take or give back a Depotix host's run lock (one change at a time)
description:
  - The lock is a JSON file on the host naming the run that holds it (O(run_id)) and what O(holder) says
    about it - who started it, the playbook, the arguments that matter, since when, and the controller and
    ansible-playbook process it runs in.
  - O(state=acquired) creates the file atomically - written to a temporary file, then linked to O(path),
    which fails when a lock already exists - so two runs can never both take it. A lock held by the same
    O(run_id) is kept as it is. A lock held by another run fails the task, naming the holder (RV(holder));
    only when O(break_run) names that very run is its lock replaced by this one (RV(broken)).
  - O(state=released) removes the lock if O(run_id) holds it, and leaves any other run's lock alone.
  - Use it through the C(host_lock) role, whose action plugin of the same name fills O(run_id) and O(holder)
    on the controller, and tells a holder whose run is still going from one whose run is gone.
  - In check mode nothing is written; a lock held by another run still fails the task.
version_added: "1.0.0"
author:
  - Depotix Ops
options:
  path:
    description:
      - The lock file on the host. Its directory is created (mode 0755) when missing.
    type: path
    required: true
  state:
    description: V(acquired) takes the lock, V(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  run_id:
    description: Identifies the run taking or giving back the lock; the same for every task of one run.
    type: str
    required: true
  holder:
    description:
      - What the lock records about the run, besides O(run_id) - for example C(who), C(playbook),
        C(arguments), C(since), C(controller), C(pid). With O(state=acquired).
    type: dict
    default: {}
  break_run:
    description:
      - The O(run_id) of a lock to break - replace by this run's - because that run is gone. Any other
        holder still fails the task, so a lock taken in the meantime by a third run is never broken.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
    description: Reads the lock and says what would happen; writes nothing.
  platform:
    platforms: posix
    description: Needs C(flock) and hard links in the lock's directory (any local Linux file system).
"""

EXAMPLES = r"""
- name: Take the host's run lock
  host_lock:
    path: /var/lib/depotix/run.lock
    run_id: "deploy@ops1/4242/1732950000"
    holder:
      who: deploy@ops1
      playbook: deploy.yml
      arguments: {api_release: "2.0"}
      since: "2026-01-01T02:00:00+00:00"

- name: Give it back
  host_lock:
    path: /var/lib/depotix/run.lock
    state: released
    run_id: "deploy@ops1/4242/1732950000"
"""

RETURN = r"""
acquired:
  description: With O(state=acquired), whether this run holds the lock now (would hold it, in check mode).
  returned: always
  type: bool
released:
  description: With O(state=released), whether the lock of this run was removed.
  returned: always
  type: bool
holder:
  description: The record in the lock file after the task - this run's, another run's (on failure), or null.
  returned: always
  type: dict
  sample: {run_id: "deploy@ops1/4242/1732950000", who: deploy@ops1, playbook: deploy.yml,
           arguments: {api_release: "2.0"}, since: "2026-01-01T02:00:00+00:00"}
broken:
  description: The record of the lock that O(break_run) replaced, or null.
  returned: always
  type: dict
"""

import os
from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.host_lock import LockHeld, acquire, release

ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["acquired", "released"], default="acquired"),
    run_id=dict(type="str", required=True),
    holder=dict(type="dict", default={}),
    break_run=dict(type="str", default=""),
)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    path = params["path"]
    try:
        if params["state"] == "released":
            result = release(path, params["run_id"], module.check_mode)
            module.exit_json(acquired=False, broken=None, **result)
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory) and not module.check_mode:
            os.makedirs(directory, mode=0o755)
        if not os.path.isdir(directory):
            # Check mode on a fresh host: no lock can exist yet.
            module.exit_json(changed=True, acquired=True, released=False, holder=None, broken=None)
        holder = dict(params["holder"], run_id=params["run_id"])
        result = acquire(path, holder, params["break_run"], module.check_mode)
    except LockHeld as held:
        module.fail_json(
            msg="%s is held by run %s; nothing was changed." % (path, held.holder.get("run_id")),
            acquired=False,
            released=False,
            holder=held.holder,
            broken=None,
        )
    except OSError as error:
        module.fail_json(msg="cannot use the lock %s: %s" % (path, error))
    module.exit_json(released=False, **result)


if __name__ == "__main__":
    main()
