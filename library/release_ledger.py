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
    description: Path of the ledger file on the host.
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
    choices: [deploy, rollback, site]
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
"""

import datetime as dt
import json
import os
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule


def load_entries(path: str) -> list[dict[str, Any]]:
    """Return the ledger's entries; a missing file is an empty ledger."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return []
    entries = data.get("entries", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ValueError("the file holds no list of entries")
    return entries


def release_stack(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the good entries in force, oldest first: deploys push, rollbacks pop back."""
    stack: list[dict[str, Any]] = []
    for entry in entries:
        if entry.get("outcome") != "ok":
            continue
        if entry.get("action") == "rollback":
            while stack and stack[-1].get("release") != entry.get("release"):
                stack.pop()
            if stack:
                stack[-1] = entry
                continue
        if stack and stack[-1].get("release") == entry.get("release"):
            stack[-1] = entry
        else:
            stack.append(entry)
    return stack


def summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Return entries, current, previous and history of a ledger."""
    stack = release_stack(entries)
    return {
        "entries": entries,
        "current": stack[-1] if stack else None,
        "previous": stack[-2] if len(stack) > 1 else None,
        "history": [e.get("release") for e in stack],
    }


def write_entries(path: str, entries: list[dict[str, Any]], mode: str) -> None:
    """Write the ledger atomically: a reader never sees half a file."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".releases.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"entries": entries}, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, int(mode, 8))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def new_entry(params: dict[str, Any]) -> dict[str, Any]:
    """Return the entry O(state=recorded) appends."""
    return {
        "release": params["release"],
        "image": params["image"],
        "image_id": params["image_id"],
        "leaves": params["leaves"],
        "action": params["action"],
        "outcome": params["outcome"],
        "note": params["note"],
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["read", "recorded"], "default": "read"},
            "release": {"type": "str"},
            "image": {"type": "str"},
            "image_id": {"type": "str"},
            "leaves": {"type": "dict", "default": {}},
            "action": {"type": "str", "choices": ["deploy", "rollback", "site"], "default": "deploy"},
            "outcome": {"type": "str", "choices": ["ok", "failed"], "default": "ok"},
            "note": {"type": "str", "default": ""},
            "skip_if_current": {"type": "bool", "default": False},
            "mode": {"type": "str", "default": "0640"},
        },
        required_if=[("state", "recorded", ["release"])],
        supports_check_mode=True,
    )
    params = module.params
    try:
        entries = load_entries(params["path"])
    except (ValueError, json.JSONDecodeError) as exc:
        module.fail_json(
            msg=f"{params['path']} is not a release ledger ({exc}): restore it from a backup "
            "or move it aside (a fresh ledger starts empty)."
        )
    if params["state"] == "read":
        module.exit_json(changed=False, **summary(entries))

    current = summary(entries)["current"]
    if (
        params["skip_if_current"]
        and current
        and params["outcome"] == "ok"
        and current.get("release") == params["release"]
        and current.get("image_id") == params["image_id"]
    ):
        module.exit_json(changed=False, **summary(entries))

    entry = new_entry(params)
    entries = [*entries, entry]
    if not module.check_mode:
        try:
            write_entries(params["path"], entries, params["mode"])
        except OSError as exc:
            module.fail_json(msg=f"cannot write {params['path']}: {exc.strerror}: check the project directory.")
    module.exit_json(changed=True, entry=entry, **summary(entries))


if __name__ == "__main__":
    main()
