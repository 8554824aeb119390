"""Reserving a received task inside kombu's delivery transaction (relier._reservation),
on a real Redis with kombu's real Redis channel: the record kombu keeps is what kombu
itself writes, the task is RESERVED in the same transaction, and anything the wrapper
cannot reserve is left to the task_received path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection

from relier import Relier, rl_task
from relier import _reservation as reservation

WORKER = "w@test#1-abcdef"


@rl_task(name="reservation.unit.add")
def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def rl(default_relier: Relier) -> Iterator[Relier]:
    yield default_relier
    reservation.deactivate()


@pytest.fixture
def channel(redis_url: str) -> Iterator[Any]:
    """kombu's Redis channel (closing it puts unacked messages back: kept open)."""
    with Connection(redis_url) as conn:
        channel = conn.default_channel
        yield channel
        # Acknowledged, so the close has nothing to restore (its restore leaks a socket).
        for tag in list(channel.qos._delivered):
            channel.basic_ack(tag)


def _get(channel: Any, queue: str = "celery") -> tuple[Any, dict[str, Any], Any]:
    """One message taken from ``queue`` by kombu's Redis channel, unacknowledged;
    the message, kombu's unacked record of it and its unacked_index score."""
    message = channel.basic_get(queue, no_ack=False)
    assert message is not None, f"no message in {queue}"
    tag = message.delivery_tag
    record = json.loads(channel.client.hget("unacked", tag))
    score = channel.client.zscore("unacked_index", tag)
    return message, record, score


def _state(rl: Relier, task_id: str) -> tuple[str, str]:
    job = rl.redis.hmget(rl.keys.task(task_id).job, ["state", "owner"])
    return (job[0] or b"").decode(), (job[1] or b"").decode()


def test_the_record_is_kombus_own_and_the_task_is_reserved_with_it(
    rl: Relier, channel: Any
) -> None:
    plain = add.push(1, 2)
    _, kombu_record, kombu_score = _get(channel)
    assert _state(rl, plain.id) == ("PENDING", "")  # kombu's own append: no reserve

    reservation.activate(rl, WORKER)
    ours = add.push(3, 4)
    message, record, score = _get(channel)
    assert message.headers["id"] == ours.id
    # Same shape as kombu's: [raw message, exchange, routing key], and a time score.
    assert len(record) == len(kombu_record) == 3
    assert record[1:] == kombu_record[1:]
    assert record[0]["headers"]["id"] == ours.id
    assert set(record[0]) == set(kombu_record[0])
    assert score is not None and kombu_score is not None and score >= kombu_score
    assert _state(rl, ours.id) == ("RESERVED", WORKER)
    events = [json.loads(e)["e"] for e in rl.redis.lrange(rl.keys.task(ours.id).hist, 0, -1)]
    assert events == ["dispatched", "reserved"]
    # task_received learns that the delivery reserved it, once.
    assert reservation.reserved_on_delivery(ours.id) is True
    assert reservation.reserved_on_delivery(ours.id) is False


def test_a_message_of_no_registered_task_gets_kombus_record_only(rl: Relier, channel: Any) -> None:
    reservation.activate(rl, WORKER)
    channel.client.lpush(
        "celery",
        json.dumps({
            "body": "W10=", "content-encoding": "utf-8", "content-type": "application/json",
            "headers": {"id": "foreign-1", "task": "someone.elses.task"},
            "properties": {"delivery_tag": "tag-foreign", "body_encoding": "base64",
                           "delivery_info": {"exchange": "", "routing_key": "celery"}},
        }),
    )  # fmt: skip
    message, record, _ = _get(channel)
    assert message.headers["id"] == "foreign-1"
    assert record[0]["headers"]["task"] == "someone.elses.task"
    assert not rl.redis.exists(rl.keys.task("foreign-1").job)
    assert reservation.reserved_on_delivery("foreign-1") is False


def test_without_the_script_loaded_the_delivery_goes_on_and_task_received_reserves(
    rl: Relier, channel: Any
) -> None:
    reservation.activate(rl, WORKER)
    handle = add.push(5, 6)
    rl.redis.script_flush()
    message, record, _ = _get(channel)
    assert message.headers["id"] == handle.id
    assert record[0]["headers"]["id"] == handle.id  # kombu's record was still written
    assert _state(rl, handle.id) == ("PENDING", "")
    # Left to the signal path, which loads the script and reserves.
    assert reservation.reserved_on_delivery(handle.id) is False
    assert rl.scripts.reserve(handle.id, WORKER, 1) == "RESERVED"


def test_a_second_reserve_of_a_reserved_task_changes_nothing(rl: Relier, channel: Any) -> None:
    reservation.activate(rl, WORKER)
    handle = add.push(7, 8)
    _get(channel)
    assert rl.scripts.reserve(handle.id, "w@other#2-fedcba", 2) == "RESERVED"
    assert _state(rl, handle.id) == ("RESERVED", WORKER)


def test_installing_twice_wraps_once() -> None:
    from kombu.transport import redis as kombu_redis

    reservation.install()
    first = kombu_redis.QoS.append
    reservation.install()
    assert kombu_redis.QoS.append is first
