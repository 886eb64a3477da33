"""Idempotency keys in release 2.0, with IDEMPOTENCY_ENABLED on and off.

On: a repeat with the same key and payload returns the first movement (200) and records
nothing; the same key with another payload is a 409. Off (runbook scenario 3's switch):
keys are ignored and every request records a movement.
"""

from __future__ import annotations

import threading
import uuid

from app_harness import LiveApi, Response


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


def test_repeat_with_same_key_and_payload_returns_the_first_movement(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=10)
    payload = {"item": item_id, "type": "OUT", "qty_base": 4, "note": "order 1"}
    key = new_key()

    first = live_api.client.post_movement(payload, headers={"Idempotency-Key": key})
    repeat = live_api.client.post_movement(payload, headers={"Idempotency-Key": key})

    assert (first.status, repeat.status) == (201, 200)
    assert repeat.body == first.body
    assert first.body["idempotency_key"] == key
    assert live_api.movement_count(item_id) == 1
    assert live_api.quantity(item_id) == 6


def test_key_in_the_body_field_works_like_the_header(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=10)
    key = new_key()
    payload = {"item": item_id, "type": "IN", "qty_base": 1}

    first = live_api.client.post_movement({**payload, "idempotency_key": key})
    repeat = live_api.client.post_movement(payload, headers={"Idempotency-Key": key})

    assert (first.status, repeat.status) == (201, 200)
    assert repeat.body["id"] == first.body["id"]
    assert live_api.quantity(item_id) == 11


def test_repeat_with_same_key_and_other_payload_is_a_409_and_writes_nothing(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=10)
    key = new_key()
    live_api.client.post_movement({"item": item_id, "type": "OUT", "qty_base": 4}, headers={"Idempotency-Key": key})

    conflict = live_api.client.post_movement(
        {"item": item_id, "type": "OUT", "qty_base": 5}, headers={"Idempotency-Key": key}
    )

    assert conflict.status == 409
    assert key in conflict.body["error"]
    assert "qty_base" in conflict.body["error"]
    assert live_api.movement_count(item_id) == 1
    assert live_api.quantity(item_id) == 6


def test_repeat_of_a_sold_out_movement_still_returns_the_original(live_api: LiveApi) -> None:
    """A retry must not be judged against today's stock: it was already recorded."""
    item_id = live_api.new_item(quantity=5)
    payload = {"item": item_id, "type": "OUT", "qty_base": 5}
    key = new_key()

    first = live_api.client.post_movement(payload, headers={"Idempotency-Key": key})
    repeat = live_api.client.post_movement(payload, headers={"Idempotency-Key": key})

    assert (first.status, repeat.status) == (201, 200)
    assert live_api.quantity(item_id) == 0


def test_refused_request_does_not_use_up_its_key(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=1)
    key = new_key()
    payload = {"item": item_id, "type": "OUT", "qty_base": 2}

    refused = live_api.client.post_movement(payload, headers={"Idempotency-Key": key})
    live_api.client.post_movement({"item": item_id, "type": "IN", "qty_base": 5})
    retried = live_api.client.post_movement(payload, headers={"Idempotency-Key": key})

    assert (refused.status, retried.status) == (409, 201)
    assert live_api.quantity(item_id) == 4


def test_concurrent_first_attempts_with_one_key_record_one_movement(live_api: LiveApi) -> None:
    """Both requests find no movement under the key, then queue on the item: the unique key decides."""
    item_id = live_api.new_item(quantity=10)
    payload = {"item": item_id, "type": "OUT", "qty_base": 3}
    key = new_key()
    responses: list[Response] = []
    threads = [
        threading.Thread(
            target=lambda: responses.append(live_api.client.post_movement(payload, headers={"Idempotency-Key": key}))
        )
        for _ in range(2)
    ]

    with live_api.database.transaction() as other_writer:
        other_writer.execute("SELECT 1 FROM inventory_inventoryitem WHERE id = %s FOR UPDATE", (item_id,))
        for thread in threads:
            thread.start()
        live_api.queries_waiting_for_locks(2)
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(response.status for response in responses) == [200, 201]
    assert responses[0].body["id"] == responses[1].body["id"]
    assert live_api.movement_count(item_id) == 1
    assert live_api.quantity(item_id) == 7


def test_with_idempotency_off_keys_are_ignored(live_api_idempotency_off: LiveApi) -> None:
    api = live_api_idempotency_off
    item_id = api.new_item(quantity=10)
    payload = {"item": item_id, "type": "OUT", "qty_base": 2}
    key = new_key()

    first = api.client.post_movement(payload, headers={"Idempotency-Key": key})
    repeat = api.client.post_movement(payload, headers={"Idempotency-Key": key})

    assert (first.status, repeat.status) == (201, 201)
    assert first.body["id"] != repeat.body["id"]
    assert api.quantity(item_id) == 6
    assert api.database.value("SELECT count(*) FROM inventory_stockmovement WHERE idempotency_key IS NOT NULL") == 0


def test_with_idempotency_off_an_invalid_key_is_not_even_read(live_api_idempotency_off: LiveApi) -> None:
    api = live_api_idempotency_off
    item_id = api.new_item(quantity=10)

    response = api.client.post_movement({"item": item_id, "type": "IN", "qty_base": 1, "idempotency_key": 7})

    assert response.status == 201
