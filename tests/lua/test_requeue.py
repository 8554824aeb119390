"""requeue.lua: publish a due scheduled task exactly once."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import HMAX, KEYS, NAME, history, pending, queued_tags


def retrying(scripts: Scripts, due: int = 4_000) -> None:
    pending(scripts)
    fence = scripts.claim("t1", "w1/1", 2_000).fence
    assert scripts.fail("t1", fence, 3_000, due, "", "e", "tb") == 1


def test_requeue_publishes_a_retry(scripts: Scripts, client: redis.Redis) -> None:
    retrying(scripts)
    assert scripts.requeue("t1", "q", 5_000, "tag1") == 1
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"state"] == b"PENDING"
    assert job[b"updated"] == b"5000"
    assert b"due" not in job
    assert client.zscore(KEYS.schedule, "t1") is None
    # The dispatch message was consumed long ago in real life; both are here.
    assert queued_tags(client) == ["tag1", "tag0"]
    raw = client.lindex(KEYS.queue("q"), 0)
    assert raw is not None
    message = json.loads(raw)
    assert message["headers"]["id"] == "t1"
    assert message["headers"]["task"] == NAME
    assert history(client)[-1] == {"t": 5_000, "e": "requeued"}
    # The republished task is claimable with a new fence.
    claim = scripts.claim("t1", "w2/1", 6_000)
    assert (claim.run, claim.fence, claim.attempt) == (True, 2, 2)


def test_requeue_publishes_a_countdown_push(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts, due=4_000)
    assert client.llen(KEYS.queue("q")) == 0
    assert scripts.requeue("t1", "q", 5_000, "tag1") == 1
    assert queued_tags(client) == ["tag1"]
    assert client.hget(KEYS.task("t1").job, "state") == b"PENDING"


def test_second_requeue_returns_zero(scripts: Scripts, client: redis.Redis) -> None:
    retrying(scripts)
    assert scripts.requeue("t1", "q", 5_000, "tag1") == 1
    assert scripts.requeue("t1", "q", 5_001, "tag2") == 0
    assert queued_tags(client) == ["tag1", "tag0"]


def test_concurrent_requeues_publish_once(rl_redis: Any, scripts: Scripts) -> None:
    retrying(scripts)
    barrier = threading.Barrier(8)
    results: list[int] = []

    def race(n: int) -> None:
        c = rl_redis.client()
        try:
            mine = Scripts(c, KEYS, HMAX)
            barrier.wait()
            results.append(mine.requeue("t1", "q", 5_000, f"race{n}"))
        finally:
            c.close()

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0] * 7 + [1]
    with rl_redis.client() as c:
        assert c.llen(KEYS.queue("q")) == 2  # tag0 from dispatch, plus one requeue


@pytest.mark.parametrize("state", ["RUNNING", "SUCCEEDED", "DEAD"])
def test_requeue_skips_tasks_that_moved_on(
    scripts: Scripts, client: redis.Redis, state: str
) -> None:
    retrying(scripts)
    client.hset(KEYS.task("t1").job, "state", state)
    assert scripts.requeue("t1", "q", 5_000, "tag1") == 0
    assert client.hget(KEYS.task("t1").job, "state") == state.encode()
    assert queued_tags(client) == ["tag0"]
    # The schedule entry is consumed either way: nothing would ever publish it.
    assert client.zscore(KEYS.schedule, "t1") is None


def test_requeue_of_an_unscheduled_task_does_nothing(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    assert scripts.requeue("t1", "q", 5_000, "tag1") == 0
    assert queued_tags(client) == ["tag0"]


def test_requeue_of_a_purged_task_drops_the_schedule_entry(
    scripts: Scripts, client: redis.Redis
) -> None:
    client.zadd(KEYS.schedule, {"gone": 1})
    assert scripts.requeue("gone", "q", 5_000, "tag1") == 0
    assert client.zcard(KEYS.schedule) == 0
    assert client.llen(KEYS.queue("q")) == 0
