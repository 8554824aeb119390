"""claim.lua: a delivery starts a new fenced attempt, or is dropped by state."""

from __future__ import annotations

import json

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS, history, pending


def test_claim_runs_a_pending_task(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    claim = scripts.claim("t1", "w1", 2_000, 42)
    assert claim.run
    assert claim.state == "RUNNING"
    assert (claim.fence, claim.attempt) == (1, 1)
    assert json.loads(claim.envelope)["id"] == "t1"
    assert claim.progress is None
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"state"] == b"RUNNING"
    assert (job[b"owner"], job[b"pid"]) == (b"w1", b"42")
    assert job[b"started"] == job[b"updated"] == b"2000"
    assert (job[b"fence"], job[b"attempt"]) == (b"1", b"1")
    assert client.smembers(KEYS.owned("w1")) == {b"t1"}
    assert history(client)[-1] == {
        "t": 2_000, "e": "started", "owner": "w1", "pid": 42, "attempt": 1, "fence": 1,
    }  # fmt: skip


def test_claim_runs_a_reserved_task(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    client.hset(KEYS.task("t1").job, "state", "RESERVED")
    assert scripts.claim("t1", "w1/1", 2_000).run


def test_each_attempt_gets_a_larger_fence_and_attempt(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    first = scripts.claim("t1", "w1/1", 2_000)
    # A retry (or a resurrection) makes the task claimable again.
    client.hset(KEYS.task("t1").job, "state", "PENDING")
    second = scripts.claim("t1", "w2", 3_000)
    assert second.run
    assert second.fence > first.fence
    assert (second.fence, second.attempt) == (2, 2)
    assert client.hget(KEYS.task("t1").job, "owner") == b"w2"
    assert client.sismember(KEYS.owned("w2"), "t1")


def test_duplicate_claim_is_dropped_with_the_state(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    assert scripts.claim("t1", "w1", 2_000).run
    dup = scripts.claim("t1", "w2", 2_001)
    assert not dup.run
    assert dup.state == "RUNNING"
    job = client.hgetall(KEYS.task("t1").job)
    assert (job[b"fence"], job[b"attempt"], job[b"owner"]) == (b"1", b"1", b"w1")
    assert not client.exists(KEYS.owned("w2"))
    assert [e["e"] for e in history(client)] == ["dispatched", "started"]


@pytest.mark.parametrize("state", ["RUNNING", "SUCCEEDED", "RETRYING", "DEAD", "CANCELLED"])
def test_claim_drops_tasks_that_are_not_claimable(
    scripts: Scripts, client: redis.Redis, state: str
) -> None:
    pending(scripts)
    client.hset(KEYS.task("t1").job, "state", state)
    claim = scripts.claim("t1", "w1/1", 2_000)
    assert (claim.run, claim.state) == (False, state)
    assert client.hget(KEYS.task("t1").job, "fence") == b"0"


def test_claim_of_an_unknown_id_is_missing(scripts: Scripts, client: redis.Redis) -> None:
    claim = scripts.claim("nope", "w1/1", 2_000)
    assert (claim.run, claim.state) == (False, "MISSING")
    assert not client.exists(KEYS.task("nope").job, KEYS.task("nope").hist)


def test_claim_returns_saved_progress(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    client.hset(KEYS.task("t1").job, "progress", b'{"page":3}')
    assert scripts.claim("t1", "w1/1", 2_000).progress == b'{"page":3}'


def test_claim_of_a_task_reserved_by_the_same_worker(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    assert scripts.reserve("t1", "w1", 1_500) == "RESERVED"
    claim = scripts.claim("t1", "w1", 2_000, 7)
    assert claim.run
    assert client.smembers(KEYS.owned("w1")) == {b"t1"}
    assert [e["e"] for e in history(client)] == ["dispatched", "reserved", "started"]


def test_draining_worker_drops_the_delivery(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    client.set(KEYS.draining("w1"), "1")
    before = client.hgetall(KEYS.task("t1").job)
    claim = scripts.claim("t1", "w1", 2_000, 42)
    assert (claim.run, claim.state) == (False, "DRAINING")
    assert client.hgetall(KEYS.task("t1").job) == before
    assert not client.exists(KEYS.owned("w1"))
    # Another worker, not draining, takes it.
    assert scripts.claim("t1", "w2", 2_001).run


def test_finished_task_is_dropped_even_on_a_draining_worker(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    client.hset(KEYS.task("t1").job, "state", "SUCCEEDED")
    client.set(KEYS.draining("w1"), "1")
    assert scripts.claim("t1", "w1", 2_000).state == "SUCCEEDED"
