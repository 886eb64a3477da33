"""Turn the probe's result documents into the django_migration module's results and failures."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible.module_utils.django_migration_docker import DjangoMigrationError, Runner
from ansible.module_utils.django_migration_ledger import image_containing
from ansible.module_utils.django_migration_protocol import drop_holds_data, drop_sentence, step_key
from ansible.module_utils.release_ledger import LedgerError, load_entries

AppsState = Dict[str, Dict[str, List[str]]]

# Failure kinds whose Django output helps the operator; the others are explained in full by the message.
KINDS_WITH_OUTPUT = ("django_failed", "migrate_failed", "timeout", "state_unknown", "manage_py_exit")
# Probe details passed through to fail_json as they are.
FAILURE_DETAILS = (
    "kind",
    "plan",
    "target",
    "targets",
    "unlisted_zeroed",
    "irreversible_steps",
    "lossy_steps",
    "drops",
    "dropped_apps",
    "ghosts",
    "candidates",
    "known_migrations",
    "known_apps",
    "unknown_apps",
    "conflicts",
    "leaf",
    "restored",
    "output",
)


def applied_by_app(state: Optional[AppsState]) -> Dict[str, List[str]]:
    """Return {app: applied migrations} from a probe state."""
    return {app: list(info["applied"]) for app, info in (state or {}).items()}


def applied_lines(applied: Dict[str, List[str]], apps: List[str]) -> str:
    """Return the applied migrations of ``apps``, one ``app.name`` per line, for diff mode."""
    return "".join("%s.%s\n" % (app, name) for app in apps for name in applied.get(app, []))


def query_result(document: Dict[str, Any], runner: Runner) -> Dict[str, Any]:
    return {
        "changed": False,
        "apps": document["before"],
        "django_version": document.get("django_version"),
        "runner": runner.describe(),
    }


def migrated_result(document: Dict[str, Any], runner: Runner, app: Optional[str], check_mode: bool) -> Dict[str, Any]:
    """Return the module result for state=migrated; ``after`` is predicted in check mode."""
    before = applied_by_app(document["before"])
    after = applied_by_app(document["after"])
    plan = document.get("plan", [])
    drops = document.get("drops", [])
    forwards = [step for step in plan if step["direction"] == "forwards"]
    touched = sorted({step["app"] for step in plan} | ({app} if app else set()))
    label = ", ".join(touched) or "every app (nothing to do)"
    result: Dict[str, Any] = {
        "changed": before != after,
        "app": app,
        "target": document.get("target"),
        "targets": document.get("targets", {}),
        "plan": plan,
        "before": before,
        "after": after,
        "apps": document["after"],
        "apps_before": document["before"],
        "lossy_steps": [step_key(step) for step in plan if step["lossy"]]
        + [drop_sentence(drop) for drop in drops if drop_holds_data(drop)],
        "drops": drops,
        "irreversible_steps": [step_key(step) for step in plan if step["irreversible"]],
        "rollback_safe": not any(step["lossy"] or step["irreversible"] for step in forwards),
        "migrate_output": document.get("migrate_output", []),
        "django_version": document.get("django_version"),
        "runner": runner.describe(),
        "diff": {
            "before_header": "applied migrations of %s" % label,
            "after_header": "applied migrations of %s%s" % (label, " (planned)" if check_mode else ""),
            "before": applied_lines(before, touched),
            "after": applied_lines(after, touched),
        },
    }
    if "unlisted_zeroed" in document:
        result["unlisted_zeroed"] = document["unlisted_zeroed"]
    return result


def ghost_advice(document: Dict[str, Any], ledger: Optional[str]) -> str:
    """Return what to do about ghost migrations: which image can unapply them, if the ledger says."""
    ghosts: Dict[str, List[str]] = document.get("ghosts", {})
    keys = ["%s.%s" % (app, name) for app, found in sorted(ghosts.items()) for name in found]
    names = ", ".join(keys)
    step = "Unapply %s with the image that contains %s, before this image takes over" % (
        names,
        "it" if len(keys) == 1 else "them",
    )
    if not ledger:
        return step + " (give ledger to have it named)."
    try:
        hint = image_containing(load_entries(ledger), ghosts)
    except LedgerError as error:
        return "%s (%s)." % (step, error)
    if hint is None:
        return step + " (the ledger %s names no release that contains %s)." % (ledger, names)
    targets = document.get("targets", {})
    runs = "; ".join(
        "image=%s state=migrated app=%s target=%s" % (hint.image, app, targets.get(app, "zero"))
        for app in sorted(ghosts)
    )
    return "%s: %s, e.g. %s." % (step, hint.sentence(), runs)


def failure(document: Dict[str, Any], runner: Runner, ledger: Optional[str]) -> DjangoMigrationError:
    """Return the error for a probe document with ok=false."""
    kind = document.get("kind", "django_failed")
    msg = document.get("message", "Django reported a failure without a message.")
    details = {key: document[key] for key in FAILURE_DETAILS if key in document}
    details["runner"] = runner.describe()
    if kind == "ghosts":
        advice = ghost_advice(document, ledger)
        msg = "%s %s Nothing was run." % (msg, advice)
        details["ghost_advice"] = advice
    if document.get("before") is not None:
        details["before"] = applied_by_app(document["before"])
    if document.get("after") is not None:
        details["after"] = applied_by_app(document["after"])
        details["changed"] = details["after"] != details.get("before")
    if kind in KINDS_WITH_OUTPUT and document.get("output"):
        msg = "%s\nLast lines of Django output:\n%s" % (msg, "\n".join(document["output"]))
    return DjangoMigrationError(msg, **details)
