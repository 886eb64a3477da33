"""The database a restore replaces: kept under a name of its own, its ids never handed out again, dropped only on
request; the swap survives a client that keeps reconnecting."""

from __future__ import annotations

import subprocess
import time

import pytest


@pytest.fixture
def kept(lab):
    """Return the name a test keeps the replaced database under; drop it (and the default one) afterwards."""
    name = f"{lab.database}_replaced_undo"
    yield name
    lab.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE); "
            f"DROP DATABASE IF EXISTS {lab.database}_replaced WITH (FORCE)", "postgres")


def test_keep_as_keeps_the_replaced_database_under_that_name(lab, dumped, kept):
    at_dump = lab.rows_digest()
    name = dumped()["file"]
    lab.sql("INSERT INTO inventory_stockmovement (item_id, type, qty_base, note) VALUES (3, 'IN', 4, 'after the dump')")
    since_dump = lab.rows_digest()

    result = lab.run_json("restore", name, "--keep-as", kept)

    assert result["previous_database"] == kept
    assert (lab.rows_digest(), lab.rows_digest(kept)) == (at_dump, since_dump)
    assert lab.sql("SELECT note FROM inventory_stockmovement WHERE note = 'after the dump'", kept) == "after the dump"


def test_a_later_restore_leaves_a_database_kept_by_name(lab, dumped, kept):
    name = dumped()["file"]
    lab.sql("DELETE FROM inventory_stockmovement WHERE id <= 5")
    lab.run_json("restore", name, "--keep-as", kept)
    kept_digest = lab.rows_digest(kept)

    lab.run_json("restore", name, "--keep-previous")
    lab.run_json("discard-previous")

    assert kept in lab.databases()
    assert lab.rows_digest(kept) == kept_digest


def test_keep_as_refuses_a_name_in_use_before_touching_anything(lab, dumped, kept):
    name = dumped()["file"]
    lab.sql(f"CREATE DATABASE {kept}", "postgres")
    lab.sql("DELETE FROM inventory_stockmovement WHERE id <= 5")
    before, databases = lab.rows_digest(), lab.databases()

    done = lab.run("restore", name, "--keep-as", kept)

    assert done.returncode == 1 and f"{kept}: a database of that name exists already" in done.stderr
    assert (lab.rows_digest(), lab.databases()) == (before, databases)


@pytest.mark.parametrize("name", ["{db}", "postgres", "{db}_restoring", "{db}_replaced_Upper", "other_replaced_x"])
def test_only_a_replaced_database_can_be_kept_or_discarded(lab, dumped, name):
    name = name.format(db=lab.database)
    databases = lab.databases()

    refused_restore = lab.run("restore", dumped()["file"], "--keep-as", name)
    refused_discard = lab.run("discard-previous", "--database", name)

    assert refused_restore.returncode == 1 and "as the name of a replaced database" in refused_restore.stderr
    assert refused_discard.returncode == 1 and "Nothing was dropped" in refused_discard.stderr
    assert lab.databases() == databases


def test_discard_previous_drops_the_database_it_names(lab, dumped, kept):
    lab.run_json("restore", dumped()["file"], "--keep-as", kept)

    assert lab.run_json("discard-previous", "--database", kept) == {"changed": True, "dropped": kept}
    assert kept not in lab.databases()
    assert lab.run_json("discard-previous", "--database", kept) == {"changed": False, "dropped": None}


def test_the_restored_database_never_hands_out_an_id_the_kept_one_holds(lab, dumped, kept):
    name = dumped()["file"]
    written_since = lab.sql("INSERT INTO inventory_stockmovement (item_id, type, qty_base, note) "
                            "SELECT 1, 'IN', 1, 'since ' || n FROM generate_series(1, 7) n RETURNING id").split()

    result = lab.run_json("restore", name, "--keep-as", kept)
    new_id = lab.sql("INSERT INTO inventory_stockmovement (item_id, type, qty_base, note) "
                     "VALUES (1, 'IN', 1, 'after the restore') RETURNING id")

    assert "public.inventory_stockmovement_id_seq" in result["sequences_advanced"]
    assert int(new_id) > max(int(i) for i in written_since)
    assert lab.sql(f"SELECT count(*) FROM inventory_stockmovement WHERE id = {new_id}", kept) == "0"


def test_the_swap_succeeds_while_a_client_keeps_reconnecting(lab, dumped, kept):
    """A pooled client that connects again as soon as it is cut off: the swap ends it in its own transaction,
    and tries again when it wins the race."""
    name = dumped()["file"]
    lab.sql("DELETE FROM inventory_stockmovement WHERE id <= 5")
    changed = lab.rows_digest()
    loop = (f"while :; do psql -X -q -h {lab.socket_dir} -U postgres -d {lab.database} "
            "-c 'SELECT pg_sleep(60)' >/dev/null 2>&1; done")
    client = subprocess.Popen(["sh", "-c", loop], start_new_session=True)
    time.sleep(0.5)
    try:
        result = lab.run_json("restore", name, "--keep-as", kept)
    finally:
        client.kill()
        subprocess.run(["pkill", "-KILL", "-s", str(client.pid)], check=False)
        client.wait()
    assert result["swap_attempts"] >= 1
    assert lab.rows_digest(kept) == changed
