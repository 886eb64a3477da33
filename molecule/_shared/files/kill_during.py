#!/usr/bin/env python3
"""Run a command, and kill it (SIGKILL, its whole process group) once a line matches, with the remote work.

    kill_during.py --log FILE --at REGEX [--delay S] [--timeout S]
                   [--server NAME (--remote-process REGEX [--remote-in CONTAINER] | --remote-container REGEX)]
                   -- COMMAND...

What an operator's dropped connection or a Ctrl-\\ does to ansible-playbook, at a task
the test chooses, and what a crash of the host's side does to the work that task started
there. The command's output goes to FILE as it comes; when a line matches REGEX (e.g.
the TASK banner of the step to interrupt), it waits --delay seconds. Without --server it
then kills the command's process group and appends a "kill_during: killed ..." line.

With --server (the lab server: a container with its own Docker engine), it then watches
the server for the remote work: processes whose command line matches --remote-process,
on the server itself or inside the inner container --remote-in; or a running one-off
container whose name matches --remote-container. As soon as it runs, the work is frozen
(SIGSTOP: it cannot finish between the look and the kill), the command's process group
is killed (so nothing on the controller reacts), then the remote work is killed (SIGKILL,
the processes that have no child among them first, so that each is reaped by its own
parent and never orphaned to a container's init: in the database container that is the
postmaster, which takes a killed child for a crashed backend; a one-off container with
docker kill), and it waits until the work is gone. The facts go to FILE:

    kill_during: remote work <what> pid <pids> running at kill; gone after <s> s
    kill_during: remote facts {json}

Exit status: 0 when the command (and the remote work, when named) was killed as asked;
1 when the command ended (or timed out) before the line appeared, when the remote work
was never seen running, or when it was not gone after the kill: the test did not
interrupt what it claims and must fail.

The same file is the helper that runs inside the server (`kill_during.py remote ...`,
sent as `python3 -c`): it speaks one JSON line per event on stdout, and kills when it
reads "kill" on stdin (on end of input it lets frozen work go on).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# A task banner in ansible-playbook's output (a handler's too): after the chosen one, the task has ended.
TASK_BANNER = re.compile(r"^(TASK|RUNNING HANDLER) \[")
# Seconds between two looks for the remote work, and the most one kill waits for the work to be gone.
POLL_SECONDS = 0.02
CONTAINER_POLL_SECONDS = 0.1
GONE_TIMEOUT = 60.0


# ---------------------------------------------------------------------------- inside the server


@dataclass(frozen=True)
class Proc:
    """One process as /proc shows it; (pid, start) tells it from a later process given the same pid."""

    pid: int
    ppid: int
    start: int
    state: str
    args: str


def read_proc(pid: int) -> Proc | None:
    """Return the process `pid`, or None when there is none (any more)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: the fields follow the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    args = cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return Proc(pid=pid, ppid=int(fields[1]), start=int(fields[19]), state=fields[0], args=args)


