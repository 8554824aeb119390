"""checkpoint.lua: a running attempt saves progress, only with its fence."""

from __future__ import annotations

import json

import pytest
import redis

from relier.context import TaskContext
from relier.errors import StaleFenceError
from relier.journal.envelope import dumps
from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS, NAME, history, pending


def running(scripts: Scripts) -> int:
    pending(scripts)
    return scripts.claim("t1", "w1/1", 2_000).fence


def test_current_fence_saves_progress(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    assert scripts.checkpoint("t1", fence, b'{"page":2}', 2_500) is True
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"progress"] == b'{"page":2}'
    assert job[b"updated"] == b"2500"
    assert job[b"state"] == b"RUNNING"
    assert history(client)[-1] == {"t": 2_500, "e": "checkpoint", "fence": fence}


def test_next_attempt_reads_the_progress_back(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    scripts.checkpoint("t1", fence, b'{"page":2}', 2_500)
    scripts.checkpoint("t1", fence, b'{"page":3}', 2_600)
    assert scripts.fail("t1", fence, 3_000, 4_000, "", "e", "tb") == 1
    assert scripts.requeue("t1", "q", 4_000, "tag1") == 1
    assert scripts.claim("t1", "w2/1", 4_100).progress == b'{"page":3}'


def test_stale_fence_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    stale = running(scripts)
    scripts.checkpoint("t1", stale, b"1", 2_100)
    client.hset(KEYS.task("t1").job, "state", "PENDING")
    current = scripts.claim("t1", "w2/1", 2_200).fence
    assert scripts.checkpoint("t1", stale, b"2", 2_300) is False
    assert client.hget(KEYS.task("t1").job, "progress") == b"1"
    assert history(client)[-1]["e"] == "started"
    assert scripts.checkpoint("t1", current, b"3", 2_400) is True


@pytest.mark.parametrize("state", ["PENDING", "RETRYING", "SUCCEEDED", "DEAD"])
def test_checkpoint_needs_a_running_task(scripts: Scripts, client: redis.Redis, state: str) -> None:
    fence = running(scripts)
    client.hset(KEYS.task("t1").job, "state", state)
    assert scripts.checkpoint("t1", fence, b"1", 2_500) is False
    assert client.hget(KEYS.task("t1").job, "progress") is None


def test_missing_task_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.checkpoint("gone", 1, b"1", 2_500) is False
    assert client.dbsize() == 0


def test_task_context_checkpoint_raises_on_a_stale_fence(
    scripts: Scripts, client: redis.Redis
) -> None:
    stale = running(scripts)

    def context(fence: int) -> TaskContext:
        return TaskContext(
            task_id="t1",
            task_name=NAME,
            attempt=1,
            fence=fence,
            _save=lambda data: scripts.checkpoint("t1", fence, data, 2_500),
        )

    ctx = context(stale)
    ctx.checkpoint({"done": 1})
    progress = client.hget(KEYS.task("t1").job, "progress")
    assert progress is not None
    assert json.loads(progress) == {"done": 1}
    client.hset(KEYS.task("t1").job, "state", "PENDING")
    scripts.claim("t1", "w2/1", 2_600)
    with pytest.raises(StaleFenceError):
        ctx.checkpoint({"done": 2})
    assert ctx.progress == {"done": 1}
    assert client.hget(KEYS.task("t1").job, "progress") == dumps({"done": 1})
