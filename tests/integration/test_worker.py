"""A real ``rl worker`` subprocess runs pushed tasks end to end."""

from __future__ import annotations

import json
import time

import pytest

from relier import Relier, TaskFailedError
from relier.journal.message import new_delivery_tag
from relier.testing import WorkerFactory
from tests.integration.apps import basic

APP = "tests.integration.apps.basic"


def runs(r: Relier, key: str) -> int:
    return int(r.redis.get(f"rl-test:count:{key}") or 0)


def test_sync_and_async_tasks_return_results(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    sync_handles = [basic.add.push(i, i) for i in range(20)]
    async_handles = [basic.aadd.push(i, 1) for i in range(20)]
    assert [h.result(timeout=20) for h in sync_handles] == [2 * i for i in range(20)]
    assert [h.result(timeout=20) for h in async_handles] == [i + 1 for i in range(20)]
    assert basic.kw.push(name="ab", times=2).result(timeout=20) == "abab"
    assert sync_handles[0].state() == "SUCCEEDED"


async def test_apush_and_push_many_from_asyncio(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    handles = await basic.aadd.apush_many([(i, 2) for i in range(50)])
    one = await basic.add.apush(40, 2)
    kw = await basic.kw.apush_many([basic.kw.call(name="x", times=3)])
    results = [await h.aresult(timeout=20) for h in [*handles, one, *kw]]
    assert results == [*(i + 2 for i in range(50)), 42, "xxx"]
    handles = basic.add.push_many([(i, 0) for i in range(300)])
    assert [h.result(timeout=30) for h in handles] == list(range(300))


def test_celery_s_calling_api_runs_on_a_real_worker_and_reports_the_journal(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    rl_worker(APP)
    assert basic.add.delay(2, 3).get(timeout=20) == 5
    assert basic.aadd.apply_async((40, 2), countdown=0.2).get(timeout=20) == 42
    assert basic.add.s(1).delay(1).get(timeout=20) == 2
    assert basic.kw.signature(kwargs={"name": "ab", "times": 2}).apply_async().get(20) == "abab"
    failed = basic.afail.delay("celery-api")
    with pytest.raises(TaskFailedError, match="max_retries"):
        failed.get(timeout=20)
    assert failed.state == "FAILURE" and "always fails" in (failed.traceback or "")
    assert runs(rl, "celery-api") == 3  # the first run and two retries, then the DLQ


def test_retries_then_success(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    handle = basic.flaky.push("flaky", 2)
    assert handle.result(timeout=20) == "ok"
    assert runs(rl, "flaky") == 3
    events = [e["e"] for e in _history(rl, handle.id)]
    assert events.count("retry") == 2 and events[-1] == "succeeded"


def test_exhausted_retries_go_to_the_dlq_with_payload_reason_traceback_history(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    from relier import Reason
    from relier.ops.dlq import get_dead, list_dead

    rl_worker(APP)
    handle = basic.afail.push("afail")
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=20)
    assert info.value.reason == Reason.MAX_RETRIES
    assert runs(rl, "afail") == 3  # the first attempt plus max_retries=2
    entry = get_dead(rl, handle.id)
    assert entry.reason == "max_retries" and entry.attempts == 3
    assert "ValueError: afail always fails" in entry.error
    assert "Traceback" in entry.traceback and "afail always fails" in entry.traceback
    assert json.loads(entry.envelope)["a"] == ["afail"]
    assert [e["e"] for e in entry.history] == [
        "dispatched",
        *(["reserved", "started", "retry", "requeued"] * 2),
        "reserved", "started", "dead",
    ]  # fmt: skip
    assert list_dead(rl) == [handle.id]


def test_exception_outside_retry_on_goes_to_the_dlq_at_once(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    rl_worker(APP)
    handle = basic.not_retryable.push("nr")
    with pytest.raises(TaskFailedError) as info:
        handle.result(timeout=20)
    assert info.value.reason == "not_retryable"
    assert runs(rl, "nr") == 1


def test_checkpoint_progress_reaches_the_next_attempt(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    result = basic.resume.push("resume").result(timeout=20)
    assert result == {"attempt": 2, "progress": {"step": 1}, "fence": 2}


def test_countdown_delays_the_run(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    started = time.monotonic()
    handle = basic.add.with_options(countdown=1.0).push(1, 1)
    assert handle.state() == "PENDING"
    assert handle.result(timeout=20) == 2
    assert time.monotonic() - started >= 1.0


def test_duplicate_delivery_runs_the_body_once(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    handle = basic.count.push("dup")
    assert handle.result(timeout=20) == 1
    # Publish the very same message twice more, as a broker redelivery or a
    # restored unacked message would.
    template = rl.redis.hget(rl.keys.task(handle.id).job, "msg").decode()
    for _ in range(2):
        rl.redis.lpush(rl.keys.queue("celery"), template + new_delivery_tag() + '"}}')
    marker = basic.count.push("after")  # runs after the duplicates (FIFO)
    assert marker.result(timeout=20) == 1
    _wait_queue_empty(rl)
    assert runs(rl, "dup") == 1
    assert handle.result(timeout=1) == 1


def test_unserialisable_result_goes_to_the_dlq(rl_worker: WorkerFactory, rl: Relier) -> None:
    rl_worker(APP)
    with pytest.raises(TaskFailedError) as info:
        basic.bad_result.push().result(timeout=20)
    assert info.value.reason == "result_not_serializable"


def _history(r: Relier, task_id: str) -> list[dict[str, object]]:
    from relier.ops.dlq import read_history

    return read_history(r, task_id)


def _wait_queue_empty(r: Relier, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while r.redis.llen(r.keys.queue("celery")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # let the worker finish what it took


def test_typed_arguments_and_results_round_trip_through_a_worker(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    import datetime as dt
    from decimal import Decimal

    rl_worker(APP)
    issued = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)
    handle = basic.invoice.push("A-1", issued, Decimal("10.50"), [Decimal("10"), Decimal("0.50")])
    result = handle.result(timeout=20)
    assert result == basic.Invoice(number="A-1", total=Decimal("10.50"), due=dt.date(2026, 12, 26))
    stored = json.loads(rl.redis.hget(rl.keys.task(handle.id).job, "result") or b"")
    assert stored == {"number": "A-1", "total": "10.50", "due": "2026-12-26"}
