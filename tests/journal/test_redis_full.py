"""A Redis at its maxmemory (noeviction, as Relier requires) refuses writes with OOM:
a push raises RedisFullError and enqueues nothing; a worker's claim waits the refusal
out instead of taking it for a corrupt journal. On the test suite's real redis-server,
its maxmemory lowered below what it uses and restored after."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis

from relier import (
    RedisFullError,
    RedisUnavailableError,
    Relier,
    TaskNotFoundError,
    rl_task,
)
from relier.ops.dlq import get_dead
from relier.worker.executor import execute


@rl_task(name="redis_full.unit.add")
def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def full(default_relier: Relier) -> Iterator[redis.Redis]:
    """A client of the test Redis; ``full.fill()`` makes it refuse writes."""
    client = default_relier.redis
    before = client.config_get("maxmemory")["maxmemory"]
    yield client
    client.config_set("maxmemory", before)


def _fill(client: redis.Redis) -> None:
    client.config_set("maxmemory", 1)  # below what Redis already uses: every write is OOM


async def test_a_push_to_a_full_redis_raises_redis_full_and_enqueues_nothing(
    default_relier: Relier, full: redis.Redis
) -> None:
    queue_before = full.llen("celery")
    _fill(full)
    with pytest.raises(RedisFullError) as caught:
        add.push(1, 2)
    assert isinstance(caught.value, RedisUnavailableError)  # handled like an outage
    assert isinstance(caught.value.__cause__, redis.exceptions.OutOfMemoryError)
    assert "maxmemory" in str(caught.value) and "nothing was enqueued" in str(caught.value)
    with pytest.raises(RedisFullError):
        await add.apush(1, 2)
    with pytest.raises(RedisFullError):
        add.push_many([(1, 2), (3, 4)])
    assert full.llen("celery") == queue_before
    full.config_set("maxmemory", 0)
    assert add.push(1, 2).state() == "PENDING"  # room again: the same push works


def test_a_claim_refused_by_a_full_redis_waits_and_then_runs(
    default_relier: Relier, full: redis.Redis
) -> None:
    handle = add.push(2, 3)
    _fill(full)
    threading.Timer(1.0, lambda: full.config_set("maxmemory", 0)).start()
    started = time.monotonic()
    request = SimpleNamespace(id=handle.id, hostname="full@test", delivery_info={})
    execute(add, request, (handle.id,), {})
    assert time.monotonic() - started >= 0.9  # it waited for the room
    assert handle.result(timeout=5) == 5
    with pytest.raises(TaskNotFoundError):  # not taken for a corrupt journal
        get_dead(default_relier, handle.id)
