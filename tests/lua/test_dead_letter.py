"""dead_letter.lua: move an unclaimable task to the DLQ, never a running or finished one."""

from __future__ import annotations

import pytest
import redis

from relier.journal.scripts import Scripts, load_all
from tests.lua.journal import KEYS, history, pending


def assert_dead(client: redis.Redis, reason: str = "unknown_task") -> None:
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"DEAD"
    assert job[b"reason"] == reason.encode()
    assert job[b"error"] == b"no such task"
    assert job[b"finished"] == b"5000"
    assert b"owner" not in job
    assert client.zscore(KEYS.dlq, "t1") == 5_000
    assert client.zscore(KEYS.schedule, "t1") is None
    assert client.lrange(tk.done, 0, -1) == [b"DEAD"]
    assert history(client)[-1] == {
        "t": 5_000,
        "e": "dead",
        "reason": reason,
        "error": "no such task",
    }


def test_pending_task_is_dead_lettered(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "no such task") is True
    assert_dead(client)


def test_reserved_task_is_dead_lettered(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    client.hset(KEYS.task("t1").job, "state", "RESERVED")
    assert scripts.dead_letter("t1", 5_000, "invalid_message", "no such task") is True
    assert_dead(client, "invalid_message")


def test_retrying_task_leaves_the_schedule(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    fence = scripts.claim("t1", "w1/1", 2_000).fence
    assert scripts.fail("t1", fence, 3_000, 9_000, "", "e", "tb") == 1
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "no such task") is True
    assert_dead(client)


def test_scheduled_countdown_task_leaves_the_schedule(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts, due=9_000)
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "no such task") is True
    assert_dead(client)


def test_running_task_with_its_fence_is_dead_lettered(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    fence = scripts.claim("t1", "w1", 2_000, 42).fence
    assert scripts.dead_letter("t1", 5_000, "invalid_payload", "no such task", fence, "w1")
    assert_dead(client, "invalid_payload")
    assert b"pid" not in client.hgetall(KEYS.task("t1").job)
    assert not client.exists(KEYS.owned("w1"))


def test_reserved_task_leaves_its_owners_set(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    assert scripts.reserve("t1", "w1", 1_500) == "RESERVED"
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "no such task", None, "w1")
    assert_dead(client)
    assert not client.exists(KEYS.owned("w1"))


def test_running_task_without_fence_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    scripts.claim("t1", "w1", 2_000)
    before = client.hgetall(KEYS.task("t1").job)
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "stray duplicate", None, "w1") is False
    assert client.smembers(KEYS.owned("w1")) == {b"t1"}
    assert client.hgetall(KEYS.task("t1").job) == before
    assert client.zcard(KEYS.dlq) == 0
    assert not client.exists(KEYS.task("t1").done)


def test_running_task_with_another_fence_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    fence = scripts.claim("t1", "w1/1", 2_000).fence
    assert scripts.dead_letter("t1", 5_000, "invalid_payload", "x", fence + 1) is False
    assert client.hget(KEYS.task("t1").job, "state") == b"RUNNING"
    assert client.zcard(KEYS.dlq) == 0


@pytest.mark.parametrize("state", ["SUCCEEDED", "DEAD", "CANCELLED"])
def test_finished_task_is_refused(scripts: Scripts, client: redis.Redis, state: str) -> None:
    pending(scripts)
    fence = scripts.claim("t1", "w1/1", 2_000).fence
    client.hset(KEYS.task("t1").job, "state", state)
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "x") is False
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "x", fence) is False
    assert client.hget(KEYS.task("t1").job, "state") == state.encode()
    assert client.zcard(KEYS.dlq) == 0


def test_succeeded_task_is_never_dead_lettered(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    fence = scripts.claim("t1", "w1/1", 2_000).fence
    assert scripts.complete("t1", fence, b'"ok"', 3_000, 60)
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "x") is False
    assert scripts.dead_letter("t1", 5_000, "unknown_task", "x", fence) is False
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"state"] == b"SUCCEEDED"
    assert job[b"result"] == b'"ok"'
    assert client.lrange(KEYS.task("t1").done, 0, -1) == [b"SUCCEEDED"]


def test_missing_task_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.dead_letter("gone", 5_000, "unknown_task", "x") is False
    assert client.dbsize() == 0


def test_refusal_names_the_state(scripts: Scripts, client: redis.Redis) -> None:
    sha = load_all(client)["dead_letter"]
    pending(scripts)
    scripts.claim("t1", "w1/1", 2_000)
    for task_id, state in (("gone", b"MISSING"), ("t1", b"RUNNING")):
        _, keys, argv = scripts.args.dead_letter(task_id, 5_000, "unknown_task", "x", None, "w1")
        assert client.evalsha(sha, len(keys), *keys, *argv) == [0, state]
