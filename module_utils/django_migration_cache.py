"""Each image's migration graph, kept on the Docker host: a state query without starting Django.

An image's migrations never change, so the graph Django builds from them (every
app's migrations in dependency order, its leaves, the files present) is computed
once, by the probe, and kept in ``<directory>/<image id>.json`` (mode 0600, in a
0700 directory). A ``state=query`` then costs one ``docker inspect`` (which image
the container runs) and, at the same time, one read of ``django_migrations`` through the
database container's ``psql``; ``state_from_graph`` (the probe's own rule) does the rest.

The cache answers only when everything checks out; otherwise it says why and the
module asks the probe, as without a cache:

- no graph kept for the image (first query of a new image), or a file that is
  torn, of another format or of another image;
- a project with squashed migrations (Django shapes that graph by what is
  applied, so it cannot be kept);
- the image cannot be told (no such container or image);
- ``django_migrations`` cannot be read (the database container is down).

Graphs of images that are no longer on the host are removed whenever a graph is
written, and by the api role when it removes release images.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ansible.module_utils.django_migration_docker import DockerClient, ProbeOptions, Runner
from ansible.module_utils.django_migration_protocol import GRAPH_FORMAT, state_from_graph, tail

SELECT_APPLIED = "SELECT app, name FROM django_migrations"
NO_TABLE = 'relation "django_migrations" does not exist'


@dataclass(frozen=True)
class DatabaseOptions:
    """Where ``django_migrations`` is read: the database container's psql, over its local socket."""

    container: str
    name: str
    user: str = "postgres"


class Miss(Exception):
    """The cache cannot answer; the message says why (the module reports it and asks the probe)."""


