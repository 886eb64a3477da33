"""Run the Django migration probe in a container through the docker CLI, on the Docker host.

Two ways to reach Django: ``exec`` into the serving container, or ``run`` a
one-off container from an image on the application network (so it works while
the API container crash-loops or is gone). Either way one request costs one
``docker exec`` or ``docker run``: a program made of the probe's source and the
protocol's goes in on stdin (``container_program``), one JSON document comes
back on stdout. The env file (it holds the database password) is handed to
docker with ``--env-file`` and never read here.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import time
import uuid
import zlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple

# Imported so that AnsiballZ ships the probe with the module (it bundles only the module_utils that
# some import names), and to read its source for the container: nothing in it is ever called here.
from ansible.module_utils import django_migration_protocol as protocol_module
from ansible.module_utils.django_migration_protocol import OUTPUT_TAIL_LINES, parse_output, tail

# (argv, stdin data or None) -> (rc, stdout, stderr); the module passes module.run_command.
RunCommand = Callable[[List[str], Optional[str]], Tuple[int, str, str]]

ONE_OFF_PREFIX = "django-migration-"

# The program the container runs on ``python -``, made of two files: the protocol and the probe, which
# imports it. Pasting one after the other would not do: each starts with a docstring and a ``from
# __future__`` import (which must come first in a file), and their globals would mix. So this bootstrap
# carries both sources as string literals (zlib-compressed, base64: the program must stay well within a
# pipe buffer, 64 KiB, so that a docker that exits before reading it is explained, not a broken pipe) and
#   1. runs the protocol as a module named ansible.module_utils.django_migration_protocol and puts it in
#      sys.modules; the probe's ordinary ``from ansible.module_utils.django_migration_protocol import ...``
#      then finds it there (an import looks in sys.modules first, before any parent package, so the
#      container needs no Ansible), as the host finds the real file;
#   2. runs the probe as ``__main__``, in a namespace of its own, as if it had been sent alone.
# Each source is compiled under its own file name, with its lines in linecache, so tracebacks name them.
CONTAINER_BOOTSTRAP = """\
# django_migration: the protocol module, then the probe (module_utils/django_migration_docker.py).
import base64
import linecache
import sys
import types
import zlib


def run_source(packed, filename, namespace):
    source = zlib.decompress(base64.b64decode(packed)).decode("utf-8")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)


protocol = types.ModuleType({protocol_name!a})
protocol.__file__ = {protocol_file!a}
sys.modules[protocol.__name__] = protocol
run_source({protocol_source!a}, protocol.__file__, protocol.__dict__)
probe = {{"__name__": "__main__", "__file__": {probe_file!a}}}
run_source({probe_source!a}, probe["__file__"], probe)
"""


class DjangoMigrationError(Exception):
    """A failure to report with fail_json: a message that says what to do, and details."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class ContainerUnavailable(DjangoMigrationError):
    """``docker exec`` failed because the container is not running (or does not exist)."""


@dataclass(frozen=True)
class ProbeOptions:
    """Where and how to start Django; the module's options, minus what the request says."""

    container: Optional[str] = None
    image: Optional[str] = None
    network: Optional[str] = None
    env_file: Optional[str] = None
    volumes: Tuple[str, ...] = ()
    user: Optional[str] = None
    workdir: str = "/app"
    manage_py: str = "manage.py"
    settings: Optional[str] = None
    python: str = "python3"
    timeout: int = 300

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> "ProbeOptions":
        given = {name: params[name] for name in cls.__dataclass_fields__ if params.get(name) is not None}
        if "volumes" in given:
            given["volumes"] = tuple(given["volumes"])
        return cls(**given)


@dataclass(frozen=True)
class Runner:
    """One way of starting the probe: ``exec`` into a container or ``run`` an image."""

    kind: str
    options: ProbeOptions
    name: Optional[str] = None
    reason: Optional[str] = None

    @property
    def where(self) -> str:
        if self.kind == "exec":
            return "container %s" % self.options.container
        return "a one-off container from image %s" % self.options.image

    def describe(self) -> Dict[str, Any]:
        """Return the runner as the module reports it."""
        described: Dict[str, Any] = {"kind": self.kind}
        if self.kind == "exec":
            described["container"] = self.options.container
        else:
            described.update(image=self.options.image, network=self.options.network, name=self.name)
        if self.reason:
            described["reason"] = self.reason
        return described

    def argv(self, docker: str, request: Dict[str, Any]) -> List[str]:
        """Return the docker command line that runs the probe (``container_program`` comes on stdin)."""
        options = self.options
        payload = json.dumps(request, sort_keys=True)
        user = ["--user", options.user] if options.user else []
        if self.kind == "exec":
            return [
                docker,
                "exec",
                "-i",
                "-w",
                options.workdir,
                *user,
                str(options.container),
                options.python,
                "-",
                payload,
            ]
        argv = [
            docker,
            "run",
            "--rm",
            "-i",
            "--pull",
            "never",
            "--name",
            str(self.name),
            "-w",
            options.workdir,
            *user,
            "--entrypoint",
            options.python,
        ]
        if options.network:
            argv += ["--network", options.network]
        if options.env_file:
            argv += ["--env-file", options.env_file]
        for volume in options.volumes:
            argv += ["--volume", volume]
        return argv + [str(options.image), "-", payload]


