"""dlq_release.lua: a DEAD task runs again, fresh counts, a larger fence; nothing else moves."""

from __future__ import annotations

import pytest
import redis

from relier.journal.keys import STATS_TTL_S
from relier.journal.scripts import Outcome, Scripts
from tests.lua.journal import KEYS, history, pending, queued_tags, running


def dead(scripts: Scripts) -> int:
    """``t1`` dead after one failed attempt at t=3_000; that attempt's fence."""
    fence = running(scripts)
    scripts.checkpoint("t1", fence, b'{"step":1}', 2_500)
    assert scripts.fail("t1", fence, 3_000, 0, "max_retries", "ValueError: x", "tb") == 2
    return fence


def test_a_dead_task_is_published_again_as_a_fresh_run(
    scripts: Scripts, client: redis.Redis
) -> None:
    fence = dead(scripts)
    assert scripts.dlq_release("t1", "q", 9_000, "tag1") == Outcome(True, str(fence + 1))
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"PENDING"
    assert (job[b"attempt"], job[b"failures"], job[b"res"], job[b"res_w"]) == (b"0",) * 4
    assert job[b"fence"] == str(fence + 1).encode()
    assert job[b"updated"] == b"9000"
    for gone in (b"reason", b"error", b"tb", b"finished", b"owner", b"pid", b"progress", b"claim"):
        assert gone not in job, gone
    assert job[b"env"] and job[b"created"] == b"1000"  # the original payload and push time
    assert client.zscore(KEYS.dlq, "t1") is None
    assert not client.exists(tk.done)
    assert queued_tags(client) == ["tag1", "tag0"]  # LPUSH: behind the queue, like a push
    assert history(client)[-1] == {
        "t": 9_000, "e": "released", "fence": fence + 1, "was": "max_retries", "attempts": 1
    }  # fmt: skip
    bucket = KEYS.stats(9_000)
    assert client.hget(bucket, "released") == b"1"
    assert 0 < client.ttl(bucket) <= STATS_TTL_S


def test_the_released_run_claims_the_next_fence_and_the_dead_run_cannot_commit(
    scripts: Scripts, client: redis.Redis
) -> None:
    old = dead(scripts)
    scripts.dlq_release("t1", "q", 9_000, "tag1")
    assert scripts.complete("t1", old, b"1", 9_100, 60) is False  # a zombie of the dead run
    claim = scripts.claim("t1", "w2", 9_200, 7)
    assert claim.run and (claim.attempt, claim.fence, claim.failures) == (1, old + 2, 0)
    assert claim.progress is None
    assert scripts.checkpoint("t1", old, b"{}", 9_300) is False
    assert scripts.complete("t1", old + 2, b"1", 9_400, 60) is True
    assert client.hget(KEYS.task("t1").job, "state") == b"SUCCEEDED"


def test_releasing_twice_publishes_once(scripts: Scripts, client: redis.Redis) -> None:
    dead(scripts)
    assert scripts.dlq_release("t1", "q", 9_000, "tag1").done
    assert scripts.dlq_release("t1", "q", 9_001, "tag2") == Outcome(False, "PENDING")
    assert queued_tags(client) == ["tag1", "tag0"]
    assert [e["e"] for e in history(client)].count("released") == 1


def test_a_poison_pill_gets_its_crash_count_back(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    for n in range(3):
        scripts.claim("t1", "w1", 2_000 + n, 42)
        scripts.resurrect("t1", "w1", "q", 2_500 + n, f"r{n}", "child", 3, 100)
    assert client.hget(KEYS.task("t1").job, "reason") == b"poison_pill"
    assert scripts.dlq_release("t1", "q", 9_000, "tag1").done
    assert client.hget(KEYS.task("t1").job, "res") == b"0"


@pytest.mark.parametrize("state", ["PENDING", "RUNNING", "SUCCEEDED", "RETRYING"])
def test_a_task_that_is_not_dead_is_refused_and_left_alone(
    scripts: Scripts, client: redis.Redis, state: str
) -> None:
    fence = running(scripts)
    if state == "PENDING":
        scripts.resurrect("t1", "w1", "q", 2_500, "r", "handoff", 3, 100)
    elif state == "SUCCEEDED":
        scripts.complete("t1", fence, b"1", 3_000, 60)
    elif state == "RETRYING":
        scripts.fail("t1", fence, 3_000, 9_000, "", "e", "tb")
    tk = KEYS.task("t1")
    before = (client.hgetall(tk.job), client.lrange(tk.hist, 0, -1), queued_tags(client))
    assert scripts.dlq_release("t1", "q", 9_000, "tag1") == Outcome(False, state)
    assert (client.hgetall(tk.job), client.lrange(tk.hist, 0, -1), queued_tags(client)) == before
    assert client.hget(KEYS.stats(9_000), "released") is None


def test_a_missing_task_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.dlq_release("gone", "q", 9_000, "tag1") == Outcome(False, "MISSING")
    assert client.dbsize() == 0


def test_a_queue_that_changed_since_the_caller_read_it_is_refused(
    scripts: Scripts, client: redis.Redis
) -> None:
    dead(scripts)
    assert scripts.dlq_release("t1", "other", 9_000, "tag1") == Outcome(False, "QUEUE")
    assert client.llen(KEYS.queue("other")) == 0
    assert client.hget(KEYS.task("t1").job, "state") == b"DEAD"
    assert client.zscore(KEYS.dlq, "t1") == 3_000
