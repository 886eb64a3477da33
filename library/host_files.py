#!/usr/bin/python
"""Ansible module: bring several directories and files on the host to their content, mode and owner at once."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_files
short_description: Ensure several directories and files (content, mode, owner) in one task
description:
  - Ensures each of O(directories) exists with its mode and owner, then each of O(files) with its
    content, mode and owner, in the order given, in one process on the host. What a role would do
    with one C(ansible.builtin.file) or C(ansible.builtin.copy) task per path, each paying for its own
    module start on the host, costs one start here; a run that changes nothing compares every path
    and writes none.
  - A file whose content differs is written to a temporary file beside it, flushed to disk, given its
    mode and owner, and renamed over the old one; then the directory is flushed. A crash leaves the old
    file or the new one, never a part of either. Files are written in the order given, so a file that
    says "the rest is complete" (a stamp) goes last.
  - A file that is already right is not touched (its modification time stays).
  - Contents are never returned nor shown in a diff (they may be secrets); RV(changes) names each
    path and what was changed.
version_added: "1.0.0"
author:
  - Depotix Ops
options:
  directories:
    description:
      - Directories to ensure, each created with its missing parents (those get mode C(0755), owned by
        root), then given O(directories[].mode) and owner.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      mode:
        description: Mode, as an octal string such as V("0700").
        type: str
        required: true
      owner:
        description: User name or numeric id (an id need not exist on the host, such as a container's user).
        type: str
        default: root
      group:
        description: Group name or numeric id.
        type: str
        default: root
  files:
    description:
      - Files to ensure, in this order. Each has exactly one of O(files[].content) and O(files[].content_base64),
        or O(files[].keep_content=true).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path; its directory must exist (list it in O(directories)).
        type: path
        required: true
      content:
        description: The file's text (written as UTF-8).
        type: str
      content_base64:
        description: The file's bytes, base64-encoded (for binary files such as a zip).
        type: str
      validate:
        description:
          - A command that checks the new content before it replaces the file, with V(%s) where the path of
            the new content's file goes (in the file's directory, with the file's mode and owner), as with
            M(ansible.builtin.template). Runs only when the content changes; when it fails, the file is left
            as it was and the task fails with the command's output.
        type: str
      keep_content:
        description:
          - The file is written by someone else (a log); it is created empty when missing, its content is
            never compared nor replaced, only its mode and owner. Give no content then.
        type: bool
        default: false
      mode:
        description: Mode, as an octal string such as V("0600").
        type: str
        required: true
      owner:
        description: User name or numeric id.
        type: str
        default: root
      group:
        description: Group name or numeric id.
        type: str
        default: root
attributes:
  check_mode:
    support: full
    description: Compares and reports what it would change; writes nothing.
  diff_mode:
    support: none
    description: Contents may be secrets; RV(changes) says which paths change and how.
  platform:
    platforms: posix
notes:
  - Uses only Python's standard library on the host.
  - Give the task C(no_log) when a content is a secret, as for C(ansible.builtin.copy).
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Write the secret files and the env file of the API
  host_files:
    directories:
      - {path: /etc/depotix/secrets, mode: "0711"}
    files:
      - {path: /etc/depotix/secrets/db_password, content: "{{ api_db_password }}", mode: "0400", owner: "10001",
         group: "10001"}
      - {path: /etc/depotix/api.env, content: "DJANGO_SETTINGS_MODULE=depotix_api.settings\n", mode: "0600"}
  no_log: true

- name: Install a zip built on the controller, then the stamp that says the install is complete
  host_files:
    files:
      - {path: /usr/local/lib/depotix/lib.zip, content_base64: "{{ bundle.stdout }}", mode: "0644"}
      - {path: /etc/depotix/installed, content: "{{ fingerprint }}\n", mode: "0644"}
"""

RETURN = r"""
changes:
  description: Each path that was (or in check mode would be) changed, with what changed.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path.
      type: str
    what:
      description: What changed, among V(created), V(content), V(mode), V(owner).
      type: list
      elements: str
  sample: [{"path": "/etc/depotix/api.env", "what": ["content"]}]
checked:
  description: How many paths were compared.
  returned: always
  type: int
  sample: 7
"""

import base64
import grp
import os
import pwd
import shlex
import stat
import tempfile
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from ansible.module_utils.basic import AnsibleModule


class FilesError(Exception):
    """A request that cannot be carried out; the message says which path and why."""


def account_id(name: str, kind: str) -> int:
    """Return the numeric id of a user or group (kind) given by name or number."""
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        raise FilesError("no %s named %r on the host" % (kind, name)) from None


def parse_mode(path: str, mode: str) -> int:
    try:
        value = int(mode, 8)
    except (TypeError, ValueError):
        raise FilesError("%s: mode %r is not an octal mode such as '0600'" % (path, mode)) from None
    if not 0 <= value <= 0o7777:
        raise FilesError("%s: mode %r is out of range" % (path, mode))
    return value


def wanted(entry: Dict[str, Any]) -> Tuple[int, int, int]:
    path = entry["path"]
    if not os.path.isabs(path):
        raise FilesError("%s: the path must be absolute" % path)
    return parse_mode(path, entry["mode"]), account_id(entry["owner"], "user"), account_id(entry["group"], "group")


