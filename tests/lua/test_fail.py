"""fail.lua: a failed attempt schedules a retry or goes to the DLQ, fenced."""

from __future__ import annotations

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS, history, running


def test_retry_path_schedules_the_task(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    outcome = scripts.fail("t1", fence, 3_000, 8_000, "", "ValueError: boom", "Traceback ...", "w1")
    assert outcome == 1
    assert not client.exists(KEYS.owned("w1"))
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"RETRYING"
    assert job[b"due"] == b"8000"
    assert job[b"error"] == b"ValueError: boom"
    assert job[b"tb"] == b"Traceback ..."
    assert job[b"updated"] == b"3000"
    assert b"owner" not in job
    assert b"pid" not in job
    assert client.zscore(KEYS.schedule, "t1") == 8_000
    assert client.zcard(KEYS.dlq) == 0
    assert not client.exists(tk.done)
    assert client.llen(KEYS.queue("q")) == 1  # only the original message
    assert history(client)[-1] == {
        "t": 3_000, "e": "retry", "due": 8_000, "error": "ValueError: boom", "fence": fence,
    }  # fmt: skip


def test_dlq_path_kills_the_task(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    outcome = scripts.fail("t1", fence, 3_000, 0, "max_retries", "ValueError: boom", "tb", "w1")
    assert outcome == 2
    assert not client.exists(KEYS.owned("w1"))
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"DEAD"
    assert job[b"reason"] == b"max_retries"
    assert job[b"error"] == b"ValueError: boom"
    assert job[b"tb"] == b"tb"
    assert job[b"finished"] == b"3000"
    assert b"owner" not in job
    assert client.zscore(KEYS.dlq, "t1") == 3_000
    assert client.zcard(KEYS.schedule) == 0
    assert client.lrange(tk.done, 0, -1) == [b"DEAD"]
    # The DLQ keeps its entries until someone deals with them.
    for key in (tk.job, tk.hist, tk.done):
        assert client.ttl(key) == -1
    assert history(client)[-1] == {
        "t": 3_000, "e": "dead", "reason": "max_retries", "error": "ValueError: boom",
        "fence": fence,
    }  # fmt: skip


def test_stale_fence_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    stale = running(scripts)
    client.hset(KEYS.task("t1").job, "state", "PENDING")
    current = scripts.claim("t1", "w2", 2_500).fence
    assert scripts.fail("t1", stale, 3_000, 9_000, "", "late", "tb", "w2") == 0
    assert scripts.fail("t1", stale, 3_000, 0, "max_retries", "late", "tb", "w2") == 0
    assert client.sismember(KEYS.owned("w2"), "t1")
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"state"] == b"RUNNING"
    assert job[b"fence"] == str(current).encode()
    assert b"error" not in job
    assert client.zcard(KEYS.schedule) == 0
    assert client.zcard(KEYS.dlq) == 0
    assert not client.exists(KEYS.task("t1").done)
    assert [e["e"] for e in history(client)[-2:]] == ["stale_commit", "stale_commit"]
    assert history(client)[-1]["fence"] == stale


@pytest.mark.parametrize("state", ["PENDING", "SUCCEEDED", "RETRYING", "DEAD"])
def test_fail_needs_a_running_task(scripts: Scripts, client: redis.Redis, state: str) -> None:
    fence = running(scripts)
    client.hset(KEYS.task("t1").job, mapping={"state": state, "fence": fence + 1})
    assert scripts.fail("t1", fence, 3_000, 0, "max_retries", "e", "tb") == 0
    assert client.hget(KEYS.task("t1").job, "state") == state.encode()
    assert client.zcard(KEYS.dlq) == 0


@pytest.mark.parametrize(("due", "outcome"), [(5_000, 1), (0, 2)])
def test_repeated_fail_of_the_same_attempt_reports_its_outcome(
    scripts: Scripts, client: redis.Redis, due: int, outcome: int
) -> None:
    # Retried after its reply was lost: same outcome, nothing written again.
    fence = running(scripts)
    assert scripts.fail("t1", fence, 3_000, due, "max_retries", "e", "tb") == outcome
    before = client.hgetall(KEYS.task("t1").job)
    assert scripts.fail("t1", fence, 3_001, due, "max_retries", "e", "tb") == outcome
    assert client.hgetall(KEYS.task("t1").job) == before


def test_fail_of_a_missing_task_writes_nothing(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.fail("gone", 1, 3_000, 0, "max_retries", "e", "tb") == 0
    assert client.dbsize() == 0