def pid_namespace(pid: int) -> str | None:
    """Return the PID namespace of a process (None when it is gone): a container's processes share one."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def current(proc: Proc) -> Proc | None:
    """Return what /proc says now of this very process (None once it is reaped or its pid reused)."""
    now = read_proc(proc.pid)
    return now if now is not None and now.start == proc.start else None


def running(proc: Proc) -> bool:
    """True while the process lives (a zombie is dead: it only waits for its parent to reap it)."""
    now = current(proc)
    return now is not None and now.state not in ("Z", "X")


def matching(pattern: re.Pattern[str], namespace: str | None) -> list[Proc]:
    """Return the live processes of a PID namespace whose command line matches (this helper excepted)."""
    found = []
    own = {os.getpid(), os.getppid()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in own:
            continue
        proc = read_proc(int(entry))
        if proc is None or not proc.args or proc.state in ("Z", "X") or not pattern.search(proc.args):
            continue
        if pid_namespace(proc.pid) == namespace:
            found.append(proc)
    return sorted(found, key=lambda p: p.pid)


def send(procs: list[Proc], signum: int) -> list[Proc]:
    """Send a signal to each process that still lives; return those it reached."""
    reached = []
    for proc in procs:
        if not running(proc):
            continue
        try:
            os.kill(proc.pid, signum)
        except ProcessLookupError:
            continue
        reached.append(proc)
    return reached


def freeze_matching(pattern: re.Pattern[str], namespace: str | None) -> list[Proc]:
    """Stop (SIGSTOP) every matching process, again until no new one appears (a parent may fork meanwhile)."""
    frozen: dict[int, Proc] = {}
    for _ in range(20):
        new = [p for p in matching(pattern, namespace) if p.pid not in frozen]
        if not new:
            break
        for proc in send(new, signal.SIGSTOP):
            frozen[proc.pid] = proc
    return sorted(frozen.values(), key=lambda p: p.pid)


def wait_until(condition, timeout: float) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def kill_leaves_first(procs: list[Proc], timeout: float = GONE_TIMEOUT) -> list[int]:
    """SIGKILL the processes, those without a child among them first; return the pids the kill reached.

    Each round kills the leaves, lets the rest run again (SIGCONT) so that a parent can
    reap its children, and waits until the killed ones are reaped before the next round:
    no killed process is ever orphaned, so none is reaped by a container's init.
    """
    killed: list[int] = []
    remaining = [p for p in procs if running(p)]
    while remaining:
        parents = {p.ppid for p in remaining}
        leaves = [p for p in remaining if p.pid not in parents]
        others = [p for p in remaining if p.pid in parents]
        killed += [p.pid for p in send(leaves, signal.SIGKILL)]
        send(others, signal.SIGCONT)
        wait_until(lambda: all(current(p) is None for p in leaves), timeout)
        remaining = [p for p in others if running(p)]
    return killed


def docker_out(docker: str, *args: str) -> str:
    """Return the output of a docker CLI command ('' when it fails)."""
    result = subprocess.run([docker, *args], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def container_pid(docker: str, container: str) -> int:
    """Return the PID (in this namespace) of a running container's first process, 0 when it does not run."""
    out = docker_out(docker, "inspect", "--type", "container", "--format", "{{.State.Running}} {{.State.Pid}}",
                     container)
    running_flag, _, pid = out.partition(" ")
    return int(pid) if running_flag == "true" and pid.isdigit() else 0


def running_containers(docker: str, pattern: re.Pattern[str]) -> list[str]:
    """Return the names of the running containers that match."""
    names = docker_out(docker, "ps", "--filter", "status=running", "--format", "{{.Names}}").splitlines()
    return sorted(name for name in names if pattern.search(name))


def emit(event: dict) -> None:
    print(json.dumps(event, sort_keys=True), flush=True)


class ProcessWork:
    """Processes that match a pattern, on the server itself or in one of its inner containers."""

    def __init__(self, docker: str, pattern: str, container: str | None) -> None:
        self.docker, self.pattern, self.container = docker, re.compile(pattern), container
        self.what = f"/{pattern}/ " + (f"in container {container}" if container else "on the server")
        self.frozen: list[Proc] = []
        self.pid_namespace: str | None = None

    def namespace(self) -> str | None:
        """Return the PID namespace to search (looked up once: a container's namespace lives as long as it)."""
        if self.pid_namespace is None:
            pid = container_pid(self.docker, self.container) if self.container else os.getpid()
            self.pid_namespace = pid_namespace(pid) if pid else None
        return self.pid_namespace

    def freeze(self) -> dict | None:
        namespace = self.namespace()
        if namespace is None:
            return None
        self.frozen = freeze_matching(self.pattern, namespace)
        if not self.frozen:
            return None
        return {"what": self.what, "pids": [p.pid for p in self.frozen], "args": [p.args[:200] for p in self.frozen]}

    def release(self) -> None:
        send(self.frozen, signal.SIGCONT)

    def kill(self) -> dict:
        # Anything the frozen processes started in the instant before the freeze is killed with them.
        namespace = self.namespace()
        later = [p for p in matching(self.pattern, namespace) if p.pid not in {f.pid for f in self.frozen}] \
            if namespace else []
        targets = self.frozen + later
        killed = kill_leaves_first(targets)
        gone = wait_until(lambda: not any(running(p) for p in targets), GONE_TIMEOUT)
        left = [p.pid for p in targets if running(p)]
        return {"killed": killed, "gone": gone and not left, "left": left}


