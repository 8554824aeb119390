"""dlq_purge.lua: a DEAD task's keys and DLQ entry go in one step; nothing else is touched."""

from __future__ import annotations

import pytest
import redis

from relier.journal.scripts import Outcome, Scripts
from tests.lua.journal import KEYS, running


def dead(scripts: Scripts) -> None:
    fence = running(scripts)
    assert scripts.fail("t1", fence, 3_000, 0, "max_retries", "ValueError: x", "tb") == 2


def test_a_dead_task_is_deleted_with_its_dlq_entry(scripts: Scripts, client: redis.Redis) -> None:
    dead(scripts)
    tk = KEYS.task("t1")
    assert client.exists(tk.job, tk.hist, tk.done) == 3
    assert scripts.dlq_purge("t1") == Outcome(True, "DEAD")
    assert client.exists(tk.job, tk.hist, tk.done) == 0
    assert client.zcard(KEYS.dlq) == 0
    assert scripts.dlq_purge("t1") == Outcome(False, "MISSING")


@pytest.mark.parametrize("state", ["RUNNING", "SUCCEEDED"])
def test_a_task_that_is_not_dead_is_refused(
    scripts: Scripts, client: redis.Redis, state: str
) -> None:
    fence = running(scripts)
    if state == "SUCCEEDED":
        scripts.complete("t1", fence, b"1", 3_000, 60)
    assert scripts.dlq_purge("t1") == Outcome(False, state)
    assert client.hget(KEYS.task("t1").job, "state") == state.encode()
    assert client.exists(KEYS.task("t1").hist)


def test_a_dlq_entry_without_journal_is_removed(scripts: Scripts, client: redis.Redis) -> None:
    client.zadd(KEYS.dlq, {"orphan": 1_000})
    assert scripts.dlq_purge("orphan") == Outcome(True, "MISSING")
    assert client.dbsize() == 0


def test_an_unknown_id_is_refused(scripts: Scripts, client: redis.Redis) -> None:
    assert scripts.dlq_purge("never") == Outcome(False, "MISSING")
    assert client.dbsize() == 0
