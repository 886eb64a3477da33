"""Action plugin host_lock: the controller's half of the host lock (the module library/host_lock.py is the host's).

On the controller it knows what the host cannot: which run this is (the ansible-playbook
process, its start time, the user and machine), and whether the run holding a lock is
still going. It fills the module's ``run_id`` and ``holder``, runs it, and when another
run holds the lock it fails with a message naming that run, and saying whether it still
runs (wait), is gone (a killed run: rerun with -e break_lock=true), or cannot be checked
from here (another controller). With ``break_lock`` it breaks the lock of a run that is
gone or cannot be checked, never of a run seen still going on this controller.

A run is identified by its ansible-playbook process: the worker that runs this plugin is
its child, so every task of one run (every play, every imported playbook) has the same
run id, and a later run can look that process up by pid and start time.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import subprocess
from typing import Any, Dict, Optional

from ansible.plugins.action import ActionBase

RUNNING, GONE, UNKNOWN = "running", "gone", "unknown"


def process_start(pid: int) -> Optional[str]:
    """Return when process ``pid`` started (boot id and clock ticks on Linux), or None when there is none."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):
            return None  # killed, not yet reaped: its run is gone
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
        return "%s:%s" % (boot[:8], fields[19])
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None
    except (OSError, IndexError):
        return None
    # No /proc (macOS, BSD): ps gives the start time.
    done = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


def this_run(pid: Optional[int] = None) -> Dict[str, Any]:
    """Return who and what this run is: user@machine, the ansible-playbook pid, its start, and the run id."""
    pid = os.getppid() if pid is None else pid
    controller = socket.gethostname()
    who = "%s@%s" % (getpass.getuser(), controller)
    start = process_start(pid) or "unknown"
    return {
        "who": who,
        "controller": controller,
        "pid": pid,
        "pid_start": start,
        "run_id": "%s/%d/%s" % (who, pid, start),
    }


def holder_state(holder: Dict[str, Any], me: Dict[str, Any]) -> str:
    """Return whether the run holding a lock is RUNNING, GONE, or UNKNOWN (not checkable from this controller)."""
    if holder.get("unreadable") or holder.get("controller") != me["controller"] or not holder.get("pid"):
        return UNKNOWN
    start = process_start(int(holder["pid"]))
    return RUNNING if start is not None and start == holder.get("pid_start") else GONE


def describe(holder: Dict[str, Any]) -> str:
    """Return the holder of a lock as a phrase: who, which playbook with which arguments, since when, which run."""
    if holder.get("unreadable"):
        return "an unreadable lock (%s)" % holder["unreadable"]
    arguments = " ".join("%s=%s" % item for item in sorted((holder.get("arguments") or {}).items()))
    return "%s running %s%s since %s (run %s, ansible-playbook pid %s on %s)" % (
        holder.get("who", "someone"),
        holder.get("playbook", "a playbook"),
        " " + arguments if arguments else "",
        holder.get("since", "an unknown time"),
        holder.get("run_id"),
        holder.get("pid", "?"),
        holder.get("controller", "an unknown controller"),
    )


def refusal(host: str, holder: Dict[str, Any], state: str, break_lock: bool) -> str:
    """Return why the lock is not taken and what the operator does next."""
    locked = "%s is locked by %s" % (host, describe(holder))
    if state == RUNNING:
        tail = " break_lock does not break the lock of a run that is still going." if break_lock else ""
        return "%s, which is still running. Wait for it to end, then run again.%s Nothing was changed." % (
            locked,
            tail,
        )
    if state == GONE:
        return (
            "%s; that process no longer runs on this controller, so the lock looks stale (a killed run "
            "leaves it). Check that nothing else is changing %s, then rerun with -e break_lock=true. "
            "Nothing was changed." % (locked, host)
        )
    return (
        "%s. That run cannot be checked from this controller: wait for it to end or, if it is gone, "
        "rerun with -e break_lock=true. Nothing was changed." % locked
    )


class ActionModule(ActionBase):
    """Take or give back the host's run lock on behalf of this ansible-playbook run."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "state", "playbook", "arguments", "break_lock"))

    def run(self, tmp: Any = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        me = this_run()
        state = args.get("state", "acquired")
        module_args: Dict[str, Any] = {"path": args["path"], "state": state, "run_id": me["run_id"]}
        if state == "acquired":
            module_args["holder"] = {
                "who": me["who"],
                "controller": me["controller"],
                "pid": me["pid"],
                "pid_start": me["pid_start"],
                "playbook": args.get("playbook", ""),
                "arguments": args.get("arguments") or {},
                "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            }
        done = self._execute_module("host_lock", module_args=module_args, task_vars=task_vars)
        held = done.get("holder") if done.get("failed") and state == "acquired" else None
        if held:
            break_lock = self._bool(args.get("break_lock", False))
            verdict = holder_state(held, me)
            if break_lock and verdict != RUNNING:
                done = self._execute_module(
                    "host_lock", module_args=dict(module_args, break_run=held["run_id"]), task_vars=task_vars
                )
                if not done.get("failed"):
                    broke = "Broke the lock of %s (-e break_lock=true)." % describe(held)
                    if self._task.check_mode:
                        broke = "Would break the lock of %s (-e break_lock=true); check mode wrote nothing." % (
                            describe(held)
                        )
                    done.setdefault("warnings", []).append(broke)
            else:
                done["msg"] = refusal(task_vars.get("inventory_hostname", "the host"), held, verdict, break_lock)
                done["holder_state"] = verdict
        result.update(done)
        result["run_id"] = me["run_id"]
        return result

    @staticmethod
    def _bool(value: Any) -> bool:
        from ansible.module_utils.parsing.convert_bool import boolean

        return boolean(value, strict=False)
