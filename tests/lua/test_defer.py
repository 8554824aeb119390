"""defer.lua: a call too new for the worker goes back to PENDING, fenced, then to the DLQ."""

from __future__ import annotations

import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS, history, pending, queued_tags, running

DELAYS = (1_000, 4_000)
BOUND = 60_000
ERROR = "too new"


def defer(scripts: Scripts, fence: int, now: int, owner: str = "w1") -> tuple[int, int]:
    return scripts.defer("t1", fence, now, owner, DELAYS, BOUND, (3, 2), ERROR)


def test_defer_puts_the_task_back_to_pending_in_the_schedule(
    scripts: Scripts, client: redis.Redis
) -> None:
    fence = running(scripts)
    assert defer(scripts, fence, 3_000) == (1, 4_000)
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"PENDING"
    assert job[b"due"] == b"4000"
    assert job[b"updated"] == job[b"deferred_since"] == b"3000"
    assert b"owner" not in job and b"pid" not in job
    # The attempt never ran the function: it is rolled back, the fence is not.
    assert (job[b"attempt"], job[b"fence"]) == (b"0", str(fence).encode())
    assert b"failures" not in job and b"error" not in job
    assert not client.exists(KEYS.owned("w1"))
    assert client.zscore(KEYS.schedule, "t1") == 4_000
    assert client.zcard(KEYS.dlq) == 0 and not client.exists(tk.done)
    assert history(client)[-1] == {
        "t": 3_000, "e": "deferred", "reason": "schema_too_new", "sv": 3, "known": 2,
        "due": 4_000, "fence": fence,
    }  # fmt: skip


def test_the_scheduler_republishes_it_and_the_next_claim_is_attempt_one_again(
    scripts: Scripts, client: redis.Redis
) -> None:
    fence = running(scripts)
    defer(scripts, fence, 3_000)
    assert scripts.requeue("t1", "q", 4_000, "tag1") == 1
    assert queued_tags(client) == ["tag1", "tag0"]
    claim = scripts.claim("t1", "w2", 4_100)
    assert claim.run and (claim.attempt, claim.fence) == (1, fence + 1)
    assert [e["e"] for e in history(client)] == [
        "dispatched", "started", "deferred", "requeued", "started",
    ]  # fmt: skip


def test_the_delay_doubles_up_to_the_longest(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    dues = []
    for n in range(4):
        now = 10_000 * (n + 1)
        fence = scripts.claim("t1", "w1", now).fence
        dues.append(defer(scripts, fence, now + 1)[1] - (now + 1))
    assert dues == [1_000, 2_000, 4_000, 4_000]
    assert client.hget(KEYS.task("t1").job, "defers") == b"4"
    # The bound counts from the first deferral, not the latest.
    assert client.hget(KEYS.task("t1").job, "deferred_since") == b"10001"


def test_the_last_wait_ends_at_the_bound(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    fence = scripts.claim("t1", "w1", 2_000).fence
    assert scripts.defer("t1", fence, 2_000, "w1", (1_000, 30_000), 1_500, (2, 1), ERROR) == (
        1,
        3_000,
    )
    fence = scripts.claim("t1", "w1", 3_000).fence
    # 2 s would pass the bound (2_000 + 1_500): due at the bound instead.
    assert scripts.defer("t1", fence, 3_000, "w1", (1_000, 30_000), 1_500, (2, 1), ERROR) == (
        1,
        3_500,
    )


def test_an_attempt_that_ran_in_between_starts_the_bound_and_backoff_anew(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    for now in (2_000, 3_000):
        defer(scripts, scripts.claim("t1", "w1", now).fence, now)
    # A newer worker runs it, and it fails: its retry reaches an old worker.
    fence = scripts.claim("t1", "w2", 5_000).fence
    assert scripts.fail("t1", fence, 5_100, 6_000, "", "E: boom", "tb", "w2") == 1
    assert scripts.requeue("t1", "q", 6_000, "tag1") == 1
    now = 2_000 + BOUND
    assert defer(scripts, scripts.claim("t1", "w1", now).fence, now) == (1, now + 1_000)
    job = client.hgetall(KEYS.task("t1").job)
    assert (job[b"deferred_since"], job[b"defers"]) == (str(now).encode(), b"1")


def test_past_the_bound_it_goes_to_the_dlq(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    fence = scripts.claim("t1", "w1", 2_000).fence
    defer(scripts, fence, 2_000)
    fence = scripts.claim("t1", "w1", 2_000 + BOUND).fence
    assert defer(scripts, fence, 2_000 + BOUND) == (2, 0)
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"DEAD"
    assert (job[b"reason"], job[b"error"]) == (b"schema_too_new", ERROR.encode())
    assert job[b"finished"] == job[b"updated"] == str(2_000 + BOUND).encode()
    assert job[b"attempt"] == b"0"  # the function never ran
    # Released from the DLQ, it would start a new run of deferrals.
    assert not {b"deferred_since", b"deferred_fence", b"defers"} & set(job)
    assert b"owner" not in job
    assert not client.exists(KEYS.owned("w1"))
    assert client.zscore(KEYS.dlq, "t1") == 2_000 + BOUND
    assert client.zscore(KEYS.schedule, "t1") is None
    assert client.lrange(tk.done, 0, -1) == [b"DEAD"]
    assert history(client)[-1] == {
        "t": 2_000 + BOUND, "e": "dead", "reason": "schema_too_new", "error": ERROR,
        "fence": fence,
    }  # fmt: skip


def test_a_stale_fence_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    client.hset(KEYS.task("t1").job, "state", "PENDING")
    newer = scripts.claim("t1", "w2", 2_500).fence  # the task was taken back and claimed again
    before = client.hgetall(KEYS.task("t1").job)
    assert defer(scripts, fence, 3_000) == (0, 0)
    assert client.hgetall(KEYS.task("t1").job) == before
    assert client.zcard(KEYS.schedule) == 0
    assert client.sismember(KEYS.owned("w2"), "t1")
    assert history(client)[-1] == {
        "t": 3_000, "e": "stale_commit", "fence": fence, "state": "RUNNING",
    }  # fmt: skip
    assert newer == fence + 1


def test_a_finished_task_is_not_deferred(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    assert scripts.complete("t1", fence, b"1", 2_500, 60, "w1")
    assert defer(scripts, fence, 3_000) == (0, 0)
    assert client.hget(KEYS.task("t1").job, "state") == b"SUCCEEDED"
    assert scripts.defer("nope", 1, 3_000, "w1", DELAYS, BOUND, (3, 2), ERROR) == (0, 0)
    assert not client.exists(KEYS.task("nope").hist)


def test_a_retried_call_reports_what_it_did_once(scripts: Scripts, client: redis.Redis) -> None:
    fence = running(scripts)
    first = defer(scripts, fence, 3_000)
    # The reply was lost (a Redis failover): the worker calls again.
    assert defer(scripts, fence, 3_200) == first
    assert [e["e"] for e in history(client)].count("deferred") == 1
    assert client.hget(KEYS.task("t1").job, "attempt") == b"0"
    # The same for a dead-lettering call.
    fence = scripts.claim("t1", "w1", 3_000 + BOUND).fence
    assert defer(scripts, fence, 3_000 + BOUND) == (2, 0)
    assert defer(scripts, fence, 3_100 + BOUND) == (2, 0)
    assert [e["e"] for e in history(client)].count("dead") == 1
