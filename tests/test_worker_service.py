"""The worker's service (relier.worker.WorkerService) on a real Redis, without a Celery
worker around it: handing back the reserved tasks whose prefetched messages the broker
connection took with it."""

from __future__ import annotations

import pytest
import redis

from relier import Relier, load_settings, rl_task
from relier.localredis import free_port
from relier.worker import WorkerService

WORKER = "w@test#1-5e7v1c"


@rl_task(name="worker_service.unit.noop")
def noop() -> None:
    return None


def test_stranded_reserved_tasks_are_handed_back_and_running_ones_stay(
    default_relier: Relier,
) -> None:
    rl = default_relier
    reserved, running = noop.push(), noop.push()
    rl.scripts.reserve(reserved.id, WORKER, 1)
    assert rl.scripts.claim(running.id, WORKER, 2, pid=4242, token="t").run
    queued = rl.redis.llen("celery")
    service = WorkerService(rl, WORKER, "test")
    service.reserved_stranded()
    assert service.hand_back_reserved() == 1
    assert (reserved.state(), running.state()) == ("PENDING", "RUNNING")
    assert rl.redis.llen("celery") == queued + 1  # a new message for the reserved one only


def test_a_hand_back_that_cannot_reach_redis_stays_due() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    rl = Relier(load_settings(redis_url=url, socket_connect_timeout=0.2))
    service = WorkerService(rl, WORKER, "test")
    service.reserved_stranded()
    with pytest.raises(redis.exceptions.ConnectionError):
        service.hand_back_reserved()
    assert service._reserved_stranded  # the next tick tries again
    rl.close()
