"""The dead letter queue: reasons, entries, listing and history."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from relier import DeadTask, Reason, Relier, TaskNotFoundError, load_settings, rl_task
from relier.clock import now_ms
from relier.journal.envelope import decode
from relier.journal.scripts import SCRIPT_NAMES, source
from relier.ops.dlq import (
    DeadSummary,
    Purged,
    Released,
    dlq_size,
    find_dead,
    get_dead,
    list_dead,
    purge,
    read_history,
    release,
)
from relier.tasks.dispatch import Call, CallOptions, push


@rl_task(name="tests.dlq.job")
def job(x: int) -> int:
    return x


@pytest.fixture
def rl(rl_redis_url: str) -> Iterator[Relier]:
    instance = Relier(load_settings(redis_url=rl_redis_url))
    yield instance
    instance.close()


def pushed(rl: Relier, *args: object, task_id: str | None = None) -> str:
    return push(rl, job, Call(args, {}, CallOptions(task_id=task_id))).id


def kill(rl: Relier, task_id: str, at: int, attempts: int = 1) -> None:
    for n in range(attempts):
        fence = rl.scripts.claim(task_id, "w/1", at - 10).fence
        if n < attempts - 1:
            assert rl.scripts.fail(task_id, fence, at - 5, at - 4, "", f"E{n}", "tb") == 1
            assert rl.scripts.requeue(task_id, "celery", at - 3, "tag") == 1
    assert (
        rl.scripts.fail(task_id, fence, at, 0, Reason.MAX_RETRIES, "ValueError: 3", "Traceback: x")
        == 2
    )


def test_reasons_are_text() -> None:
    for reason in Reason:
        assert reason == reason.value
        assert f"{reason}" == reason.value
    assert {"max_retries", "not_retryable", "unknown_task", "invalid_payload"} <= set(Reason)


def test_every_reason_the_scripts_write_is_a_reason() -> None:
    # Callers compare DeadTask.reason with Reason members; a reason written
    # only inside Lua (the poison-pill quarantine) must be one of them too.
    written = set()
    for name in SCRIPT_NAMES:
        # Only writes of a DEAD state with a literal reason (not field lists
        # read with HMGET or cleared with HDEL).
        written |= set(re.findall(r"'state', 'DEAD', 'reason', '(\w+)'", source(name)))
    assert written
    assert written <= {r.value for r in Reason}


def test_get_dead_reads_the_whole_entry(rl: Relier) -> None:
    task_id = pushed(rl, 7)
    kill(rl, task_id, at=5_000, attempts=3)
    dead = get_dead(rl, task_id)
    assert isinstance(dead, DeadTask)
    assert dead.id == task_id
    assert dead.task == "tests.dlq.job"
    assert dead.reason == "max_retries"
    assert dead.error == "ValueError: 3"
    assert dead.traceback == "Traceback: x"
    assert dead.attempts == 3
    assert dead.died_ms == 5_000
    assert decode(dead.envelope).args == [7]
    events = [e["e"] for e in dead.history]
    assert events[0] == "dispatched"
    assert events[-1] == "dead"
    assert events.count("started") == 3
    assert events.count("retry") == 2


def test_dead_letter_reason_enum_is_stored_as_text(rl: Relier) -> None:
    task_id = pushed(rl, 1)
    assert rl.scripts.dead_letter(task_id, now_ms(), Reason.UNKNOWN_TASK, "no task x")
    dead = get_dead(rl, task_id)
    assert (dead.reason, dead.error, dead.attempts) == ("unknown_task", "no task x", 0)
    assert dead.history[-1]["reason"] == "unknown_task"


def test_get_dead_of_a_live_or_missing_task(rl: Relier) -> None:
    task_id = pushed(rl, 1)
    with pytest.raises(TaskNotFoundError, match=task_id):
        get_dead(rl, task_id)
    with pytest.raises(TaskNotFoundError):
        get_dead(rl, "never-pushed")


def test_list_dead_newest_first_and_size(rl: Relier) -> None:
    ids = [pushed(rl, n, task_id=f"d{n}") for n in range(5)]
    for n, task_id in enumerate(ids):
        kill(rl, task_id, at=1_000 + n)
    pushed(rl, 99)  # alive, not listed
    assert dlq_size(rl) == 5
    assert list_dead(rl) == ["d4", "d3", "d2", "d1", "d0"]
    assert list_dead(rl, limit=2) == ["d4", "d3"]


def test_empty_dlq(rl: Relier) -> None:
    assert dlq_size(rl) == 0
    assert list_dead(rl) == []


def test_dead_entries_do_not_expire(rl: Relier) -> None:
    task_id = pushed(rl, 1)
    kill(rl, task_id, at=1_000)
    tk = rl.keys.task(task_id)
    assert rl.redis.ttl(tk.job) == -1
    assert rl.redis.ttl(tk.hist) == -1


def test_read_history_is_oldest_first(rl: Relier) -> None:
    task_id = pushed(rl, 1)
    claim = rl.scripts.claim(task_id, "w/9", 2_000)
    rl.scripts.checkpoint(task_id, claim.fence, json.dumps({"p": 1}).encode(), 2_100)
    rl.scripts.complete(task_id, claim.fence, b"1", 2_200, 60)
    events = read_history(rl, task_id)
    assert [e["e"] for e in events] == ["dispatched", "started", "checkpoint", "succeeded"]
    assert events[1]["owner"] == "w/9"
    assert read_history(rl, "never-pushed") == []


# --- find, release, purge ----------------------------------------------------------------


@rl_task(name="tests.dlq.other")
def other(x: int) -> int:
    return x


def test_find_dead_filters_newest_first(rl: Relier) -> None:
    for n in range(4):
        kill(rl, pushed(rl, n, task_id=f"d{n}"), at=1_000 * (n + 1))
    odd = push(rl, other, Call((1,), {}, CallOptions(task_id="o1"))).id
    assert rl.scripts.dead_letter(odd, 5_000, Reason.UNKNOWN_TASK, "no such task")
    rl.redis.zadd(rl.keys.dlq, {"ghost": 6_000})  # an entry whose journal was deleted
    assert [e.id for e in find_dead(rl)] == ["ghost", "o1", "d3", "d2", "d1", "d0"]
    first = find_dead(rl, task="tests.dlq.job")[0]
    assert first == DeadSummary(
        id="d3", task="tests.dlq.job", queue="celery", reason="max_retries",
        error="ValueError: 3", attempts=1, died_ms=4_000,
    )  # fmt: skip
    assert [e.id for e in find_dead(rl, task="tests.dlq.*", reason="unknown_task")] == ["o1"]
    assert [e.id for e in find_dead(rl, since_ms=3_000, before_ms=5_000)] == ["d3", "d2"]
    assert [e.id for e in find_dead(rl, limit=2)] == ["ghost", "o1"]
    ghost = find_dead(rl, since_ms=6_000)[0]
    assert (ghost.task, ghost.reason, ghost.attempts) == ("", "", 0)


def test_find_dead_pages_through_a_large_dlq(rl: Relier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("relier.ops.dlq._BATCH", 2)
    for n in range(5):
        kill(rl, pushed(rl, n, task_id=f"d{n}"), at=1_000 + n)
    assert [e.id for e in find_dead(rl, task="tests.dlq.job")] == [f"d{n}" for n in (4, 3, 2, 1, 0)]
    assert len(find_dead(rl, limit=3)) == 3


def test_release_sends_dead_tasks_back_and_refuses_the_rest(
    rl: Relier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("relier.ops.dlq._BATCH", 2)
    ids = [pushed(rl, n, task_id=f"d{n}") for n in range(3)]
    for task_id in ids:
        kill(rl, task_id, at=1_000)
    alive = pushed(rl, 9)
    seen: list[int] = []
    result = release(rl, [*ids, ids[0], alive, "never"], progress=seen.append)
    assert result == Released(
        released=dict.fromkeys(ids, 2), refused={alive: "PENDING", "never": "MISSING"}
    )
    assert sum(seen) == 5 and len(seen) == 3  # duplicates dropped, batches of 2
    assert dlq_size(rl) == 0
    assert rl.redis.llen("celery") == 4 + 3  # four pushes (never consumed), three releases
    assert read_history(rl, ids[0])[-1]["e"] == "released"
    assert release(rl, ids[:1]).refused == {ids[0]: "PENDING"}


def test_purge_deletes_dead_tasks_only(rl: Relier) -> None:
    ids = [pushed(rl, n, task_id=f"d{n}") for n in range(2)]
    for task_id in ids:
        kill(rl, task_id, at=1_000)
    alive = pushed(rl, 9)
    rl.redis.zadd(rl.keys.dlq, {"ghost": 6_000})
    seen: list[int] = []
    result = purge(rl, [*ids, "ghost", alive, "never"], progress=seen.append)
    assert result == Purged(
        purged=[*ids, "ghost"], refused={alive: "PENDING", "never": "MISSING"}
    )  # fmt: skip
    assert seen == [5]
    assert dlq_size(rl) == 0
    assert not rl.redis.exists(rl.keys.task(ids[0]).job, rl.keys.task(ids[0]).hist)
    assert rl.redis.hget(rl.keys.task(alive).job, "state") == b"PENDING"
