"""Which migrations separate a dump from the image that will run it."""

from __future__ import annotations

import json

from depotix_backup.verify import migration_gap, parse_copy_migrations

INVENTORY_1_0 = [f"000{n}_step" for n in range(1, 8)]
INVENTORY_2_0 = INVENTORY_1_0 + ["0008_add_idempotency_and_constraints"]


def image(inventory, applied_count=None):
    """django_migration's apps for an image whose inventory app has these migrations."""
    applied = inventory[: applied_count if applied_count is not None else len(inventory)]
    return {"inventory": {"applied": applied, "unapplied": inventory[len(applied):]},
            "contenttypes": {"applied": ["0001_initial"], "unapplied": []}}


def test_a_1_0_dump_under_a_2_0_image_is_behind_by_0008():
    behind, ahead = migration_gap(image(INVENTORY_2_0, 8), {"inventory": INVENTORY_1_0,
                                                            "contenttypes": ["0001_initial"]})
    assert (behind, ahead) == ({"inventory": ["0008_add_idempotency_and_constraints"]}, {})


def test_a_2_0_dump_under_a_1_0_image_is_ahead_by_0008():
    behind, ahead = migration_gap(image(INVENTORY_1_0), {"inventory": INVENTORY_2_0,
                                                         "contenttypes": ["0001_initial"]})
    assert (behind, ahead) == ({}, {"inventory": ["0008_add_idempotency_and_constraints"]})


def test_the_live_databases_state_does_not_matter_only_the_images_code():
    dump = {"inventory": INVENTORY_2_0, "contenttypes": ["0001_initial"]}
    assert migration_gap(image(INVENTORY_2_0, 3), dump) == ({}, {})


def test_an_app_the_dump_does_not_have_is_behind_entirely():
    behind, _ = migration_gap(image(INVENTORY_1_0), {"contenttypes": ["0001_initial"]})
    assert behind == {"inventory": INVENTORY_1_0}


def test_parse_copy_migrations_reads_pg_restores_copy_block():
    sql = ("SET statement_timeout = 0;\n"
           "COPY public.django_migrations (id, app, name, applied) FROM stdin;\n"
           "2\tinventory\t0001_initial\t2026-01-01 00:00:00+00\n"
           "1\tcontenttypes\t0001_initial\t2026-01-01 00:00:00+00\n"
           "3\tinventory\t0002_note\t2026-01-01 00:00:00+00\n"
           "\\.\n\nSELECT pg_catalog.setval('x', 3, true);\n")
    assert parse_copy_migrations(sql) == {"contenttypes": ["0001_initial"],
                                          "inventory": ["0001_initial", "0002_note"]}


def test_plan_reads_the_migrations_recorded_at_dump_time(lab, dumped):
    name = dumped()["file"]
    code = {"inventory": {"applied": ["0001_initial", "0002_stockmovement_note"],
                          "unapplied": ["0007_populate_customer_numbers", "0008_add_idempotency_and_constraints"]},
            "contenttypes": {"applied": ["0001_initial"], "unapplied": []}}
    plan = lab.run_json("plan", name, stdin=json.dumps(code))
    assert plan["migrations_from"] == "record"
    assert plan["behind"] == {"inventory": ["0008_add_idempotency_and_constraints"]}
    assert (plan["ahead"], plan["matches"], plan["release"]) == ({}, False, "2.0")


def test_plan_reads_the_archive_when_the_record_is_gone(lab, dumped):
    result = dumped()
    (lab.directory / f"{result['file']}.json").unlink()
    code = {app: {"applied": names, "unapplied": []} for app, names in result["migrations"].items()}
    plan = lab.run_json("plan", result["file"], stdin=json.dumps(code))
    assert (plan["migrations_from"], plan["matches"]) == ("archive", True)
    assert plan["migrations"] == result["migrations"]
