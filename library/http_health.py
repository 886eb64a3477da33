#!/usr/bin/python
"""Ansible module: ask an HTTP health endpoint, once or until it answers well several times in a row."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_health
short_description: Ask an HTTP health endpoint on the host, once or as a gate (N good answers in a row)
description:
  - Sends C(GET) requests to O(url) from the managed host (an API bound to the host's loopback interface
    answers here and nowhere else) and counts consecutive answers whose status is in O(healthy_status).
  - With O(successes=1) and a short O(timeout) it is one probe (the integrity checks); with more it is the
    health gate of a switch - it polls every O(interval) seconds until O(successes) good answers came in a
    row, or O(timeout) seconds have passed.
  - Runs in the module's one process on the host, so a gate is one task with nothing installed first.
  - An endpoint that does not become healthy does not fail the task unless O(fail_unhealthy=true);
    RV(ok) and RV(reason) say what happened, so the caller decides (a deploy undoes itself, a report
    records it).
  - Sends the O(headers) a reverse proxy would send (for example C(Host) and C(X-Forwarded-Proto)), for
    applications that answer plain HTTP on their own host only with them.
version_added: "1.0.0"
author:
  - Depotix Ops
options:
  url:
    description: The health endpoint, for example V(http://127.0.0.1:8000/healthz).
    type: str
    required: true
  successes:
    description: Consecutive good answers that make the endpoint healthy.
    type: int
    default: 1
  timeout:
    description:
      - Seconds the whole check may take; the last request starts no later than this.
      - Also bounds each request, together with O(request_timeout).
    type: float
    default: 5
  interval:
    description: Seconds between two requests.
    type: float
    default: 1
  request_timeout:
    description: Seconds one request may take.
    type: float
    default: 5
  healthy_status:
    description: HTTP statuses that count as a good answer.
    type: list
    elements: int
    default: [200]
  headers:
    description: Headers sent with every request.
    type: dict
    default: {}
  fail_unhealthy:
    description: Fail the task when the endpoint did not become healthy (else only RV(ok) is false).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Only reads; it runs the same in check mode.
  platform:
    platforms: posix
notes:
  - Uses only Python's standard library on the host.
"""

EXAMPLES = r"""
- name: Gate on three consecutive 200s within 60 seconds
  http_health:
    url: http://127.0.0.1:8000/healthz
    successes: 3
    timeout: 60
    interval: 1
  register: gate

- name: Ask once, counting a 503 (maintenance) as an answer
  http_health:
    url: http://127.0.0.1:8000/healthz
    healthy_status: [200, 503]
    headers:
      Host: api.example.com
      X-Forwarded-Proto: https
"""

RETURN = r"""
ok:
  description: Whether O(successes) good answers came in a row within O(timeout).
  type: bool
  returned: always
  sample: true
status:
  description: HTTP status of the last answer; 0 when nothing answered.
  type: int
  returned: always
  sample: 200
consecutive:
  description: Good answers in a row at the end.
  type: int
  returned: always
  sample: 3
attempts:
  description: Requests sent.
  type: int
  returned: always
  sample: 4
elapsed:
  description: Seconds the check took.
  type: float
  returned: always
  sample: 2.51
reason:
  description: Why the endpoint is not healthy (the last answer, or why nothing answered); empty when it is.
  type: str
  returned: always
  sample: "no answer (Connection refused)"
json:
  description: The last answer's body when it is a JSON object, else an empty dict.
  type: dict
  returned: always
  sample: {"status": "ok", "release": "2.0"}
"""

import json
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule


def probe(url: str, headers: dict, timeout: float) -> tuple[int, str, dict]:
    """Return (HTTP status, detail, JSON body) of one GET; status 0 when nothing answered."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - URL from the caller
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310
            return resp.status, "", body_json(resp.read(65536))
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason or "", body_json(exc.read(65536) if exc.fp else b"")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc)), {}


def body_json(data: bytes) -> dict:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def check(url: str, successes: int, timeout: float, interval: float, request_timeout: float,
          healthy: set[int], headers: dict, clock=time.monotonic, sleep=time.sleep) -> dict:
    """Poll until `successes` good answers in a row, or until `timeout` seconds have passed."""
    start = clock()
    consecutive = attempts = 0
    while True:
        attempts += 1
        remaining = max(timeout - (clock() - start), 0.5)
        status, detail, body = probe(url, headers, min(request_timeout, remaining))
        consecutive = consecutive + 1 if status in healthy else 0
        elapsed = clock() - start
        result = {"consecutive": consecutive, "attempts": attempts, "elapsed": round(elapsed, 2),
                  "status": status, "json": body}
        if consecutive >= successes:
            return dict(result, ok=True, reason="")
        if elapsed + interval > timeout:
            reason = f"last answer {status} {detail}".strip() if status else f"no answer ({detail})"
            return dict(result, ok=False, reason=reason)
        sleep(interval)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "successes": {"type": "int", "default": 1},
            "timeout": {"type": "float", "default": 5},
            "interval": {"type": "float", "default": 1},
            "request_timeout": {"type": "float", "default": 5},
            "healthy_status": {"type": "list", "elements": "int", "default": [200]},
            "headers": {"type": "dict", "default": {}},
            "fail_unhealthy": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not params["url"].startswith(("http://", "https://")):
        module.fail_json(msg=f"url must start with http:// or https:// (is {params['url']!r}); nothing was sent")
    if params["successes"] < 1 or params["timeout"] <= 0 or params["interval"] < 0 or params["request_timeout"] <= 0:
        module.fail_json(msg="successes must be at least 1, timeout and request_timeout above 0 and interval "
                             "not negative; nothing was sent")
    headers = {str(name): str(value) for name, value in params["headers"].items()}
    result = check(params["url"], params["successes"], params["timeout"], params["interval"],
                   params["request_timeout"], set(params["healthy_status"]), headers)
    if params["fail_unhealthy"] and not result["ok"]:
        module.fail_json(msg=f"{params['url']} is not healthy: {result['reason']}", changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
