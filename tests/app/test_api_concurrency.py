"""Concurrent OUT movements on one item never drive its quantity below zero.

Two gunicorn workers take two simultaneous requests; the item row lock makes the second
wait for the first and judge the stock it left. The second test proves the wait happens
where it must, at the read of the quantity, by holding the row lock itself.
"""

from __future__ import annotations

import threading

from app_harness import LiveApi, Response

ROUNDS = 8


def post_concurrently(api: LiveApi, payloads: list[dict[str, object]]) -> list[Response]:
    """POST the payloads from one thread each, released at the same instant."""
    start = threading.Barrier(len(payloads))
    responses: list[Response] = []

    def post(payload: dict[str, object]) -> None:
        start.wait()
        responses.append(api.client.post_movement(payload))

    threads = [threading.Thread(target=post, args=(payload,)) for payload in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return responses


def test_two_concurrent_outs_beyond_stock_never_drive_it_below_zero(live_api: LiveApi) -> None:
    for _ in range(ROUNDS):
        item_id = live_api.new_item(quantity=10)

        responses = post_concurrently(live_api, [{"item": item_id, "type": "OUT", "qty_base": 7}] * 2)

        assert sorted(response.status for response in responses) == [201, 409]
        assert live_api.quantity(item_id) == 3
        assert live_api.movement_count(item_id) == 1


def test_two_concurrent_outs_within_stock_are_both_applied(live_api: LiveApi) -> None:
    for _ in range(ROUNDS):
        item_id = live_api.new_item(quantity=10)

        responses = post_concurrently(live_api, [{"item": item_id, "type": "OUT", "qty_base": 4}] * 2)

        assert [response.status for response in responses] == [201, 201]
        assert live_api.quantity(item_id) == 2, "a lost update would leave 6"


def test_out_waits_for_the_item_lock_and_judges_the_stock_left_after_it(live_api: LiveApi) -> None:
    item_id = live_api.new_item(quantity=10)
    responses: list[Response] = []
    request = threading.Thread(
        target=lambda: responses.append(live_api.client.post_movement({"item": item_id, "type": "OUT", "qty_base": 5}))
    )

    with live_api.database.transaction() as other_writer:
        other_writer.execute("SELECT quantity FROM inventory_inventoryitem WHERE id = %s FOR UPDATE", (item_id,))
        request.start()
        [blocked_sql] = live_api.queries_waiting_for_locks(1)
        other_writer.execute("UPDATE inventory_inventoryitem SET quantity = 3 WHERE id = %s", (item_id,))
    request.join(timeout=30)

    assert "FOR UPDATE" in blocked_sql, f"the request waited elsewhere: {blocked_sql}"
    assert responses[0].status == 409
    assert live_api.quantity(item_id) == 3
    assert live_api.movement_count(item_id) == 0
