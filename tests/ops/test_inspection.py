"""inspection: status, inflight, workers and task_detail, on a journal set up by the scripts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from relier import Relier, TaskNotFoundError, load_settings, rl_task
from relier.clock import now_ms
from relier.ops.inspection import (
    InflightTask,
    QueueDepth,
    inflight,
    status,
    task_detail,
    workers,
)
from relier.tasks.dispatch import Call, CallOptions, push
from relier.worker.leases import Lease


@rl_task(name="tests.inspection.job")
def job(x: int) -> int:
    return x


@rl_task(name="tests.inspection.other", queue="emails")
def other(x: int) -> int:
    return x


@pytest.fixture
def rl(rl_redis_url: str) -> Iterator[Relier]:
    instance = Relier(load_settings(redis_url=rl_redis_url))
    yield instance
    instance.close()


def pushed(rl: Relier, *args: object, task: object = job, countdown: float | None = None) -> str:
    return push(rl, task, Call(args, {}, CallOptions(countdown=countdown))).id  # type: ignore[arg-type]


def worker(rl: Relier, wid: str = "w1@h#1-aaaaaa") -> Lease:
    lease = Lease(rl, wid, wid.split("#")[0])
    lease.register()
    return lease


def test_inflight_lists_what_workers_hold_longest_first(rl: Relier) -> None:
    now = now_ms()
    worker(rl)
    a, b, c = (pushed(rl, n) for n in range(3))
    d = pushed(rl, 9, task=other)
    rl.scripts.claim(a, "w1@h#1-aaaaaa", now - 5_000, 42)
    rl.scripts.reserve(b, "w1@h#1-aaaaaa", now - 1_000)
    rl.scripts.claim(d, "w1@h#1-aaaaaa", now - 2_000, 43)
    tasks = inflight(rl, now_ms=now)
    assert [(t.id, t.state, t.elapsed_ms) for t in tasks] == [
        (a, "RUNNING", 5_000), (d, "RUNNING", 2_000), (b, "RESERVED", 1_000)
    ]  # fmt: skip
    assert tasks[0] == InflightTask(
        id=a, task="tests.inspection.job", state="RUNNING", queue="celery",
        worker_id="w1@h#1-aaaaaa", worker_alive=True, pid=42, attempt=1, fence=1,
        since_ms=now - 5_000, elapsed_ms=5_000,
    )  # fmt: skip
    assert tasks[2].pid is None
    assert c not in [t.id for t in tasks]  # pending: in no worker's hands
    assert [t.id for t in inflight(rl, task="tests.inspection.o*", now_ms=now)] == [d]
    assert [t.id for t in inflight(rl, queue="celery", now_ms=now)] == [a, b]
    assert inflight(rl, task="nothing.*", now_ms=now) == []


def test_inflight_skips_stale_members_and_marks_dead_workers(rl: Relier) -> None:
    now = now_ms()
    worker(rl, "w1@h#1-aaaaaa")
    worker(rl, "w2@h#2-bbbbbb")
    a, b = pushed(rl, 1), pushed(rl, 2)
    rl.scripts.claim(a, "w1@h#1-aaaaaa", now - 100, 42)
    rl.redis.sadd(rl.keys.owned("w2@h#2-bbbbbb"), a)  # w2's set lags: a is w1's
    rl.scripts.claim(b, "w2@h#2-bbbbbb", now - 50, 7)
    rl.redis.delete(rl.keys.worker("w2@h#2-bbbbbb"))  # w2's lease expired
    tasks = {t.id: t for t in inflight(rl, now_ms=now)}
    assert set(tasks) == {a, b}
    assert tasks[a].worker_id == "w1@h#1-aaaaaa" and tasks[a].worker_alive
    assert tasks[b].worker_id == "w2@h#2-bbbbbb" and not tasks[b].worker_alive


def test_workers_report_lease_age_uptime_and_tasks(rl: Relier) -> None:
    lease = worker(rl)
    worker(rl, "w2@h#2-bbbbbb")
    rl.redis.delete(rl.keys.worker("w2@h#2-bbbbbb"))
    a, b = pushed(rl, 1), pushed(rl, 2)
    rl.scripts.claim(a, lease.worker_id, now_ms(), 42)
    rl.scripts.reserve(b, lease.worker_id, now_ms())
    now = lease.started + 1_500
    alive, dead = workers(rl, now_ms=now)
    assert alive.worker_id == lease.worker_id and alive.alive
    assert (alive.node, alive.pid, alive.uptime_ms) == ("w1@h", os.getpid(), 1_500)
    assert alive.lease_age_ms is not None
    assert 0 <= alive.lease_age_ms < rl.settings.lease_ttl_ms
    assert alive.lease_age_ms + alive.lease_left_ms == rl.settings.lease_ttl_ms
    assert (alive.owned, alive.running, alive.reserved) == (2, 1, 1)
    assert not dead.alive and dead.lease_age_ms is None and dead.lease_left_ms == 0


def test_status_counts_everything(rl: Relier) -> None:
    now = now_ms()
    worker(rl)
    ids = [pushed(rl, n) for n in range(4)]
    pushed(rl, 9, task=other)
    later = pushed(rl, 10, countdown=600)
    rl.scripts.claim(ids[0], "w1@h#1-aaaaaa", now, 42)
    rl.scripts.reserve(ids[1], "w1@h#1-aaaaaa", now)
    fence = rl.scripts.claim(ids[2], "w1@h#1-aaaaaa", now, 43).fence
    rl.scripts.fail(ids[2], fence, now, now - 1, "", "E", "tb")  # a retry, already due
    fence = rl.scripts.claim(ids[3], "w1@h#1-aaaaaa", now, 44).fence
    rl.scripts.fail(ids[3], fence, now, 0, "max_retries", "E", "tb")
    st = status(rl, queues=["empty"], now_ms=now + 1)
    assert (st.workers_alive, st.workers_dead) == (1, 0)
    assert st.queues == [QueueDepth("celery", 4), QueueDepth("emails", 1), QueueDepth("empty", 0)]
    assert (st.running, st.reserved) == (1, 1)
    assert (st.scheduled, st.overdue, st.retrying, st.retrying_exact) == (2, 1, 1, True)
    assert st.dlq == 1
    counts = st.rates.counts
    assert (counts["dispatched"], counts["retried"], counts["dead"]) == (6, 1, 1)
    assert counts["succeeded"] == 0
    assert 50_000 <= st.rates.window_ms <= 60_000
    assert later not in ids


def test_status_says_when_retrying_is_partial(rl: Relier, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("relier.ops.inspection.RETRYING_SCAN_MAX", 2)
    for n in range(3):
        pushed(rl, n, countdown=600)
    st = status(rl)
    assert (st.scheduled, st.retrying, st.retrying_exact) == (3, 0, False)


def test_status_of_an_empty_journal(rl: Relier) -> None:
    st = status(rl)
    assert st.queues == [QueueDepth("celery", 0)]
    assert (st.workers_alive, st.running, st.scheduled, st.dlq) == (0, 0, 0, 0)
    assert set(st.rates.counts.values()) == {0}


def test_task_detail_reads_the_whole_entry(rl: Relier) -> None:
    task_id = pushed(rl, 5)
    claim = rl.scripts.claim(task_id, "w1@h#1-aaaaaa", 2_000, 42)
    rl.scripts.checkpoint(task_id, claim.fence, b'{"step":1}', 2_100)
    rl.scripts.fail(task_id, claim.fence, 2_200, 3_000, "", "ValueError: 1", "Traceback: x")
    d = task_detail(rl, task_id)
    assert (d.id, d.task, d.state, d.queue) == (
        task_id,
        "tests.inspection.job",
        "RETRYING",
        "celery",
    )
    assert (d.attempt, d.fence, d.failures, d.resurrections, d.worker_deaths) == (1, 1, 1, 0, 0)
    assert (d.owner, d.pid, d.started_ms, d.due_ms, d.finished_ms) == (
        None,
        None,
        2_000,
        3_000,
        None,
    )
    assert (d.error, d.traceback, d.progress, d.result) == (
        "ValueError: 1", "Traceback: x", '{"step":1}', None
    )  # fmt: skip
    assert '"a":[5]' in d.envelope
    assert [e["e"] for e in d.history] == ["dispatched", "started", "checkpoint", "retry"]
    assert "msg" not in d.extra and "claim" not in d.extra and "env" not in d.extra


def test_task_detail_of_an_unknown_id(rl: Relier) -> None:
    with pytest.raises(TaskNotFoundError, match="never-pushed"):
        task_detail(rl, "never-pushed")
