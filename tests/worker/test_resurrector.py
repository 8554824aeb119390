"""take_back's blame for a dead worker (relier.worker.resurrector), on a real Redis: a worker
that dies running one task names that task (worker_sole, toward max_resurrections),
unless it died while draining for shutdown, when the platform's kill at the end of the
grace period is to blame (worker, toward the far larger max_worker_deaths)."""

from __future__ import annotations

import json

import pytest

from relier import Relier, rl_task
from relier.worker.resurrector import take_back


@rl_task(name="resurrector.unit.slow")
def slow() -> None:
    return None


def _running_on(rl: Relier, worker_id: str) -> str:
    handle = slow.push()
    claim = rl.scripts.claim(handle.id, worker_id, 1, pid=4242, token="t")
    assert claim.run
    return handle.id


def _last_event(rl: Relier, task_id: str) -> dict[str, object]:
    return json.loads(rl.redis.lrange(rl.keys.task(task_id).hist, -1, -1)[0])  # type: ignore[no-any-return]


@pytest.mark.parametrize("draining", [False, True])
def test_a_dead_worker_running_one_task_blames_it_unless_it_was_draining(
    default_relier: Relier, draining: bool
) -> None:
    rl = default_relier
    worker_id = f"w@test#1-{'dddddd' if draining else 'aaaaaa'}"
    task_id = _running_on(rl, worker_id)
    if draining:
        rl.redis.set(rl.keys.draining(worker_id), b"1", ex=60)
    assert take_back(rl, worker_id) == (1, 0)
    event = _last_event(rl, task_id)
    counts = [int(c or 0) for c in rl.redis.hmget(rl.keys.task(task_id).job, ["res", "res_w"])]
    if draining:
        assert event["kind"] == "worker"
        assert counts == [0, 1]  # toward max_worker_deaths only
    else:
        assert event["kind"] == "worker_sole"
        assert counts == [1, 0]  # toward max_resurrections