class ContainerWork:
    """A one-off container (docker run --rm) whose name matches a pattern: frozen, then docker kill."""

    def __init__(self, docker: str, pattern: str) -> None:
        self.docker, self.pattern = docker, re.compile(pattern)
        self.what = f"one-off container /{pattern}/"
        self.name = ""

    def freeze(self) -> dict | None:
        for name in running_containers(self.docker, self.pattern):
            pid = container_pid(self.docker, name)
            # Its first process, stopped from the server's side: SIGSTOP reaches even a namespace's init.
            if pid and subprocess.run([self.docker, "kill", "--signal", "SIGSTOP", name], capture_output=True,
                                      check=False).returncode == 0:
                self.name = name
                proc = read_proc(pid)
                return {"what": f"one-off container {name}", "container": name, "pids": [pid],
                        "args": [proc.args[:200]] if proc else []}
        return None

    def release(self) -> None:
        if self.name:
            subprocess.run([self.docker, "kill", "--signal", "SIGCONT", self.name], capture_output=True, check=False)

    def kill(self) -> dict:
        done = subprocess.run([self.docker, "kill", self.name], capture_output=True, text=True, check=False)
        gone = wait_until(lambda: not container_pid(self.docker, self.name), GONE_TIMEOUT)
        return {"killed": [self.name] if done.returncode == 0 else [], "gone": gone,
                "left": [] if gone else [self.name], "kill_error": done.stderr.strip()[:200]}


def remote_main(argv: list[str]) -> int:
    """The helper inside the server: wait for the work, freeze it, report; kill it on "kill", report."""
    parser = argparse.ArgumentParser(prog="kill_during.py remote")
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--process", help="regular expression of the work's command line")
    parser.add_argument("--in", dest="container", help="inner container the process runs in (default: the server)")
    parser.add_argument("--container", dest="one_off", help="regular expression of a one-off container's name")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if bool(args.process) == bool(args.one_off):
        parser.error("give one of --process or --container")
    work = ProcessWork(args.docker, args.process, args.container) if args.process \
        else ContainerWork(args.docker, args.one_off)
    deadline = time.monotonic() + args.timeout
    interval = POLL_SECONDS if args.process else CONTAINER_POLL_SECONDS
    controller = selectors.DefaultSelector()
    controller.register(sys.stdin, selectors.EVENT_READ)
    while (seen := work.freeze()) is None:
        if time.monotonic() >= deadline:
            emit({"missing": work.what, "seconds": args.timeout})
            return 1
        # Wait, but end at once when the controller goes (its end of stdin closes): nothing is left watching.
        if controller.select(interval) and not sys.stdin.readline():
            emit({"abandoned": work.what})
            return 1
    emit({"running": seen})
    if sys.stdin.readline().strip() != "kill":
        work.release()
        emit({"released": work.what})
        return 1
    started = time.monotonic()
    result = work.kill()
    emit({"killed": dict(result, gone_after=round(time.monotonic() - started, 2))})
    return 0 if result["gone"] else 1


