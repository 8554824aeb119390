"""resurrect.lua: a task a worker held goes back to its queue, or to the DLQ as a poison pill."""

from __future__ import annotations

import json

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS, history, pending, queued_tags

MAX_RES = 3
MAX_WORKER_DEATHS = 5


def resurrect(scripts: Scripts, kind: str, owner: str = "w1", tag: str = "tag1") -> list[str]:
    result: list[str] = scripts.resurrect(
        "t1", owner, "q", 5_000, tag, kind, MAX_RES, MAX_WORKER_DEATHS
    )
    return result


def running(scripts: Scripts, owner: str = "w1") -> int:
    return scripts.claim("t1", owner, 2_000, 42).fence


def test_child_death_requeues_and_counts(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    running(scripts)
    assert resurrect(scripts, "child") == ["requeued", "RUNNING"]
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"state"] == b"PENDING"
    assert job[b"res"] == b"1"
    assert b"res_w" not in job
    assert b"owner" not in job
    assert b"pid" not in job
    assert job[b"updated"] == b"5000"
    assert not client.exists(KEYS.owned("w1"))
    # At the consuming (right) end: the front of the queue, next to be taken.
    assert queued_tags(client) == ["tag0", "tag1"]
    raw = client.lindex(KEYS.queue("q"), -1)
    assert raw is not None
    message = json.loads(raw)
    assert message["headers"]["id"] == "t1"
    assert history(client)[-1] == {
        "t": 5_000, "e": "resurrected", "kind": "child", "from": "w1", "was": "RUNNING",
        "count": 1,
    }  # fmt: skip


