"""Naming the image that contains ghost migrations, from the release ledger (reading it: test_release_ledger.py)."""

from __future__ import annotations

from ansible.module_utils.django_migration_ledger import image_containing

ENTRIES = [
    {
        "release": "1.0",
        "image": "depotix/api:1.0",
        "leaves": {"inventory": ["0007_populate_customer_numbers"]},
        "outcome": "ok",
    },
    {
        "release": "2.0-rc",
        "image": "depotix/api:2.0-rc",
        "leaves": {"inventory": ["0008_add_idempotency_and_constraints"]},
        "outcome": "failed",
    },
    {
        "release": "2.0",
        "image": "depotix/api:2.0",
        "leaves": {"inventory": ["0008_add_idempotency_and_constraints"]},
        "outcome": "ok",
    },
    {"release": "3.0", "image": "depotix/api:3.0", "leaves": {"inventory": "0010_archive"}, "outcome": "ok"},
]


def test_newest_good_release_with_the_ghost_as_leaf_is_named() -> None:
    hint = image_containing(ENTRIES, {"inventory": ["0008_add_idempotency_and_constraints"]})

    assert (hint.image, hint.release, hint.exact) == ("depotix/api:2.0", "2.0", True)
    assert "has them as its migration leaves" in hint.sentence()


def test_ghost_that_was_never_a_leaf_is_found_in_the_first_release_beyond_it() -> None:
    hint = image_containing(ENTRIES, {"inventory": ["0009_between_releases"]})

    assert (hint.image, hint.exact) == ("depotix/api:3.0", False)


def test_several_ghosts_need_one_image_containing_all_of_them() -> None:
    hint = image_containing(ENTRIES, {"inventory": ["0009_between_releases", "0010_archive"]})

    assert hint.image == "depotix/api:3.0"


def test_unknown_ghost_or_app_names_no_image() -> None:
    assert image_containing(ENTRIES, {"inventory": ["0011_future"]}) is None
    assert image_containing(ENTRIES, {"billing": ["0002_x"]}) is None


def test_ghosts_in_two_apps_need_a_release_that_has_both() -> None:
    entries = ENTRIES + [
        {
            "release": "3.1",
            "image": "depotix/api:3.1",
            "leaves": {"inventory": ["0010_archive"], "apitokens": ["0002_scopes"]},
        },
    ]

    hint = image_containing(entries, {"inventory": ["0010_archive"], "apitokens": ["0002_scopes"]})

    assert (hint.image, hint.exact) == ("depotix/api:3.1", True)