# ---------------------------------------------------------------------------- on the controller


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--log", required=True, help="file that receives the command's output")
    parser.add_argument("--at", required=True, help="regular expression of the line to kill at")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds between the line and the kill (with --server: and the look for the work)")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up (and fail) after this many seconds")
    parser.add_argument("--server", help="the lab server (container) the remote work runs on")
    parser.add_argument("--remote-process", help="regular expression of the remote work's command line")
    parser.add_argument("--remote-in", help="inner container of the server the process runs in (default: the server)")
    parser.add_argument("--remote-container", help="regular expression of the name of a one-off inner container")
    parser.add_argument("--docker", default="docker", help="the docker CLI (on the controller and on the server)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given after --")
    remote = [args.remote_process, args.remote_container]
    if args.server and sum(bool(r) for r in remote) != 1:
        parser.error("--server needs one of --remote-process or --remote-container")
    if not args.server and (any(remote) or args.remote_in):
        parser.error("--remote-process, --remote-in and --remote-container need --server")
    return args


def helper_argv(args: argparse.Namespace) -> list[str]:
    """Return the command that runs this file's `remote` helper inside the server (docker exec)."""
    source = Path(__file__).read_text(encoding="utf-8")
    remote = ["--docker", args.docker, "--timeout", f"{max(1.0, args.timeout):g}"]
    if args.remote_process:
        remote += ["--process", args.remote_process] + (["--in", args.remote_in] if args.remote_in else [])
    else:
        remote += ["--container", args.remote_container]
    return [args.docker, "exec", "-i", args.server, "python3", "-c", source, "remote", *remote]


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class Lines:
    """Whole lines from a pipe, read with os.read so that a select never blocks on a partial line."""

    def __init__(self, stream) -> None:
        self.fd, self.buffer, self.closed = stream.fileno(), b"", False

    def read(self) -> list[str]:
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.closed = True
            lines, self.buffer = ([self.buffer] if self.buffer else []), b""
        else:
            *lines, self.buffer = (self.buffer + chunk).split(b"\n")
            lines = [line + b"\n" for line in lines]
        return [line.decode("utf-8", "replace") for line in lines]


