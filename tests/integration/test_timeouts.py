"""Soft and hard timeouts in real ``rl worker`` processes, async and sync."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from relier import Reason, Relier, TaskFailedError
from relier.ops.dlq import get_dead, read_history
from relier.testing import WorkerFactory, WorkerProcess
from relier.worker.children import process_alive
from relier.worker.timeouts import EXIT_CODE
from tests.integration.apps import timeouts as apps

APP = "tests.integration.apps.timeouts"


def notes(r: Relier, key: str) -> list[Any]:
    return [json.loads(n) for n in r.redis.lrange(f"rl-test:notes:{key}", 0, -1)]


def events(r: Relier, task_id: str, name: str | None = None) -> list[dict[str, Any]]:
    return [e for e in read_history(r, task_id) if name is None or e["e"] == name]


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return found


def assert_dead_of_hard_timeout(r: Relier, task_id: str, seconds: float, attempts: int) -> None:
    """DEAD with reason hard_timeout, counted as failures, never as crashes."""
    dead = get_dead(r, task_id)
    assert dead.reason == Reason.HARD_TIMEOUT
    assert dead.attempts == attempts
    assert dead.error == f"HardTimeoutError: {dead.task} exceeded its hard_timeout of {seconds:g} s"
    history = events(r, task_id)
    assert [e for e in history if e["e"] == "resurrected"] == []
    assert [e["reason"] for e in history if e["e"] == "dead"] == ["hard_timeout"]
    job = r.redis.hgetall(r.keys.task(task_id).job)
    assert int(job.get(b"res", 0)) == 0 and int(job.get(b"res_w", 0)) == 0
    assert int(job[b"failures"]) == attempts


def assert_serves_with_fresh_processes(
    r: Relier, worker: WorkerProcess, replaced: set[int]
) -> None:
    """The stuck processes are gone and the worker runs new tasks in others."""
    for pid in replaced:
        # mypy cannot type a lambda with a default argument.
        wait_until(lambda pid=pid: not process_alive(pid), 5, f"pool process {pid} to exit")  # type: ignore[misc]
    served = {apps.pid.push().result(timeout=20) for _ in range(6)}
    assert served and not served & replaced
    assert all(process_alive(pid) for pid in served)
    assert f"exited with 'exitcode {EXIT_CODE}'" in worker.log()


def test_soft_timeout_calls_the_hook_and_the_task_runs_on(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    worker = rl_worker(APP, concurrency=4)
    sync, async_ = apps.slow.push(1.0), apps.aslow.push(1.0)
    no_hook, broken = apps.no_hook.push(0.6), apps.broken_hook.push(0.6)
    # The hook's checkpoint is visible to the attempt that is still running...
    assert sync.result(timeout=20) == {"saved_by": "hook", "attempt": 1}
    assert async_.result(timeout=20) == {"saved_by": "async hook", "attempt": 1}
    # ...and a missing or failing hook changes nothing but the log.
    assert no_hook.result(timeout=20) == "done"
    assert broken.result(timeout=20) == "done"
    for handle, seconds in ((sync, 0.3), (async_, 0.3), (no_hook, 0.2), (broken, 0.2)):
        history = events(rl, handle.id)
        names = [e["e"] for e in history]
        assert names.count("soft_timeout") == 1
        [soft] = events(rl, handle.id, "soft_timeout")
        [started] = events(rl, handle.id, "started")
        assert soft["fence"] == 1 and soft["after"] == seconds
        assert soft["t"] - started["t"] >= seconds * 1000
        assert names[-1] == "succeeded"
    for handle in (sync, async_):
        names = [e["e"] for e in events(rl, handle.id)]
        assert names.index("soft_timeout") < names.index("checkpoint") < names.index("succeeded")
        assert rl.redis.hget(rl.keys.task(handle.id).job, "progress") is not None
    log = worker.log()
    assert "timeouts.no_hook" in log and "(no on_soft_timeout hook)" in log
    assert "RuntimeError: the hook broke" in log


def test_sync_hard_timeout_replaces_the_process_retries_from_the_checkpoint_then_dead_letters(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    worker = rl_worker(APP, concurrency=2)
    handle = apps.spin.push("spin")
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=30)
    assert info.value.reason == "hard_timeout"
    first, second = notes(rl, "spin")
    # The retry resumed from what the first attempt's soft-timeout hook saved.
    assert first == {"attempt": 1, "progress": None, "pid": first["pid"]}
    assert second == {
        "attempt": 2,
        "progress": {"saved_by": "hook", "attempt": 1},
        "pid": second["pid"],
    }
    assert_dead_of_hard_timeout(rl, handle.id, 0.8, attempts=2)
    names = [e["e"] for e in events(rl, handle.id)]
    assert names == [
        "dispatched",
        "reserved", "started", "soft_timeout", "checkpoint", "retry", "requeued",
        "reserved", "started", "soft_timeout", "checkpoint", "dead",
    ]  # fmt: skip
    [retry] = events(rl, handle.id, "retry")
    assert retry["error"].startswith("HardTimeoutError: timeouts.spin exceeded")
    # The DLQ entry shows where the stuck code was.
    tb = get_dead(rl, handle.id).traceback
    assert "in spin" in tb and "while True" in tb
    assert_serves_with_fresh_processes(rl, worker, {first["pid"], second["pid"]})


def test_async_hard_timeout_cancels_the_coroutine_in_its_process(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    worker = rl_worker(APP, concurrency=1)
    handle = apps.asleep.push("asleep")
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=20)
    assert info.value.reason == "hard_timeout"
    started, cancelled = notes(rl, "asleep")
    assert cancelled == "cancelled"
    assert_dead_of_hard_timeout(rl, handle.id, 0.5, attempts=1)
    tb = get_dead(rl, handle.id).traceback
    assert "CancelledError" in tb and "HardTimeoutError" in tb
    # Cancellation was enough: the same process serves the next task.
    assert apps.pid.push().result(timeout=20) == started["pid"]
    assert "exitcode" not in worker.log()


@pytest.mark.parametrize("task", [apps.stubborn, apps.blocks_loop], ids=["swallows", "blocks"])
def test_async_task_that_outlives_its_cancellation_gets_its_process_replaced(
    rl_worker: WorkerFactory, rl: Relier, task: Any
) -> None:
    worker = rl_worker(APP, concurrency=1)
    handle = task.push("stuck")
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=20)
    assert info.value.reason == "hard_timeout"
    ran = notes(rl, "stuck")
    if task is apps.stubborn:
        assert ran[1:] == ["swallowed"]
    assert_dead_of_hard_timeout(rl, handle.id, 0.5, attempts=1)
    assert_serves_with_fresh_processes(rl, worker, {ran[0]["pid"]})


def test_outside_a_prefork_pool_a_stuck_task_is_failed_and_its_late_commit_refused(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    worker = rl_worker(APP, concurrency=2, pool="threads")
    stuck = apps.until_released.push("zombie")
    stubborn = apps.stubborn.push("athread")
    for handle in (stuck, stubborn):
        with pytest.raises(TaskFailedError) as info:
            handle.result(timeout=20)
        assert info.value.reason == "hard_timeout"
        assert_dead_of_hard_timeout(rl, handle.id, 0.5, attempts=1)
    worker.wait_for_log("keeps running as a zombie", timeout=5)
    # The thread that waited for the stubborn coroutine is free again, and
    # nothing was replaced: one process runs everything.
    assert apps.pid.push().result(timeout=20) == worker.pid
    rl.redis.set("rl-test:release:zombie", 1)
    wait_until(lambda: events(rl, stuck.id, "stale_commit"), 10, "the zombie's refused commit")
    assert stuck.state() == "DEAD"
    assert worker.is_alive()
