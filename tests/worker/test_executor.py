"""execute(): one Celery delivery handled in this process, as a pool process runs it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from relier import Relier, rl_task
from relier.ops.dlq import get_dead
from relier.ops.inspection import task_detail
from relier.worker.executor import execute

QUEUE = "executor"


@rl_task(name="tests.executor.add", queue=QUEUE)
def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def rl(default_relier: Relier) -> Relier:
    return default_relier


def run(task_id: str) -> None:
    request = SimpleNamespace(
        id=task_id, hostname="exec@test", delivery_info={"routing_key": QUEUE}
    )
    execute(add, request, (task_id,), {})


@pytest.mark.parametrize("field", ["fence", "attempt"])
def test_a_journal_entry_claim_cannot_read_is_dead_lettered_once(
    rl: Relier, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    handle = add.push(1, 2)
    rl.redis.hset(rl.keys.task(handle.id).job, field, "not-a-number")
    run(handle.id)  # must not raise: a raise would fail every delivery alike
    entry = get_dead(rl, handle.id)
    assert entry.reason == "corrupt_journal"
    assert entry.error.startswith("the journal entry cannot be claimed: ")
    assert "script" in entry.error  # the script error, quoted
    assert "moved to the DLQ (corrupt_journal)" in caplog.text
    # A duplicate delivery of it is dropped, not run and not dead-lettered again.
    run(handle.id)
    assert rl.redis.zcard(rl.keys.dlq) == 1
    assert [e["e"] for e in entry.history].count("dead") == 1
    # The read-only views show the broken entry instead of crashing on it.
    detail = task_detail(rl, handle.id)
    assert (detail.state, detail.reason) == ("DEAD", "corrupt_journal")


def test_a_good_delivery_runs_and_commits(rl: Relier) -> None:
    handle = add.push(2, 3)
    run(handle.id)
    assert handle.result(timeout=1) == 5


def test_a_corrupt_journal_entry_is_refused_by_release_and_the_batch_goes_on(
    rl: Relier,
) -> None:
    from relier.ops.dlq import release

    broken, healthy = add.push(1, 2), add.push(3, 4)
    rl.redis.hset(rl.keys.task(broken.id).job, "fence", "not-a-number")
    run(broken.id)
    rl.scripts.dead_letter(healthy.id, 1, "not_retryable", "for the test", None, "")
    queued = rl.redis.llen(QUEUE)
    outcome = release(rl, [broken.id, healthy.id])
    assert outcome.refused == {broken.id: "CORRUPT"}
    assert list(outcome.released) == [healthy.id]
    assert rl.redis.llen(QUEUE) == queued + 1  # the healthy one only
    assert get_dead(rl, broken.id).reason == "corrupt_journal"  # still in the DLQ, unchanged
