"""Idempotent tasks against real workers: one execution per logical call."""

from __future__ import annotations

import asyncio
import threading

import pytest

from relier import IdempotencyConflictError, Relier, TaskFailedError
from relier.testing import WorkerFactory
from tests.integration.apps import basic

APP = "tests.integration.apps.basic"


def runs(rl: Relier, key: str) -> int:
    return int(rl.redis.get(f"rl-test:count:{key}") or 0)


def test_50_concurrent_thread_pushes_run_the_body_once(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    rl_worker(APP)
    handles = []
    barrier = threading.Barrier(50)

    def push() -> None:
        barrier.wait()
        handles.append(basic.charge.push("o-1", 1999))

    threads = [threading.Thread(target=push) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({h.id for h in handles}) == 1
    assert sum(h.created for h in handles) == 1
    results = [h.result(timeout=20) for h in handles]
    assert results == [{"order": "o-1", "cents": 1999, "execution": 1}] * 50
    assert runs(rl, "charge:o-1") == 1


async def test_50_concurrent_asyncio_pushes_run_the_body_once(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    rl_worker(APP)
    handles = await asyncio.gather(*(basic.charge.apush("o-2", 500) for _ in range(50)))
    assert sum(h.created for h in handles) == 1
    results = await asyncio.gather(*(h.aresult(timeout=20) for h in handles))
    assert results == [{"order": "o-2", "cents": 500, "execution": 1}] * 50
    assert runs(rl, "charge:o-2") == 1


def test_duplicate_after_success_returns_the_stored_result_without_running(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    rl_worker(APP)
    first = basic.charge.push("o-3", 100)
    assert first.result(timeout=20)["execution"] == 1
    again = basic.charge.push("o-3", 100)
    assert again.id == first.id and not again.created
    assert again.state() == "SUCCEEDED"
    assert again.result(timeout=1)["execution"] == 1
    assert runs(rl, "charge:o-3") == 1
    # A different call is a different key: it runs.
    assert basic.charge.push("o-3", 101).result(timeout=20)["execution"] == 2


def test_key_reused_with_other_arguments_is_a_conflict(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    rl_worker(APP)
    assert basic.charge_by_order.push("o-4", 700).result(timeout=20) == 700
    queued = rl.redis.llen(rl.keys.queue("celery"))
    with pytest.raises(IdempotencyConflictError) as info:
        basic.charge_by_order.push("o-4", 900)
    assert info.value.key == "o-4"
    assert rl.redis.llen(rl.keys.queue("celery")) == queued  # nothing enqueued
    assert basic.charge_by_order.push("o-4", 700).result(timeout=5) == 700
    assert runs(rl, "charge_by_order:o-4") == 1


def test_per_call_key_overrides_the_default(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    a = basic.add.with_options(idempotency_key="sum-1").push(1, 2)
    b = basic.add.with_options(idempotency_key="sum-1").push(1, 2)
    assert a.id == b.id and a.created and not b.created
    assert b.result(timeout=20) == 3


def test_after_the_dlq_the_key_is_released_and_a_new_push_runs(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    rl_worker(APP)
    rl.redis.set("rl-test:fail:k1", 1)
    first = basic.flaky_idem.push("k1")
    with pytest.raises(TaskFailedError):
        first.result(timeout=20)
    rl.redis.delete("rl-test:fail:k1")
    again = basic.flaky_idem.push("k1")
    assert again.id == first.id and again.created
    assert again.result(timeout=20) == "ok"
    assert runs(rl, "flaky_idem:k1") == 2
    from relier.ops.dlq import list_dead, read_history

    assert first.id not in list_dead(rl)
    events = [e["e"] for e in read_history(rl, first.id)]
    assert "dead" in events and "revived" in events and events[-1] == "succeeded"
    fences = [e["fence"] for e in read_history(rl, first.id) if e["e"] == "started"]
    assert fences == sorted(fences) and len(set(fences)) == len(fences)