def exec_runner(options: ProbeOptions) -> Runner:
    return Runner(kind="exec", options=options)


def run_runner(options: ProbeOptions, reason: Optional[str] = None) -> Runner:
    """Return a one-off runner with a unique container name, so a timeout can remove it."""
    return Runner(kind="run", options=options, name=ONE_OFF_PREFIX + uuid.uuid4().hex[:12], reason=reason)


def module_source(module: ModuleType) -> str:
    """Return a module's source, also when this code runs from an AnsiballZ zip."""
    loader = getattr(module, "__loader__", None)
    source = loader.get_source(module.__name__) if loader is not None and hasattr(loader, "get_source") else None
    if not source:
        with open(str(module.__file__), encoding="utf-8") as handle:
            source = handle.read()
    return source


PROBE_MODULE = "ansible.module_utils.django_migration_probe"


def _bundle_the_probe() -> None:  # pragma: no cover - never called
    """Never called: this import makes Ansible put the probe into the module's zip, and
    read_probe_source() reads it from there as text. The probe runs in the container only; the
    host never imports it (that would compile its 1,300 lines on every task)."""
    from ansible.module_utils import django_migration_probe  # noqa: F401 pylint: disable=unused-import


def read_probe_source() -> str:
    """Return the probe's source text, read where it was bundled, without importing it."""
    spec = importlib.util.find_spec(PROBE_MODULE)
    if spec is None:
        raise ImportError("%s is not bundled with the module" % PROBE_MODULE)
    loader = spec.loader
    source = loader.get_source(PROBE_MODULE) if loader is not None and hasattr(loader, "get_source") else None
    if not source:
        with open(str(spec.origin), encoding="utf-8") as handle:
            source = handle.read()
    return source


def pack_source(source: str) -> str:
    """Return a source as the bootstrap carries it: zlib-compressed, base64 (``unpack_source`` reverses it)."""
    return base64.b64encode(zlib.compress(source.encode("utf-8"), 9)).decode("ascii")


def unpack_source(packed: str) -> str:
    return zlib.decompress(base64.b64decode(packed)).decode("utf-8")


def container_program(probe_source: Optional[str] = None) -> str:
    """Return the program sent to ``python -`` in the container: the protocol, then the probe run as __main__.

    ``probe_source`` replaces the probe's own source (tests that patch the probe).
    """
    return CONTAINER_BOOTSTRAP.format(
        protocol_name=protocol_module.__name__,
        protocol_file="django_migration_protocol.py",
        protocol_source=pack_source(module_source(protocol_module)),
        probe_file="django_migration_probe.py",
        probe_source=pack_source(probe_source if probe_source is not None else read_probe_source()),
    )