class GraphCache:
    """The graphs kept in ``directory``, read and written through the docker CLI of ``client``."""

    def __init__(self, client: DockerClient, directory: str, database: DatabaseOptions) -> None:
        self.client = client
        self.directory = directory
        self.database = database

    def path(self, image_id: str) -> str:
        return os.path.join(self.directory, image_id.split(":")[-1] + ".json")

    # --- which image ---------------------------------------------------------------------------

    def _inspect(self, kind: str, name: str, field: str) -> Optional[str]:
        rc, out, _err = self.client.run([self.client.docker, "inspect", "--type", kind, "--format", field, name], None)
        value = out.strip()
        return value if rc == 0 and value.startswith("sha256:") else None

    def image_of(self, options: ProbeOptions) -> str:
        """Return the id of the image the container runs (stopped or not), else of ``image``."""
        if options.container:
            image_id = self._inspect("container", options.container, "{{.Image}}")
            if image_id:
                return image_id
        if options.image:
            image_id = self._inspect("image", options.image, "{{.Id}}")
            if image_id:
                return image_id
        raise Miss("neither container %s nor image %s is on the host" % (options.container, options.image))

    def image_of_runner(self, runner: Runner) -> Optional[str]:
        """Return the id of the image a probe runner ran, or None."""
        if runner.kind == "exec" and runner.options.container:
            return self._inspect("container", runner.options.container, "{{.Image}}")
        if runner.options.image:
            return self._inspect("image", runner.options.image, "{{.Id}}")
        return None

    # --- reading ---------------------------------------------------------------------------------

    def load(self, image_id: str) -> Dict[str, Any]:
        """Return the graph kept for ``image_id``, or raise Miss saying why there is none to use."""
        path = self.path(image_id)
        try:
            with open(path, encoding="utf-8") as handle:
                kept = json.load(handle)
        except FileNotFoundError:
            raise Miss("no graph kept yet for image %s" % image_id) from None
        except (OSError, ValueError) as error:
            raise Miss("the graph kept in %s cannot be read (%s)" % (path, error)) from None
        graph = kept.get("graph") if isinstance(kept, dict) else None
        if not isinstance(graph, dict) or kept.get("image_id") != image_id or graph.get("format") != GRAPH_FORMAT:
            raise Miss("the graph kept in %s is of another image or format" % path)
        if not isinstance(graph.get("apps"), dict) or not isinstance(graph.get("on_disk"), list):
            raise Miss("the graph kept in %s is incomplete" % path)
        if graph.get("squashed"):
            raise Miss("the project has squashed migrations, whose graph depends on what is applied")
        return kept

    def applied(self) -> List[Tuple[str, str]]:
        """Return the rows of django_migrations (none when the table does not exist yet)."""
        db = self.database
        argv = [self.client.docker, "exec", db.container, "psql", "-X", "-q", "-A", "-t", "-F", "\t",
                "-v", "ON_ERROR_STOP=1", "-U", db.user, "-d", db.name, "-c", SELECT_APPLIED]
        rc, out, err = self.client.run(argv, None)
        if rc != 0:
            if NO_TABLE in err:
                return []
            raise Miss("django_migrations could not be read through %s (exit %d: %s)"
                       % (db.container, rc, " ".join(tail(err + "\n" + out, 3)) or "no output"))
        rows = []
        for line in out.splitlines():
            if line.strip():
                app, _, name = line.partition("\t")
                rows.append((app, name))
        return rows

    def query(self, options: ProbeOptions) -> Dict[str, Any]:
        """Return the module's query result from the kept graph, or raise Miss.

        The read of django_migrations runs beside the lookup of the image and its graph (two
        docker calls at once instead of one after the other)."""
        read: Dict[str, Any] = {}

        def read_applied() -> None:
            try:
                read["rows"] = self.applied()
            except Exception as error:  # raised below, in the caller's thread  # pylint: disable=broad-except
                read["error"] = error

        reader = threading.Thread(target=read_applied, name="django_migrations-read", daemon=True)
        reader.start()
        try:
            image_id = self.image_of(options)
            kept = self.load(image_id)
        finally:
            reader.join()
        if "error" in read:
            raise read["error"]
        apps = state_from_graph(kept["graph"], read["rows"])
        return {
            "changed": False,
            "apps": apps,
            "django_version": kept.get("django_version"),
            "runner": {"kind": "cache", "image_id": image_id, "path": self.path(image_id)},
            "source": "cache",
        }

    def at_leaves(self, options: ProbeOptions) -> Dict[str, Any]:
        """Return the state when every app is at its one leaf with no ghost (a migrate to the leaves has
        nothing to do), or raise Miss."""
        answer = self.query(options)
        for app, info in answer["apps"].items():
            if info["unapplied"] or info["ghosts"] or len(info["leaf"]) > 1:
                raise Miss("app %s is not at its one leaf, so Django plans the migration" % app)
        return answer

    # --- writing -----------------------------------------------------------------------------------

    def store(self, image_id: str, graph: Dict[str, Any], django_version: Optional[str]) -> bool:
        """Keep ``graph`` for ``image_id`` (atomically, 0600); False when it is not to be kept."""
        if graph.get("squashed") or graph.get("format") != GRAPH_FORMAT:
            return False
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = self.path(image_id)
        document = {"image_id": image_id, "django_version": django_version, "graph": graph}
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".graph-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
        return True

    def prune(self) -> List[str]:
        """Remove the graphs of images no longer on the host; return the files removed."""
        rc, out, _err = self.client.run([self.client.docker, "image", "ls", "--quiet", "--no-trunc"], None)
        if rc != 0:
            return []
        present = {line.strip().split(":")[-1] for line in out.splitlines() if line.strip()}
        removed = []
        for name in sorted(os.listdir(self.directory)):
            if name.endswith(".json") and not name.startswith(".") and name[: -len(".json")] not in present:
                os.unlink(os.path.join(self.directory, name))
                removed.append(name)
        return removed

    def remember(self, runner: Runner, document: Dict[str, Any]) -> Dict[str, Any]:
        """After a probe: keep its graph when none is kept for that image; say what was done."""
        graph = document.get("graph")
        if not isinstance(graph, dict):
            return {"written": False, "reason": "the probe reported no graph"}
        image_id = self.image_of_runner(runner)
        if not image_id:
            return {"written": False, "reason": "the probe's image could not be told"}
        path = self.path(image_id)
        try:
            self.load(image_id)
            return {"written": False, "path": path, "reason": "already kept"}
        except Miss:
            pass
        if not self.store(image_id, graph, document.get("django_version")):
            return {"written": False, "reason": "the project has squashed migrations"}
        return {"written": True, "path": path, "removed": self.prune()}
