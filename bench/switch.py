#!/usr/bin/env python3
"""Benchmark: failed requests and the writer's p99 latency during a switch, blue/green against in place.

Against a running lab (`make lab`, then `lab/playbooks/seed.yml` for the API token):
each round changes one setting of the API (an extra environment variable, a new value
per run), which replaces the serving container, with `site.yml`, twice:

- `blue_green`: as the project runs it, the new container beside the old one, gated in
  the idle slot, then enabled in the edge while the old one drains;
- `in_place`: the old way, `-e api_edge_host=` (no edge in the switch) with
  `api_host_port` set to the serving slot's port: the `api` container is replaced where
  it is, and the edge sees its server go down and come back.

The kinds alternate within each round, so the machine's changing load hits both alike.
During every run the stock writer (20 movements a second) and the /healthz poller (10 a
second) post and ask through the edge on the lab server's 127.0.0.1:80, bounded and
self-stopping (molecule/_shared/files). Per run: failed requests (the writer's failures
plus the poller's non-200 answers), the writer's p99 and worst latency, and every movement
the API acknowledged looked up in the database. Prints the medians and the ratio, writes
every sample with --json.

    bench/switch.py --server depotix-lab --rounds 3 [--json bench/switch.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
FILES = PROJECT / "molecule" / "_shared" / "files"
TOKEN = "/home/deploy/Depotix/lab/api_token"
PSQL = ["docker", "exec", "-i", "server-postgres-1", "psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
        "-U", "postgres", "-d", "depotix"]


def on_server(server: str, *argv: str, stdin: str | None = None) -> str:
    """Run a command inside the lab server; return its stdout (fails loudly)."""
    done = subprocess.run(["docker", "exec", "-i", server, *argv], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed on {server}: {done.stderr.strip()[-500:]}")
    return done.stdout


def prepare(server: str) -> int:
    """Copy the writer and the poller into the server, give the writer its token and item; return the item id."""
    for name in ("stock_writer.py", "health_poller.py"):
        subprocess.run(["docker", "cp", str(FILES / name), f"{server}:/root/bench_{name}"], check=True)
    on_server(server, "install", "-m", "0600", TOKEN, "/root/bench_writer.token")
    sql = ("WITH created AS (INSERT INTO inventory_inventoryitem (name, sku, quantity, updated_at) "
           "VALUES ('Stock writer bench', 'writer-bench', 0, now()) ON CONFLICT (sku) DO NOTHING RETURNING id) "
           "SELECT id FROM created UNION ALL SELECT id FROM inventory_inventoryitem WHERE sku = 'writer-bench'")
    return int(on_server(server, *PSQL, "-c", sql).split()[0])


def serving_port(server: str) -> int:
    """The host port the serving container `api` is published on (its slot's)."""
    ports = json.loads(on_server(server, "docker", "inspect", "--format", "{{json .HostConfig.PortBindings}}", "api"))
    return int(next(iter(ports.values()))[0]["HostPort"])


def measured_run(server: str, item: int, name: str, extra: list[str], env: dict) -> dict:
    """One site.yml run with the writer and the poller going through the edge; its figures."""
    files = {k: f"/root/bench_{name}.{k}" for k in ("wstop", "wout", "pstop", "pout")}
    on_server(server, "rm", "-f", *files.values())
    writer = ["python3", "/root/bench_stock_writer.py", "write", "--name", f"bench-{name}", "--item", str(item),
              "--token-file", "/root/bench_writer.token", "--stop-file", files["wstop"], "--out", files["wout"],
              "--rate", "20", "--max-seconds", "300"]
    poller = ["python3", "/root/bench_health_poller.py", "--stop-file", files["pstop"], "--out", files["pout"],
              "--max-seconds", "300"]
    subprocess.run(["docker", "exec", "-d", server, *writer], check=True)
    subprocess.run(["docker", "exec", "-d", server, *poller], check=True)
    time.sleep(2)  # both running before the switch starts
    start = time.perf_counter()
    done = subprocess.run(["ansible-playbook", "site.yml", *extra], capture_output=True, text=True, cwd=PROJECT,
                          env=env)
    seconds = time.perf_counter() - start
    time.sleep(2)
    on_server(server, "touch", files["wstop"], files["pstop"])
    for path in (files["wout"], files["pout"]):
        for _ in range(60):
            if subprocess.run(["docker", "exec", server, "test", "-s", path]).returncode == 0:
                break
            time.sleep(0.5)
    if done.returncode != 0:
        sys.exit(f"site.yml {' '.join(extra)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-1000:]}")
    writer_summary = json.loads(on_server(server, "cat", files["wout"]))
    poll = json.loads(on_server(server, "cat", files["pout"]))
    notes = on_server(server, *PSQL, "-c", f"SELECT note FROM inventory_stockmovement WHERE note LIKE "
                                           f"'writer:bench-{name}:%'").split()
    lost = sorted(set(writer_summary["acknowledged_ids"]) - set(notes))
    return {
        "kind": name.split("-")[0], "run": name, "site_seconds": round(seconds, 2),
        "failed_requests": writer_summary["failed"] + poll["non_200_samples"],
        "writer_sent": writer_summary["sent"], "writer_failed": writer_summary["failed"],
        "writer_failed_by": writer_summary["failed_by"], "writer_latency_ms": writer_summary["latency_ms"],
        "poller_samples": poll["samples"], "poller_non_200": poll["non_200_samples"],
        "poller_statuses": poll["statuses"], "acknowledged": writer_summary["acknowledged"], "lost": len(lost),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="depotix-lab")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write every run's figures here")
    args = parser.parse_args()
    if args.rounds < 1:
        sys.exit("--rounds must be at least 1")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    item = prepare(args.server)
    stamp = int(time.time())
    runs = []
    for number in range(1, args.rounds + 1):
        for kind in ("blue_green", "in_place"):
            setting = json.dumps({"api_env": {"DEPOTIX_BENCH_SWITCH": f"{stamp}-{number}-{kind}"}})
            extra = ["-e", setting]
            if kind == "in_place":
                extra += ["-e", "api_edge_host=", "-e", f"api_host_port={serving_port(args.server)}"]
            run = measured_run(args.server, item, f"{kind}-{stamp}-{number}", extra, env)
            runs.append(run)
            print(f"round {number} {kind}: {run['failed_requests']} failed requests "
                  f"(writer {run['writer_failed']} of {run['writer_sent']} {run['writer_failed_by']}, poller "
                  f"{run['poller_non_200']} of {run['poller_samples']}), writer p99 "
                  f"{run['writer_latency_ms']['p99']} ms, max {run['writer_latency_ms']['max']} ms, "
                  f"lost {run['lost']}, site.yml {run['site_seconds']} s", flush=True)
    # Back to the project's own settings (and the serving slot in the edge).
    subprocess.run(["ansible-playbook", "site.yml"], capture_output=True, cwd=PROJECT, env=env, check=True)

    def median(kind: str, key) -> float:
        return statistics.median(key(run) for run in runs if run["kind"] == kind)

    summary = {kind: {"failed_requests": median(kind, lambda r: r["failed_requests"]),
                      "writer_p99_ms": median(kind, lambda r: r["writer_latency_ms"]["p99"]),
                      "writer_max_ms": median(kind, lambda r: r["writer_latency_ms"]["max"]),
                      "lost": sum(r["lost"] for r in runs if r["kind"] == kind)}
               for kind in ("blue_green", "in_place")}
    bg, ip = summary["blue_green"], summary["in_place"]
    summary["p99_ratio_blue_green_to_in_place"] = round(bg["writer_p99_ms"] / ip["writer_p99_ms"], 2)
    print(f"median failed requests per switch: blue/green {bg['failed_requests']}, in place {ip['failed_requests']}")
    print(f"median writer p99: blue/green {bg['writer_p99_ms']} ms, in place {ip['writer_p99_ms']} ms "
          f"(ratio {summary['p99_ratio_blue_green_to_in_place']}); lost: {bg['lost']} and {ip['lost']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                               "rounds": args.rounds, "summary": summary, "runs": runs},
                                              indent=2) + "\n")
    sys.exit(0 if bg["failed_requests"] == 0 and bg["lost"] == 0 else 1)


if __name__ == "__main__":
    main()