def grace_seconds(timeout: int) -> int:
    """Return the time the probe gets after the timeout to undo a half-done migrate."""
    return min(30, max(1, timeout // 10))


def output_tail(*texts: str, lines: int = OUTPUT_TAIL_LINES) -> List[str]:
    """Return the last non-empty lines of the given outputs, in order."""
    return tail("\n".join(text for text in texts if text), lines)


class DockerClient:
    """The docker CLI on this host, behind the module's run_command."""

    def __init__(self, run: RunCommand, docker: str, timeout_bin: Optional[str] = None) -> None:
        self.run = run
        self.docker = docker
        self.timeout_bin = timeout_bin

    def container_status(self, container: str) -> Optional[str]:
        """Return the container's status (running, exited, restarting...), None when it does not exist."""
        rc, out, err = self.run(
            [self.docker, "inspect", "--type", "container", "--format", "{{.State.Status}}", container], None
        )
        if rc == 0:
            return out.strip() or None
        if "no such" in err.lower():
            return None
        raise DjangoMigrationError(
            "docker inspect %s failed: %s. Check that the Docker engine runs and that this user may use it."
            % (container, " ".join(output_tail(err, out, lines=3)) or "exit %d" % rc),
            kind="docker_failed",
            rc=rc,
        )

    def remove_container(self, name: str) -> None:
        self.run([self.docker, "rm", "--force", name], None)

    def call(self, argv: List[str], data: str, limit: int) -> Tuple[int, str, str, bool]:
        """Run argv with data on stdin, killed after ``limit`` seconds; return (rc, out, err, timed_out)."""
        command = argv
        if self.timeout_bin:
            command = [self.timeout_bin, "--kill-after=5", str(limit)] + argv
        started = time.monotonic()
        rc, out, err = self.run(command, data)
        timed_out = bool(self.timeout_bin) and rc in (124, 137) and time.monotonic() - started >= limit
        return rc, out, err, timed_out


def select_runner(client: DockerClient, options: ProbeOptions) -> Runner:
    """Return exec when the container can serve, else run from the image.

    With a container alone, exec is tried directly (no extra docker call on the
    common path); an exec failure is diagnosed afterwards.
    """
    if options.container and options.image:
        status = client.container_status(options.container)
        if status == "running":
            return exec_runner(options)
        return run_runner(options, "container %s is %s" % (options.container, status or "missing"))
    if options.container:
        return exec_runner(options)
    return run_runner(options)


def run_probe(client: DockerClient, options: ProbeOptions, request: Dict[str, Any]) -> Tuple[Dict[str, Any], Runner]:
    """Run one probe request; return its result document and the runner that served it."""
    runner = select_runner(client, options)
    try:
        return invoke(client, runner, request), runner
    except ContainerUnavailable as unavailable:
        if not options.image:
            raise
        runner = run_runner(options, unavailable.details.get("reason"))
        return invoke(client, runner, request), runner


def invoke(client: DockerClient, runner: Runner, request: Dict[str, Any]) -> Dict[str, Any]:
    """Run the probe once with ``runner``; return its document or raise DjangoMigrationError."""
    timeout = runner.options.timeout
    grace = grace_seconds(timeout)
    full_request = dict(
        request, timeout=timeout, grace=grace, manage_py=runner.options.manage_py, settings=runner.options.settings
    )
    argv = runner.argv(client.docker, full_request)
    rc, out, err, timed_out = client.call(argv, container_program(), timeout + 2 * grace)
    document = parse_output(out)
    if document is not None:
        return document
    if timed_out:
        raise timeout_error(client, runner, timeout + 2 * grace)
    raise failure_without_result(client, runner, rc, out, err)


def timeout_error(client: DockerClient, runner: Runner, limit: int) -> DjangoMigrationError:
    """Clean up after a docker client that had to be killed, and say what state things are in."""
    if runner.kind == "run" and runner.name:
        client.remove_container(runner.name)
        cleanup = "The one-off container %s was removed." % runner.name
    else:
        cleanup = "Django in container %s stops itself once its own time is up." % runner.options.container
    return DjangoMigrationError(
        "Django did not answer within %d s (timeout %d s) in %s and the docker client was stopped. %s "
        "The database rolls back a migration that was cut off; check the state with state=query, "
        "and raise timeout if the migration needs longer." % (limit, runner.options.timeout, runner.where, cleanup),
        kind="timeout",
        runner=runner.describe(),
    )


def failure_without_result(client: DockerClient, runner: Runner, rc: int, out: str, err: str) -> DjangoMigrationError:
    """Explain a docker or Python failure that ended before the probe could answer."""
    lines = output_tail(out, err)
    shown = "\n".join(lines)
    details = {"kind": "docker_failed", "rc": rc, "output": lines, "runner": runner.describe()}
    if runner.kind == "exec":
        status = client.container_status(str(runner.options.container))
        if status != "running":
            return ContainerUnavailable(
                "Container %s is %s, so Django cannot run in it, and no image was given. Set image "
                "(with network and env_file) to run Django in a one-off container from the API image."
                % (runner.options.container, "not running (status: %s)" % status if status else "missing"),
                reason="container %s is %s" % (runner.options.container, status or "missing"),
                **dict(details, kind="container_unavailable"),
            )
    if runner.kind == "run" and rc == 125:
        return DjangoMigrationError(
            "docker run could not start a container from image %s: %s. Check that the image is on this host "
            "(docker image ls; it is never pulled here), that network %s exists and that env_file is readable."
            % (runner.options.image, shown or "no output", runner.options.network or "(default)"),
            **details,
        )
    if rc in (126, 127):
        return DjangoMigrationError(
            "%s could not be started in %s (exit %d): %s. Check that workdir (%s) exists there and set the "
            "python option to the interpreter that runs the project."
            % (runner.options.python, runner.where, rc, shown or "no output", runner.options.workdir),
            **details,
        )
    return DjangoMigrationError(
        "Django ended in %s without a result (exit %d). Last lines of output:\n%s" % (runner.where, rc, shown),
        **details,
    )