def test_resurrected_task_runs_with_a_larger_fence_and_the_zombie_cannot_commit(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    zombie = running(scripts)
    resurrect(scripts, "worker_sole")
    fresh = scripts.claim("t1", "w2", 6_000)
    assert fresh.run
    assert fresh.fence > zombie
    assert not scripts.complete("t1", zombie, b'"zombie"', 7_000, 60, "w1")
    assert scripts.complete("t1", fresh.fence, b'"ok"', 7_100, 60, "w2")
    assert client.hget(KEYS.task("t1").job, "result") == b'"ok"'


def test_sole_worker_death_counts_like_a_child_death(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    running(scripts)
    assert resurrect(scripts, "worker_sole") == ["requeued", "RUNNING"]
    assert client.hget(KEYS.task("t1").job, "res") == b"1"


def test_whole_worker_death_counts_apart(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    running(scripts)
    assert resurrect(scripts, "worker") == ["requeued", "RUNNING"]
    job = client.hgetall(KEYS.task("t1").job)
    assert (job[b"res"], job[b"res_w"]) == (b"0", b"1")
    assert history(client)[-1]["count"] == 1


@pytest.mark.parametrize("kind", ["child", "worker_sole", "worker", "handoff", "handoff_reserved"])
def test_reserved_task_is_requeued_without_counting(
    scripts: Scripts, client: redis.Redis, kind: str
) -> None:
    pending(scripts)
    scripts.reserve("t1", "w1", 1_500)
    assert resurrect(scripts, kind) == ["requeued", "RESERVED"]
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"state"] == b"PENDING"
    assert (job[b"res"], job.get(b"res_w")) == (b"0", None)
    assert not client.exists(KEYS.owned("w1"))
    assert "count" not in history(client)[-1]
    assert queued_tags(client) == ["tag0", "tag1"]


def test_handoff_of_a_running_task_requeues_without_counting(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    running(scripts)
    assert resurrect(scripts, "handoff") == ["requeued", "RUNNING"]
    assert client.hget(KEYS.task("t1").job, "res") == b"0"
    assert history(client)[-1] == {
        "t": 5_000, "e": "handoff", "kind": "handoff", "from": "w1", "was": "RUNNING",
    }  # fmt: skip


def test_handoff_reserved_leaves_a_running_task_owned(
    scripts: Scripts, client: redis.Redis
) -> None:
    # On SIGTERM reserved tasks are handed back and running ones keep running.
    # A running one must stay in the worker's owned set: the grace-period
    # handoff, the exit cleanup and (if the worker is killed) the resurrector
    # all find the work to take back there.
    pending(scripts)
    running(scripts)
    before = client.hgetall(KEYS.task("t1").job)
    assert resurrect(scripts, "handoff_reserved") == ["skipped", "RUNNING"]
    assert client.hgetall(KEYS.task("t1").job) == before
    assert queued_tags(client) == ["tag0"]
    assert client.smembers(KEYS.owned("w1")) == {b"t1"}
    assert resurrect(scripts, "handoff") == ["requeued", "RUNNING"]


def test_poison_pill_goes_to_the_dlq(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    for n in range(1, MAX_RES):
        running(scripts)
        assert resurrect(scripts, "child", tag=f"tag{n}") == ["requeued", "RUNNING"]
    running(scripts)
    assert resurrect(scripts, "child", tag="last") == ["dead", str(MAX_RES)]
    tk = KEYS.task("t1")
    job = client.hgetall(tk.job)
    assert job[b"state"] == b"DEAD"
    assert job[b"reason"] == b"poison_pill"
    assert job[b"error"] == f"killed its worker {MAX_RES} times (child deaths)".encode()
    assert job[b"finished"] == b"5000"
    assert client.zscore(KEYS.dlq, "t1") == 5_000
    assert client.lrange(tk.done, 0, -1) == [b"DEAD"]
    assert "last" not in queued_tags(client)
    assert [e["e"] for e in history(client)[-2:]] == ["resurrected", "dead"]
    assert history(client)[-1]["reason"] == "poison_pill"


def test_innocent_neighbours_survive_many_worker_deaths(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    for n in range(1, MAX_WORKER_DEATHS):
        running(scripts)
        assert resurrect(scripts, "worker", tag=f"w{n}")[0] == "requeued"
    # Precise deaths count apart and do not add up with the imprecise ones.
    for n in range(1, MAX_RES):
        running(scripts)
        assert resurrect(scripts, "child", tag=f"c{n}")[0] == "requeued"
    running(scripts)
    assert resurrect(scripts, "worker") == ["dead", str(MAX_WORKER_DEATHS)]
    assert client.hget(KEYS.task("t1").job, "error") == (
        f"killed its worker {MAX_WORKER_DEATHS} times (worker deaths)".encode()
    )


def test_task_owned_by_another_worker_is_skipped_and_dropped_from_the_set(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    running(scripts, owner="w2")
    client.sadd(KEYS.owned("w1"), "t1")  # stale membership
    assert resurrect(scripts, "worker", owner="w1") == ["skipped", "RUNNING"]
    job = client.hgetall(KEYS.task("t1").job)
    assert (job[b"state"], job[b"owner"]) == (b"RUNNING", b"w2")
    assert not client.exists(KEYS.owned("w1"))
    assert client.smembers(KEYS.owned("w2")) == {b"t1"}
    assert queued_tags(client) == ["tag0"]


@pytest.mark.parametrize("state", ["PENDING", "RETRYING", "SUCCEEDED", "DEAD"])
def test_task_that_moved_on_is_skipped(scripts: Scripts, client: redis.Redis, state: str) -> None:
    pending(scripts)
    running(scripts)
    client.hset(KEYS.task("t1").job, "state", state)
    assert resurrect(scripts, "worker") == ["skipped", state]
    assert client.hget(KEYS.task("t1").job, "state") == state.encode()
    assert not client.exists(KEYS.owned("w1"))
    assert queued_tags(client) == ["tag0"]


def test_missing_task_is_skipped(scripts: Scripts, client: redis.Redis) -> None:
    client.sadd(KEYS.owned("w1"), "t1")
    assert resurrect(scripts, "worker") == ["skipped", "MISSING"]
    assert client.dbsize() == 0


def test_child_death_moves_only_the_task_running_in_that_process(
    scripts: Scripts, client: redis.Redis
) -> None:
    pending(scripts)
    running(scripts)  # pid 42
    args = ("t1", "w1", "q", 5_000, "tag1", "child", MAX_RES, MAX_WORKER_DEATHS)
    assert scripts.resurrect(*args, pid=99) == ["skipped", "RUNNING"]
    assert client.hget(KEYS.task("t1").job, "state") == b"RUNNING"
    assert client.smembers(KEYS.owned("w1")) == {b"t1"}
    assert queued_tags(client) == ["tag0"]
    assert scripts.resurrect(*args, pid=42) == ["requeued", "RUNNING"]
    assert client.hget(KEYS.task("t1").job, "res") == b"1"


def test_child_death_leaves_a_reserved_task_alone(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    scripts.reserve("t1", "w1", 1_500)
    args = ("t1", "w1", "q", 5_000, "tag1", "child", MAX_RES, MAX_WORKER_DEATHS)
    assert scripts.resurrect(*args, pid=42) == ["skipped", "RESERVED"]
    assert client.smembers(KEYS.owned("w1")) == {b"t1"}