class KillDuring:
    """The run, the line it waits for, and (with --server) the helper that watches the remote work."""

    def __init__(self, args: argparse.Namespace, log) -> None:
        self.args, self.log = args, log
        self.pattern = re.compile(args.at)
        self.deadline = time.monotonic() + args.timeout
        self.selector = selectors.DefaultSelector()
        self.run = subprocess.Popen(args.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.selector.register(self.run.stdout, selectors.EVENT_READ, Lines(self.run.stdout))
        self.helper: subprocess.Popen | None = None
        self.kill_at: float | None = None
        self.matched = ""
        self.moved_on = ""  # the first task banner after the matched one: the chosen task has ended

    def note(self, text: str, to_stderr: bool = False, first: bool = True) -> None:
        """Append a kill_during line to the log (the first after the run's output on a line of its own)."""
        self.log.write(("\n" if first else "") + f"kill_during: {text}\n")
        self.log.flush()
        print(text, file=sys.stderr if to_stderr else sys.stdout)

    def kill_run(self) -> None:
        kill_group(self.run)
        self.note(f"killed the run {self.args.delay:g}s after: {self.matched}")

    def stop_helper(self) -> None:
        if self.helper is not None and self.helper.poll() is None:
            assert self.helper.stdin is not None
            try:
                self.helper.stdin.close()  # the helper lets frozen work go on, and ends
                self.helper.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.helper.kill()
                self.helper.wait()

    def fail(self, text: str) -> int:
        if self.run.poll() is None:
            kill_group(self.run)
        self.stop_helper()
        self.note(text, to_stderr=True)
        return 1

    def start_helper(self) -> None:
        # Its errors (a docker exec that fails, a traceback on the server) go to the log, to say why.
        self.log.flush()
        self.helper = subprocess.Popen(helper_argv(self.args), stdout=subprocess.PIPE, stdin=subprocess.PIPE,
                                       stderr=self.log)
        self.selector.register(self.helper.stdout, selectors.EVENT_READ, Lines(self.helper.stdout))

    def on_run_line(self, text: str) -> None:
        self.log.write(text)
        self.log.flush()
        if self.kill_at is None and self.pattern.search(text):
            self.matched = text.strip()
            self.kill_at = time.monotonic() + self.args.delay
        elif self.kill_at is not None and not self.moved_on and TASK_BANNER.match(text):
            self.moved_on = text.strip()

    def on_helper_event(self, event: dict) -> int:
        """Kill the run, then the remote work the helper froze; return the exit status."""
        if "running" not in event:
            return self.fail(f"the remote work {event.get('missing', '?')} was never seen running: "
                             "the run was not interrupted where the test claims")
        if self.moved_on:
            # Work seen after the run left the chosen task is not that task's: nothing was interrupted there.
            return self.fail(f"the run had left the chosen task ({self.moved_on}) before the remote work was "
                             "seen running: the run was not interrupted where the test claims")
        seen = event["running"]
        self.kill_run()
        assert self.helper is not None and self.helper.stdin is not None and self.helper.stdout is not None
        self.helper.stdin.write(b"kill\n")
        self.helper.stdin.flush()
        reader = Lines(self.helper.stdout)
        report: dict = {}
        while not report and not reader.closed:
            for line in reader.read():
                if line.strip():
                    report = json.loads(line).get("killed", {})
        self.helper.wait()
        facts = {"what": seen["what"], "pids": seen["pids"], "args": seen["args"], "running_at_kill": True,
                 "killed": report.get("killed", []), "gone": bool(report.get("gone")),
                 "gone_after": report.get("gone_after"), "left": report.get("left", [])}
        pids = ",".join(str(pid) for pid in seen["pids"])
        gone = f"gone after {facts['gone_after']} s" if facts["gone"] else f"NOT gone: {facts['left']}"
        self.note(f"remote work {seen['what']} pid {pids} running at kill; {gone}", first=False)
        self.note(f"remote facts {json.dumps(facts, sort_keys=True)}", first=False)
        if not facts["killed"] or not facts["gone"]:
            return self.fail("the remote work was not killed, or not gone after the kill")
        return 0

    def loop(self) -> int:
        while True:
            now = time.monotonic()
            if self.kill_at is not None and now >= self.kill_at and self.helper is None:
                if not self.args.server:
                    self.kill_run()
                    return 0
                self.start_helper()
            if self.helper is not None and self.moved_on:
                return self.fail(f"the run left the chosen task ({self.moved_on}) before the remote work was "
                                 "seen running: the run was not interrupted where the test claims")
            if now >= self.deadline:
                return self.fail(f"gave up after {self.args.timeout:g}s, " + (
                    f"no line matched {self.args.at!r}" if self.kill_at is None else "the remote work never ran"))
            wait = 0.2 if self.kill_at is None or self.helper is not None else max(0.0, min(0.2, self.kill_at - now))
            for key, _ in self.selector.select(timeout=wait):
                reader: Lines = key.data
                lines = reader.read()
                if key.fileobj is self.run.stdout:
                    for text in lines:
                        self.on_run_line(text)
                    if reader.closed:
                        self.run.wait()
                        when = "before the kill" if self.kill_at is not None else \
                            f"before a line matched {self.args.at!r}"
                        return self.fail(f"the run ended (rc {self.run.returncode}) {when}")
                    continue
                for text in lines:
                    if text.strip():
                        self.selector.unregister(key.fileobj)
                        return self.on_helper_event(json.loads(text))
                if reader.closed:
                    return self.fail("the remote helper ended without a word (is python3 on the server?)")


def main(argv: list[str]) -> int:
    if argv[:1] == ["remote"]:
        return remote_main(argv[1:])
    args = parse_args(argv)
    with open(args.log, "w", encoding="utf-8") as log:
        return KillDuring(args, log).loop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
