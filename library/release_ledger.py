#!/usr/bin/python
"""Ansible module: read and append to the release ledger of a Depotix host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_ledger
short_description: Read and record the releases deployed on a host (a JSON ledger)
description:
  - The ledger is a JSON file on the host holding an object with an C(entries) list, one
    entry per deploy, rollback or failed attempt, oldest first.
  - O(state=read) returns the entries and, from them, the current release and the previous
    good one. A successful deploy pushes its release; a rollback to a release pops back to it.
    So after 1.0, 2.0, 2.1 and a rollback to 2.0, the current release is 2.0 and the previous
    good one is 1.0, never 2.1.
  - O(state=recorded) appends one entry, written atomically (temporary file, then rename).
    With O(skip_if_current=true) nothing is written when the entry would only repeat the
    current release with the same image (a second site.yml run records nothing).
version_added: "1.0.0"
options:
  path:
    description:
      - Path of the ledger file on the host. A missing file is an empty ledger (nothing deployed yet);
        a file that is not a ledger fails the task rather than being overwritten.
    type: path
    required: true
  state:
    description: V(read) the ledger or append an entry (V(recorded)).
    type: str
    choices: [read, recorded]
    default: read
  release:
    description: Release id of the entry. Required with O(state=recorded).
    type: str
  image:
    description: Image reference of the release (C(repository:tag)).
    type: str
  image_id:
    description: Image id (C(sha256:...)) of the release.
    type: str
  leaves:
    description: Leaf migrations of every app at this release, a list of names per app label.
    type: dict
    default: {}
  action:
    description: What produced the entry.
    type: str
    choices: [deploy, rollback, restore, site]
    default: deploy
  outcome:
    description: V(ok) for a release now running; V(failed) for a deploy that was undone.
    type: str
    choices: [ok, failed]
    default: ok
  note:
    description: Free text, such as what failed.
    type: str
    default: ""
  skip_if_current:
    description: Record nothing when the current release already has this O(release) and O(image_id).
    type: bool
    default: false
  mode:
    description: File mode of the ledger.
    type: str
    default: "0640"
  in_progress:
    description:
      - With O(state=read), also read the record that a change in progress keeps on the host (a JSON
        object, such as rollback.yml's record of an interrupted scenario 2), in the same task.
      - A missing file is no change in progress (RV(in_progress) null); a file that cannot be read or is
        not a JSON object is reported in RV(in_progress_error), for the play to decide.
    type: path
author:
  - Depotix Ops
"""

EXAMPLES = r"""
- name: Read the ledger
  release_ledger:
    path: /home/deploy/Depotix/releases.json
  register: ledger

- name: Record the release that just passed its health gate
  release_ledger:
    path: /home/deploy/Depotix/releases.json
    state: recorded
    release: "2.0"
    image: server-api:2.0
    image_id: sha256:0123abcd
    leaves: {inventory: [0008_add_idempotency_and_constraints]}
"""

RETURN = r"""
entries:
  description: Every entry of the ledger (after recording, with the new one).
  returned: always
  type: list
  elements: dict
current:
  description: The entry of the release running now, or null on a fresh host.
  returned: always
  type: dict
  sample: {release: "2.0", image: server-api:2.0, leaves: {inventory: [0008_add_idempotency_and_constraints]},
           outcome: ok, action: deploy, time: "2026-01-01T02:00:00+00:00"}
previous:
  description: The entry of the previous good release (the one a rollback goes back to), or null.
  returned: always
  type: dict
history:
  description: Releases from the oldest still in force to the current one.
  returned: always
  type: list
  elements: str
  sample: ["1.0", "2.0"]
in_progress:
  description: The record O(in_progress) names, or null when there is none (or it cannot be read).
  returned: with O(in_progress)
  type: dict
  sample: {from_release: "2.1", to_release: "2.0", from_image: server-api:2.1, started: "2026-01-01T02:00:00Z"}
in_progress_error:
  description: Why the record O(in_progress) names cannot be read, or null.
  returned: with O(in_progress)
  type: str
"""

import json
from typing import Any, Dict, Optional, Tuple

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.release_ledger import (
    LedgerError,
    ledger_summary,
    load_entries,
    new_entry,
    repeats_current,
    write_entries,
)

ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = dict(
    path=dict(type="path", required=True),
    state=dict(type="str", choices=["read", "recorded"], default="read"),
    release=dict(type="str"),
    image=dict(type="str"),
    image_id=dict(type="str"),
    leaves=dict(type="dict", default={}),
    action=dict(type="str", choices=["deploy", "rollback", "restore", "site"], default="deploy"),
    outcome=dict(type="str", choices=["ok", "failed"], default="ok"),
    note=dict(type="str", default=""),
    skip_if_current=dict(type="bool", default=False),
    mode=dict(type="str", default="0640"),
    in_progress=dict(type="path"),
)


def read_in_progress(path: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """Return the record of a change in progress (None when there is none) and why it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as error:
        return None, "%s: %s" % (path, getattr(error, "strerror", None) or error)
    if not isinstance(record, dict):
        return None, "%s: not a JSON object" % path
    return record, None


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[("state", "recorded", ["release"])],
        supports_check_mode=True,
    )
    params = module.params
    try:
        entries = load_entries(params["path"])
    except LedgerError as error:
        module.fail_json(msg="%s: restore it from a backup or move it aside (a fresh ledger starts empty)." % error)
    if params["state"] == "read":
        extra: Dict[str, Any] = {}
        if params["in_progress"]:
            extra["in_progress"], extra["in_progress_error"] = read_in_progress(params["in_progress"])
        module.exit_json(changed=False, **ledger_summary(entries), **extra)

    entry = new_entry(
        release=params["release"],
        image=params["image"],
        image_id=params["image_id"],
        leaves=params["leaves"],
        action=params["action"],
        outcome=params["outcome"],
        note=params["note"],
    )
    if params["skip_if_current"] and repeats_current(entries, entry):
        module.exit_json(changed=False, **ledger_summary(entries))

    entries = [*entries, entry]
    if not module.check_mode:
        try:
            write_entries(params["path"], entries, params["mode"])
        except OSError as error:
            module.fail_json(
                msg="cannot write %s: %s: check that its directory exists and is writable."
                % (params["path"], error.strerror or error)
            )
    module.exit_json(changed=True, entry=entry, **ledger_summary(entries))


if __name__ == "__main__":
    main()
