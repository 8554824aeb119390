"""claim.lua's max_concurrency semaphore and release.lua: a fenced slot per attempt."""

from __future__ import annotations

from typing import cast

import redis

from relier.journal.scripts import Claim, Scripts
from tests.lua.journal import KEYS, NAME, history, pending, queued_tags

SEM = KEYS.semaphore(NAME)
WAIT = KEYS.semaphore_wait(NAME)


def limited(scripts: Scripts, task_id: str, now: int, limit: int = 2, owner: str = "w1") -> Claim:
    return scripts.claim(task_id, owner, now, 42, "", NAME, limit, 1_000)


def test_claims_take_slots_up_to_the_limit_then_wait(scripts: Scripts, client: redis.Redis) -> None:
    for t in ("a", "b", "c"):
        pending(scripts, t)
    assert limited(scripts, "a", 2_000).run
    assert limited(scripts, "b", 2_000).run
    slots = cast("list[tuple[bytes, float]]", client.zrange(SEM, 0, -1, withscores=True))
    assert {m: int(s) for m, s in slots} == {b"a": 1, b"b": 1}
    client.sadd(KEYS.owned("w1"), "c")
    waiting = limited(scripts, "c", 2_500)
    assert (waiting.run, waiting.state) == (False, "WAITING")
    job = client.hgetall(KEYS.task("c").job)
    # Back to PENDING, owned by nobody, re-checked by the scheduler later.
    assert job[b"state"] == b"PENDING" and b"owner" not in job
    assert not client.sismember(KEYS.owned("w1"), "c")
    assert client.zscore(KEYS.schedule, "c") == 3_500
    assert client.zscore(WAIT, "c") == 2_500
    assert history(client, "c")[-1] == {
        "t": 2_500, "e": "waiting", "reason": "max_concurrency", "limit": 2,
    }  # fmt: skip


def test_a_task_that_keeps_waiting_is_rechecked_with_backoff_and_one_event(
    scripts: Scripts, client: redis.Redis
) -> None:
    for t in ("a", "c"):
        pending(scripts, t)
    assert limited(scripts, "a", 2_000, limit=1).run
    dues = []
    for _ in range(6):
        assert limited(scripts, "c", 10_000, limit=1).state == "WAITING"
        dues.append(int(client.zscore(KEYS.schedule, "c") or 0) - 10_000)
    assert dues == [1_000, 2_000, 4_000, 8_000, 8_000, 8_000]
    assert [e["e"] for e in history(client, "c")].count("waiting") == 1
    # Its place in the wait list is the first time it waited.
    assert client.zscore(WAIT, "c") == 10_000


def test_a_slot_held_by_an_ended_or_resurrected_attempt_is_reclaimed(
    scripts: Scripts, client: redis.Redis
) -> None:
    for t in ("a", "b", "c"):
        pending(scripts, t)
    assert limited(scripts, "a", 2_000).run
    assert limited(scripts, "b", 2_000).run
    # a's worker died and a was resurrected (PENDING); b committed: neither
    # released its slot, and both slots come back at the next claim.
    client.hset(KEYS.task("a").job, "state", "PENDING")
    assert scripts.complete("b", 1, b"1", 3_000, 60, "w1")
    assert limited(scripts, "c", 4_000).run
    assert limited(scripts, "a", 4_000).run
    slots = cast("list[tuple[bytes, float]]", client.zrange(SEM, 0, -1, withscores=True))
    assert {m: int(s) for m, s in slots} == {b"c": 1, b"a": 2}


def test_a_stale_fence_does_not_count_as_a_holder(scripts: Scripts, client: redis.Redis) -> None:
    for t in ("a", "b"):
        pending(scripts, t)
    assert limited(scripts, "a", 2_000, limit=1).run
    # The slot says fence 1, but the job moved on to fence 5 (say, a later
    # attempt claimed without the limit): the fenced entry is no holder.
    client.hset(KEYS.task("a").job, "fence", 5)
    assert limited(scripts, "b", 2_000, limit=1).run


def test_the_same_delivery_claiming_again_keeps_its_slot(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts, "a")
    first = scripts.claim("a", "w1", 2_000, 42, "tok", NAME, 1, 1_000)
    again = scripts.claim("a", "w1", 2_001, 42, "tok", NAME, 1, 1_000)
    assert first.run and again.run and again.fence == first.fence
    assert client.zcard(SEM) == 1


def test_without_a_limit_no_semaphore_key_is_touched(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts, "a")
    assert scripts.claim("a", "w1", 2_000, 42, "", NAME, 0, 1_000).run
    assert not client.exists(SEM, WAIT)


def test_release_frees_the_slot_and_names_the_oldest_live_waiter(
    scripts: Scripts, client: redis.Redis
) -> None:
    for t in ("a", "b", "c", "d"):
        pending(scripts, t, queue="q")
    assert limited(scripts, "a", 2_000, limit=1).run
    assert limited(scripts, "b", 2_100, limit=1).state == "WAITING"
    assert limited(scripts, "c", 2_200, limit=1).state == "WAITING"
    assert limited(scripts, "d", 2_300, limit=1).state == "WAITING"
    # b already ran after its re-check: it is no live waiter any more.
    client.hset(KEYS.task("b").job, "state", "SUCCEEDED")
    assert scripts.release("a", NAME, 1) == ("c", "q")
    assert client.zcard(SEM) == 0
    assert client.zrange(WAIT, 0, -1) == [b"d"]
    # The caller re-publishes the waiter; requeue takes it off the schedule.
    before = len(queued_tags(client))
    assert scripts.requeue("c", "q", 3_000, "tag-c") == 1
    assert len(queued_tags(client)) == before + 1
    assert client.hget(KEYS.task("c").job, "state") == b"PENDING"
    assert scripts.claim("c", "w1", 3_100, 42, "", NAME, 1, 1_000).run


def test_release_by_a_superseded_attempt_keeps_the_newer_holder(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts, "a")
    assert limited(scripts, "a", 2_000, limit=1).run
    client.hset(KEYS.task("a").job, "state", "PENDING")  # resurrected
    assert limited(scripts, "a", 3_000, limit=1).fence == 2
    assert scripts.release("a", NAME, 1) is None  # the zombie's release
    assert client.zscore(SEM, "a") == 2


def test_release_with_nobody_waiting(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts, "a")
    assert limited(scripts, "a", 2_000).run
    assert scripts.release("a", NAME, 1) is None
    assert not client.exists(SEM)


def test_republish_leaves_a_scheduled_task_to_the_scheduler(
    scripts: Scripts, client: redis.Redis
) -> None:
    # A countdown push (and a task waiting for a slot) sits in rl:schedule:
    # an orphan sweep or a restart reconciliation must not publish it early.
    pending(scripts, "a", due=9_000)
    assert scripts.republish("a", "q", 3_000, "tag-x") == 0
    assert queued_tags(client) == []
    client.zrem(KEYS.schedule, "a")
    assert scripts.republish("a", "q", 3_000, "tag-x") == 1
    assert queued_tags(client) == ["tag-x"]
