"""The guard around kombu's Redis transport: an unreadable queue item is logged and
dropped, and the consumer goes on to the next message (without it, the error escapes
the event loop and Celery stops the worker)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

# kombu ships no annotations: calls into it carry type: ignore[no-untyped-call].
from kombu.connection import Connection
from kombu.entity import Exchange, Queue

from relier.worker.kombu.guards import install_kombu_guard

if TYPE_CHECKING:
    from kombu.transport import redis as kombu_redis

QUEUE = "guard-test"

GARBAGE = [
    b"not json",
    b'{"body": "trunc',
    b"[1, 2]",
    b"{}",
    b'{"properties": 5}',
    b'{"body": "e30", "properties": {"delivery_tag": "t1", "body_encoding": "base64"}}',
    b'{"body": "e30=", "headers": 5, "properties": {"delivery_tag": "t2", '
    b'"delivery_info": {"exchange": "", "routing_key": "guard-test"}}}',
    b'{"body": "e30=", "properties": {"delivery_tag": "t3", "delivery_info": {}}}',
    b"[" * 50_000 + b"]" * 50_000,
]


@pytest.fixture
def connection(rl_redis_url: str) -> Iterator[Connection]:
    install_kombu_guard()
    with Connection(rl_redis_url) as conn:  # type: ignore[no-untyped-call]
        yield conn


def test_garbage_is_dropped_and_the_next_message_arrives(
    connection: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    queue = Queue(QUEUE, Exchange(QUEUE), routing_key=QUEUE)  # type: ignore[no-untyped-call]
    received: list[Any] = []

    def on_message(body: Any, message: Any) -> None:
        received.append(body)
        message.ack()

    with connection.Consumer(queue, callbacks=[on_message], accept=["json"]):  # type: ignore[no-untyped-call]
        # The Redis transport's channel (kombu annotates the virtual base class).
        client = cast("kombu_redis.Channel", connection.default_channel).client
        for item in GARBAGE:
            client.lpush(QUEUE, item)
        connection.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key=QUEUE)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 10
        with caplog.at_level(logging.ERROR, logger="relier.worker"):
            while not received and time.monotonic() < deadline:
                connection.drain_events(timeout=1)  # type: ignore[no-untyped-call]
        assert received == [{"n": 1}]
        assert client.llen(QUEUE) == 0
        assert client.hlen("unacked") == 0
    refusals = [r for r in caplog.records if "refused a malformed message" in r.getMessage()]
    assert len(refusals) == len(GARBAGE)


def test_installing_twice_wraps_once() -> None:
    from kombu.transport import redis as kombu_redis

    install_kombu_guard()
    first = kombu_redis.Channel._brpop_read
    install_kombu_guard()
    assert kombu_redis.Channel._brpop_read is first


def test_a_failed_restore_of_unacked_messages_tells_the_listener(
    connection: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kombu cannot restore unacked messages once the broker connection is gone; the
    guard swallows that, and tells the worker's service (which hands its reserved tasks
    back: Celery drops their requests with the connection)."""
    from relier.worker.kombu import guards as _kombu_patches

    calls: list[int] = []
    _kombu_patches.on_unacked_stranded(lambda: calls.append(1))
    try:
        channel = cast("kombu_redis.Channel", connection.default_channel)
        connection.Producer().publish({"n": 1}, routing_key=QUEUE, declare=[Queue(QUEUE)])  # type: ignore[no-untyped-call]
        message = channel.basic_get(QUEUE, no_ack=False)  # type: ignore[no-untyped-call]
        assert message is not None
        import redis.exceptions

        def unreachable(*_: Any) -> None:
            raise redis.exceptions.ConnectionError("Redis is restarting")

        monkeypatch.setattr(channel.qos, "restore_unacked", unreachable)
        monkeypatch.setattr(channel.connection, "client", None)  # the connection is gone
        channel.qos.restore_unacked_once()  # guarded: no raise
        assert calls == [1]
        assert channel.client.hlen("unacked") == 1  # still parked there, not lost
        monkeypatch.undo()
        channel.basic_ack(message.delivery_tag)  # type: ignore[no-untyped-call]  # so closing the channel restores nothing
    finally:
        _kombu_patches.on_unacked_stranded(None)
