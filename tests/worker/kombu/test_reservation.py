"""Reserving a received task inside kombu's delivery transaction (relier.worker.kombu.reservation),
on a real Redis with kombu's real Redis channel: the record kombu keeps is what kombu
itself writes, the task is RESERVED in the same transaction, and anything the wrapper
cannot reserve is left to the task_received path."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kombu.connection import Connection

from relier import Relier, rl_task
from relier.worker.kombu import reservation

WORKER = "w@test#1-abcdef"


@rl_task(name="reservation.unit.add")
def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def rl(default_relier: Relier) -> Iterator[Relier]:
    yield default_relier
    reservation.deactivate()


@pytest.fixture
def channel(rl_redis_url: str) -> Iterator[Any]:
    """kombu's Redis channel (closing it puts unacked messages back: kept open)."""
    with Connection(rl_redis_url) as conn:  # type: ignore[no-untyped-call]  # kombu is unannotated
        channel = conn.default_channel
        yield channel
        # Acknowledged, so the close has nothing to restore (its restore leaks a socket).
        for tag in list(channel.qos._delivered):
            channel.basic_ack(tag)


def _get(channel: Any, queue: str = "celery") -> tuple[Any, list[Any], Any]:
    """One message taken from ``queue`` by kombu's Redis channel, unacknowledged;
    the message, kombu's unacked record of it and its unacked_index score."""
    message = channel.basic_get(queue, no_ack=False)
    assert message is not None, f"no message in {queue}"
    reservation.flush(channel.qos)  # the transaction's reply read: Redis has run it
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


def test_without_the_script_loaded_the_record_is_written_and_the_reserve_made_on_reading(
    rl: Relier, channel: Any
) -> None:
    reservation.activate(rl, WORKER)
    handle = add.push(5, 6)
    rl.redis.script_flush()
    message, record, _ = _get(channel)
    assert message.headers["id"] == handle.id
    assert record[0]["headers"]["id"] == handle.id  # kombu's record was still written
    # NOSCRIPT in the transaction: reading the reply loaded the script and reserved.
    assert _state(rl, handle.id) == ("RESERVED", WORKER)
    events = [json.loads(e)["e"] for e in rl.redis.lrange(rl.keys.task(handle.id).hist, 0, -1)]
    assert events == ["dispatched", "reserved"]


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


def test_an_ack_right_after_the_delivery_leaves_no_record_behind(rl: Relier, channel: Any) -> None:
    reservation.activate(rl, WORKER)
    handle = add.push(9, 10)
    message = channel.basic_get("celery", no_ack=False)
    assert message.headers["id"] == handle.id
    # The removal follows the record on the same connection, so it runs after
    # the record's write, not before it (which would leave the record for
    # kombu to restore an hour later).
    channel.basic_ack(message.delivery_tag)
    reservation.flush(channel.qos)
    assert channel.client.hget("unacked", message.delivery_tag) is None
    assert channel.client.zscore("unacked_index", message.delivery_tag) is None
    assert _state(rl, handle.id) == ("RESERVED", WORKER)


def test_a_record_redis_refuses_is_logged_and_the_delivery_goes_on(
    rl: Relier, channel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reservation.activate(rl, WORKER)
    handle = add.push(11, 12)
    channel.client.set("unacked", "not a hash")  # HSET fails inside the transaction
    try:
        message = channel.basic_get("celery", no_ack=False)
        assert message.headers["id"] == handle.id
        with caplog.at_level("WARNING", logger="relier.worker"):
            reservation.flush(channel.qos)
        assert f"record of delivery {message.delivery_tag} was not written" in caplog.text
        assert "WRONGTYPE" in caplog.text
        # The rest of the transaction ran: the task is reserved all the same.
        assert _state(rl, handle.id) == ("RESERVED", WORKER)
    finally:
        channel.client.delete("unacked")


def test_a_lost_reply_is_logged_and_the_next_delivery_gets_its_record(
    rl: Relier, channel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reservation.activate(rl, WORKER)
    first, second = add.push(13, 14), add.push(15, 16)
    assert channel.basic_get("celery", no_ack=False).headers["id"] == first.id
    # The records' connection drops before its reply is read.
    records = channel.qos.__dict__["_relier_records"]
    records.conn.disconnect()
    with caplog.at_level("WARNING", logger="relier.worker"):
        message, record, _ = _get(channel)  # reconnects to send the next one
    assert "lost the replies of 1 delivery record(s)" in caplog.text
    assert message.headers["id"] == second.id
    assert record[0]["headers"]["id"] == second.id
    assert _state(rl, second.id) == ("RESERVED", WORKER)


def test_acks_do_not_wait_and_a_removal_redis_refuses_is_logged(
    rl: Relier, channel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    reservation.activate(rl, WORKER)
    handles = [add.push(i, i) for i in range(3)]
    messages = [channel.basic_get("celery", no_ack=False) for _ in handles]
    records = channel.qos.__dict__["_relier_records"]
    for message in messages[:2]:
        channel.basic_ack(message.delivery_tag)
    # Sent, the last one's reply not read: the event loop did not wait for it
    # (a send reads only the replies that have arrived).
    assert records._waiting[-1][:2] == ("removal", messages[1].delivery_tag)
    reservation.flush(channel.qos)
    assert not records._waiting
    assert [channel.client.hexists("unacked", m.delivery_tag) for m in messages] == [
        False, False, True,
    ]  # fmt: skip
    channel.client.set("unacked_index", "not a sorted set")  # ZREM fails inside the transaction
    try:
        channel.basic_ack(messages[2].delivery_tag)
        with caplog.at_level("WARNING", logger="relier.worker"):
            reservation.flush(channel.qos)
        assert f"record of delivery {messages[2].delivery_tag} was not removed" in caplog.text
        assert "WRONGTYPE" in caplog.text
    finally:
        channel.client.delete("unacked_index")