def attribute_changes(info: os.stat_result, mode: int, uid: int, gid: int) -> List[str]:
    what = []
    if stat.S_IMODE(info.st_mode) != mode:
        what.append("mode")
    if (info.st_uid, info.st_gid) != (uid, gid):
        what.append("owner")
    return what


def fsync_directory(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def ensure_directory(entry: Dict[str, Any], check_mode: bool) -> Optional[Dict[str, Any]]:
    path = entry["path"]
    mode, uid, gid = wanted(entry)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not check_mode:
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            os.mkdir(path, mode)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
        return {"path": path, "what": ["created"]}
    if not stat.S_ISDIR(info.st_mode):
        raise FilesError("%s exists and is not a directory" % path)
    what = attribute_changes(info, mode, uid, gid)
    if what and not check_mode:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return {"path": path, "what": what} if what else None


def content_of(entry: Dict[str, Any]) -> bytes:
    text, encoded = entry.get("content"), entry.get("content_base64")
    if entry.get("keep_content"):
        if text is not None or encoded is not None:
            raise FilesError("%s: keep_content takes no content" % entry["path"])
        return b""
    if (text is None) == (encoded is None):
        raise FilesError("%s: give exactly one of content and content_base64" % entry["path"])
    if text is not None:
        return text.encode("utf-8")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise FilesError("%s: content_base64 is not valid base64" % entry["path"]) from None


def same_content(path: str, content: bytes) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(content) + 1) == content


Validator = Callable[[str], None]


def write_atomically(
    path: str, content: bytes, mode: int, uid: int, gid: int, validate: Optional[Validator] = None
) -> None:
    directory = os.path.dirname(path)
    descriptor, temporary = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chown(temporary, uid, gid)
        os.chmod(temporary, mode)
        if validate is not None:
            validate(temporary)
        os.rename(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    fsync_directory(directory)


def command_validator(module: AnsibleModule, path: str, command: str) -> Validator:
    """Return a check that runs ``command`` with %s replaced by the new content's file; it raises on failure."""
    if "%s" not in command:
        raise FilesError("%s: validate must contain %%s (the new content's file), as in 'haproxy -c -f %%s'" % path)

    def check(temporary: str) -> None:
        rc, out, err = module.run_command(shlex.split(command.replace("%s", shlex.quote(temporary))))
        if rc != 0:
            said = (err or out).strip()[-800:]
            raise FilesError("%s: the new content fails validation (exit %d, %s): %s; the file was left as it was"
                             % (path, rc, command, said))

    return check


def ensure_file(
    entry: Dict[str, Any], check_mode: bool, planned: Set[str], validate: Optional[Validator] = None
) -> Optional[Dict[str, Any]]:
    path = entry["path"]
    mode, uid, gid = wanted(entry)
    content = content_of(entry)
    if check_mode and os.path.dirname(path) in planned:
        return {"path": path, "what": ["created"]}  # its directory is to be created first
    if not os.path.isdir(os.path.dirname(path)):
        raise FilesError("%s: its directory does not exist (list it in directories)" % path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise FilesError("%s exists and is not a regular file" % path)
    if info is None:
        what = ["created"]
    else:
        kept = entry.get("keep_content") or same_content(path, content)
        what = ([] if kept else ["content"]) + attribute_changes(info, mode, uid, gid)
    if not what or check_mode:
        return {"path": path, "what": what} if what else None
    if "created" in what or "content" in what:
        write_atomically(path, content, mode, uid, gid, validate)
    else:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return {"path": path, "what": what}


def main() -> None:
    attributes = dict(
        path=dict(type="path", required=True),
        mode=dict(type="str", required=True),
        owner=dict(type="str", default="root"),
        group=dict(type="str", default="root"),
    )
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(type="list", elements="dict", default=[], options=attributes),
            files=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    attributes,
                    content=dict(type="str", no_log=True),
                    content_base64=dict(type="str", no_log=True),
                    keep_content=dict(type="bool", default=False),
                    validate=dict(type="str"),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    changes: List[Dict[str, Any]] = []
    directories, files = module.params["directories"], module.params["files"]
    entries = len(directories) + len(files)
    try:
        validators = {}
        for entry in files:
            content_of(entry)  # every content and check is well-formed before anything is written
            if entry["validate"]:
                validators[entry["path"]] = command_validator(module, entry["path"], entry["validate"])
        for entry in directories:
            change = ensure_directory(entry, module.check_mode)
            if change:
                changes.append(change)
        created = set()  # directories created, with the parents created for them
        for change in changes:
            if "created" in change["what"]:
                path = change["path"]
                while path != os.path.dirname(path) and not os.path.isdir(path):
                    created.add(path)
                    path = os.path.dirname(path)
                created.add(change["path"])
        for entry in files:
            change = ensure_file(entry, module.check_mode, created, validators.get(entry["path"]))
            if change:
                changes.append(change)
    except (FilesError, OSError) as error:
        module.fail_json(
            msg="%s. Paths changed before this one: %s." % (error, ", ".join(c["path"] for c in changes) or "none"),
            changes=changes,
            checked=entries,
        )
    module.exit_json(changed=bool(changes), changes=changes, checked=entries)


if __name__ == "__main__":
    main()
