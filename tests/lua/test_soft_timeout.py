"""soft_timeout.lua: a running attempt notes its soft timeout, only with its fence."""

from __future__ import annotations

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS, history, running


def test_current_fence_notes_the_event(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    assert scripts.soft_timeout("t1", fence, 2_500, 0.5) is True
    assert history(client)[-1] == {"t": 2_500, "e": "soft_timeout", "fence": fence, "after": 0.5}
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"state"] == b"RUNNING" and job[b"updated"] == b"2500"


def test_stale_fence_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    stale = running(scripts)
    client.hset(KEYS.task("t1").job, "state", "PENDING")
    current = scripts.claim("t1", "w2", 2_200).fence
    assert scripts.soft_timeout("t1", stale, 2_300, 1) is False
    assert history(client)[-1]["e"] == "started"
    assert scripts.soft_timeout("t1", current, 2_400, 1) is True


@pytest.mark.parametrize("state", ["PENDING", "RETRYING", "SUCCEEDED", "DEAD"])
def test_a_task_no_longer_running_is_refused(
    scripts: Scripts, client: redis.Redis, state: str
) -> None:
    fence = running(scripts)
    client.hset(KEYS.task("t1").job, "state", state)
    before = history(client)
    assert scripts.soft_timeout("t1", fence, 2_500, 1) is False
    assert history(client) == before


def test_missing_task_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.soft_timeout("gone", 1, 2_500, 1) is False
    assert client.dbsize() == 0
