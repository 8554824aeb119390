"""reserve.lua: a worker takes ownership of a received, not yet started task."""

from __future__ import annotations

import pytest
import redis

from relier.journal.scripts import Scripts
from tests.lua.journal import KEYS, history, pending


def test_pending_task_is_reserved(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    assert scripts.reserve("t1", "w1", 1_500) == "RESERVED"
    job = client.hgetall(KEYS.task("t1").job)
    assert job[b"state"] == b"RESERVED"
    assert job[b"owner"] == b"w1"
    assert job[b"updated"] == b"1500"
    assert (job[b"fence"], job[b"attempt"]) == (b"0", b"0")
    assert client.smembers(KEYS.owned("w1")) == {b"t1"}
    assert history(client)[-1] == {"t": 1_500, "e": "reserved", "owner": "w1"}


@pytest.mark.parametrize("state", ["RUNNING", "RETRYING", "SUCCEEDED", "DEAD"])
def test_other_states_are_left_alone(scripts: Scripts, client: redis.Redis, state: str) -> None:
    pending(scripts)
    client.hset(KEYS.task("t1").job, "state", state)
    before = client.hgetall(KEYS.task("t1").job)
    assert scripts.reserve("t1", "w1", 1_500) == state
    assert client.hgetall(KEYS.task("t1").job) == before
    assert not client.exists(KEYS.owned("w1"))
    assert history(client)[-1]["e"] == "dispatched"


def test_second_reservation_keeps_the_first_owner(scripts: Scripts, client: redis.Redis) -> None:
    pending(scripts)
    scripts.reserve("t1", "w1", 1_500)
    assert scripts.reserve("t1", "w2", 1_600) == "RESERVED"
    assert client.hget(KEYS.task("t1").job, "owner") == b"w1"
    assert not client.exists(KEYS.owned("w2"))


def test_missing_task(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.reserve("gone", "w1", 1_500) == "MISSING"
    assert client.dbsize() == 0
