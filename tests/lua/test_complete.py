"""complete.lua: commit a successful attempt only with the current fence."""

from __future__ import annotations

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS, history, running


def test_matching_fence_commits(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    assert scripts.complete("t1", fence, b'{"ok":true}', 3_000, 60, "w1") is True
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"SUCCEEDED"
    assert job[b"result"] == b'{"ok":true}'
    assert job[b"finished"] == job[b"updated"] == b"3000"
    assert b"owner" not in job
    assert b"pid" not in job
    assert not client.exists(KEYS.owned("w1"))
    assert client.lrange(tk.done, 0, -1) == [b"SUCCEEDED"]
    assert history(client)[-1] == {"t": 3_000, "e": "succeeded", "fence": fence}


def test_commit_sets_the_result_ttl_on_job_hist_and_done(
    scripts: Scripts, client: redis.Redis
) -> None:
    fence = running(scripts)
    scripts.complete("t1", fence, b"1", 3_000, 60)
    tk = KEYS.task("t1")
    for key in (tk.job, tk.hist, tk.done):
        assert 55 <= client.ttl(key) <= 60, key


def test_stale_fence_is_refused_and_recorded(scripts: Scripts, client: redis.Redis) -> None:
    stale = running(scripts)
    # The task was resurrected: a newer attempt holds a larger fence.
    client.hset(KEYS.task("t1").job, "state", "PENDING")
    current = scripts.claim("t1", "w2", 2_500).fence
    assert scripts.complete("t1", stale, b'"zombie"', 3_000, 60, "w1") is False
    assert client.sismember(KEYS.owned("w2"), "t1")
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"RUNNING"
    assert job[b"fence"] == str(current).encode()
    assert b"result" not in job
    assert not client.exists(tk.done)
    assert client.ttl(tk.job) == -1
    assert history(client)[-1] == {
        "t": 3_000,
        "e": "stale_commit",
        "fence": stale,
        "state": "RUNNING",
    }
    assert scripts.complete("t1", current, b'"real"', 3_100, 60, "w2") is True
    assert client.hget(tk.job, "result") == b'"real"'
    assert not client.exists(KEYS.owned("w2"))


@pytest.mark.parametrize("state", ["PENDING", "SUCCEEDED", "DEAD", "RETRYING"])
def test_commit_needs_a_running_task(scripts: Scripts, client: redis.Redis, state: str) -> None:
    fence = running(scripts)
    client.hset(KEYS.task("t1").job, mapping={"state": state, "fence": fence + 1})
    assert scripts.complete("t1", fence, b"1", 3_000, 60) is False
    assert client.hget(KEYS.task("t1").job, "state") == state.encode()
    assert history(client)[-1]["e"] == "stale_commit"


def test_repeated_commit_of_the_same_attempt_changes_nothing(
    scripts: Scripts, client: redis.Redis
) -> None:
    # A commit retried after its reply was lost (a Redis restart) reports
    # success: the attempt did commit. It writes nothing a second time.
    fence = running(scripts)
    assert scripts.complete("t1", fence, b"1", 3_000, 60)
    events = len(history(client))
    assert scripts.complete("t1", fence, b"2", 3_001, 60)
    assert client.hget(KEYS.task("t1").job, "result") == b"1"
    assert client.lrange(KEYS.task("t1").done, 0, -1) == [b"SUCCEEDED"]
    assert len(history(client)) == events


def test_commit_of_a_missing_task_writes_nothing(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.complete("gone", 1, b"1", 3_000, 60) is False
    tk = KEYS.task("gone")
    assert client.exists(tk.job, tk.hist, tk.done) == 0
