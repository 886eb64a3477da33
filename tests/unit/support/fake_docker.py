#!/usr/bin/env python3
"""A stand-in for the docker CLI, so the module can be tested end to end without an engine.

It understands the few commands the django_migration module runs:

- ``inspect --type container --format {{.State.Status}} NAME``
- ``inspect --type container --format {{.Image}} NAME`` and ``inspect --type image --format {{.Id}}
  IMAGE`` (an image's id is the sha256 of its name)
- ``exec -i -w DIR [--user U] CONTAINER PYTHON - ARGS``
- ``exec DB psql ... -c 'SELECT app, name FROM django_migrations'`` in the database container
  (FAKE_DOCKER_DB, default ``db``): the rows of FIXTURE_DB_PATH's table, tab-separated
- ``image ls --quiet --no-trunc``
- ``run --rm -i --pull never --name N -w DIR [--user U] --entrypoint PYTHON
  [--network NET] [--env-file FILE] IMAGE - ARGS``
- ``rm --force NAME``

"Running" Python means running FAKE_DOCKER_PYTHON in FAKE_DOCKER_PROJECT, with
stdin passed through. ``exec`` sees this process's environment (the serving
container's); ``run`` sees only PATH and the env file (a fresh container).
Configuration, all through the environment:

- FAKE_DOCKER_CONTAINERS: ``api=running,old=exited``
- FAKE_DOCKER_IMAGES: comma-separated images present on the "host"
- FAKE_DOCKER_CONTAINER_IMAGES: ``api=fixture/api:2.0``, the image each container runs
- FAKE_DOCKER_DB: the database container's name (its status is in FAKE_DOCKER_CONTAINERS)
- FAKE_DOCKER_LOG: file that gets one JSON line (the argv) per call
- FAKE_DOCKER_HANG: ``1`` makes exec and run hang, like a stuck engine
- FAKE_DOCKER_DAEMON_DOWN: ``1`` makes every command fail as without an engine
"""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

PYTHON_NAMES = ("python", "python3")
VALUE_OPTIONS = ("-w", "--workdir", "-u", "--user", "--name", "--entrypoint", "--network", "--env-file", "--pull")


def log_call(argv):
    path = os.environ.get("FAKE_DOCKER_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(argv) + "\n")


def containers():
    pairs = [item.split("=", 1) for item in os.environ.get("FAKE_DOCKER_CONTAINERS", "").split(",") if "=" in item]
    return dict(pairs)


def split_options(args):
    """Return ({option: value}, remaining args) for docker-style leading options."""
    options, index = {}, 0
    while index < len(args) and args[index].startswith("-"):
        if args[index] in VALUE_OPTIONS:
            options[args[index]] = args[index + 1]
            index += 2
        else:
            options[args[index]] = True
            index += 1
    return options, args[index:]


def read_env_file(path):
    env = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value
    return env


def run_python(command, env):
    if os.environ.get("FAKE_DOCKER_HANG") == "1":
        time.sleep(3600)
    if os.path.basename(command[0]) not in PYTHON_NAMES:
        sys.stderr.write('OCI runtime exec failed: exec: "%s": executable file not found in $PATH\n' % command[0])
        return 127
    python = os.environ["FAKE_DOCKER_PYTHON"]
    return subprocess.call([python] + command[1:], cwd=os.environ["FAKE_DOCKER_PROJECT"], env=env)


def image_id(image):
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


def images():
    return [name for name in os.environ.get("FAKE_DOCKER_IMAGES", "").split(",") if name]


def docker_inspect(args):
    options, rest = split_options(args)
    name = rest[-1]
    if args[:2] == ["--type", "image"]:
        if name not in images():
            sys.stderr.write("Error: No such image: %s\n" % name)
            return 1
        print(image_id(name))
        return 0
    status = containers().get(name)
    if status is None:
        sys.stderr.write("Error: No such container: %s\n" % name)
        return 1
    if "{{.Image}}" in args:
        pairs = os.environ.get("FAKE_DOCKER_CONTAINER_IMAGES", "").split(",")
        print(image_id(dict(item.split("=", 1) for item in pairs if "=" in item).get(name, "unknown")))
        return 0
    print(status)
    return 0


def docker_psql(command):
    sql = command[command.index("-c") + 1]
    if sql != "SELECT app, name FROM django_migrations":
        sys.stderr.write("fake docker: unsupported SQL %r\n" % sql)
        return 2
    with sqlite3.connect(os.environ["FIXTURE_DB_PATH"]) as connection:
        found = connection.execute("SELECT name FROM sqlite_master WHERE name = 'django_migrations'").fetchall()
        if not found:
            sys.stderr.write('ERROR:  relation "django_migrations" does not exist\nLINE 1: ...\n')
            return 1
        for app, name in connection.execute("SELECT app, name FROM django_migrations ORDER BY id"):
            print("%s\t%s" % (app, name))
    return 0


def docker_image(args):
    if args[:1] != ["ls"]:
        sys.stderr.write("fake docker: unsupported image command %r\n" % args[:1])
        return 2
    for name in images():
        print(image_id(name))
    return 0


def docker_exec(args):
    options, rest = split_options(args)
    container, command = rest[0], rest[1:]
    status = containers().get(container)
    if status is None:
        sys.stderr.write("Error response from daemon: No such container: %s\n" % container)
        return 1
    if status != "running":
        sys.stderr.write("Error response from daemon: container %s is not running\n" % container)
        return 1
    if container == os.environ.get("FAKE_DOCKER_DB", "db") and command[:1] == ["psql"]:
        return docker_psql(command)
    return run_python(command, dict(os.environ))


def docker_run(args):
    options, rest = split_options(args)
    image, command = rest[0], [options.get("--entrypoint", "sh")] + rest[1:]
    if image not in images():
        sys.stderr.write("docker: Error response from daemon: No such image: %s.\n" % image)
        return 125
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    if "--env-file" in options:
        env.update(read_env_file(options["--env-file"]))
    return run_python(command, env)


def main(argv):
    log_call(argv)
    if os.environ.get("FAKE_DOCKER_DAEMON_DOWN") == "1":
        sys.stderr.write(
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"
        )
        return 1
    commands = {
        "inspect": docker_inspect,
        "exec": docker_exec,
        "run": docker_run,
        "rm": lambda args: 0,
        "image": docker_image,
    }
    if not argv or argv[0] not in commands:
        sys.stderr.write("fake docker: unsupported command %r\n" % argv[:1])
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
