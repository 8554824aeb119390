"""promote_due: scheduled tasks reach their queue when due, exactly once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from relier import Relier, load_settings, rl_task
from relier.clock import now_ms
from relier.tasks.dispatch import Call, CallOptions, push
from relier.worker.scheduler import promote_due


@rl_task(name="tests.scheduler.tick")
def tick(n: int) -> int:
    return n


@pytest.fixture
def rl(rl_redis_url: str) -> Iterator[Relier]:
    instance = Relier(load_settings(redis_url=rl_redis_url))
    yield instance
    instance.close()


def schedule(rl: Relier, n: int, countdown: float = 60, queue: str | None = None) -> list[str]:
    options = CallOptions(countdown=countdown, queue=queue)
    return [push(rl, tick, Call((i,), {}, options)).id for i in range(n)]


def make_due(rl: Relier, ids: list[str]) -> None:
    rl.redis.zadd(rl.keys.schedule, {task_id: now_ms() - 1_000 for task_id in ids})


def queued_ids(rl: Relier, queue: str = "celery") -> list[str]:
    return [json.loads(m)["headers"]["id"] for m in rl.redis.lrange(queue, 0, -1)]


def test_only_due_tasks_are_published(rl: Relier) -> None:
    due = schedule(rl, 3)
    not_yet = schedule(rl, 2)
    make_due(rl, due)
    assert promote_due(rl) == 3
    assert sorted(queued_ids(rl)) == sorted(due)
    assert sorted(m.decode() for m in rl.redis.zrange(rl.keys.schedule, 0, -1)) == sorted(not_yet)
    assert promote_due(rl) == 0


def test_promoted_tasks_go_to_their_own_queue(rl: Relier) -> None:
    ids = schedule(rl, 2, queue="reports")
    make_due(rl, ids)
    assert promote_due(rl) == 2
    assert sorted(queued_ids(rl, "reports")) == sorted(ids)
    assert rl.redis.llen("celery") == 0


def test_retries_become_pending_again(rl: Relier) -> None:
    (task_id,) = schedule(rl, 1, countdown=0)
    claim = rl.scripts.claim(task_id, "w/1", now_ms())
    assert rl.scripts.fail(task_id, claim.fence, now_ms(), now_ms() - 1, "", "e", "tb") == 1
    assert promote_due(rl) == 1
    assert rl.redis.hget(rl.keys.task(task_id).job, "state") == b"PENDING"
    assert queued_ids(rl).count(task_id) == 2  # the first delivery and the retry


def test_limit_bounds_one_pass(rl: Relier) -> None:
    ids = schedule(rl, 25)
    make_due(rl, ids)
    assert promote_due(rl, limit=10) == 10
    assert promote_due(rl, limit=10) == 10
    assert promote_due(rl, limit=10) == 5
    assert rl.redis.llen("celery") == 25


def test_purged_tasks_leave_the_schedule(rl: Relier) -> None:
    ids = schedule(rl, 2)
    make_due(rl, ids)
    rl.redis.delete(rl.keys.task(ids[0]).job)
    assert promote_due(rl) == 1
    assert queued_ids(rl) == [ids[1]]
    assert rl.redis.zcard(rl.keys.schedule) == 0


def test_empty_schedule(rl: Relier) -> None:
    assert promote_due(rl) == 0


def promote(instance: Relier, barrier: threading.Barrier, counts: list[int]) -> None:
    barrier.wait()
    counts.append(promote_due(instance))


@pytest.mark.parametrize("shared", [True, False], ids=["one-instance", "two-workers"])
def test_concurrent_promotion_publishes_each_task_once(
    rl: Relier, rl_redis_url: str, shared: bool
) -> None:
    other = rl if shared else Relier(load_settings(redis_url=rl_redis_url))
    try:
        for _ in range(3):
            rl.redis.delete("celery")
            ids = schedule(rl, 100)
            make_due(rl, ids)
            barrier = threading.Barrier(2)
            counts: list[int] = []

            threads = [
                threading.Thread(target=promote, args=(r, barrier, counts)) for r in (rl, other)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sum(counts) == 100
            assert rl.redis.llen("celery") == 100
            assert sorted(queued_ids(rl)) == sorted(ids)
            assert rl.redis.zcard(rl.keys.schedule) == 0
    finally:
        if other is not rl:
            other.close()
