"""The worker's service (relier.worker.WorkerService) on a real Redis, without a Celery
worker around it: handing back the reserved tasks whose prefetched messages the broker
connection took with it; pool deaths seen from kombu's event loop."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import redis
from kombu.asynchronous import Hub  # unannotated: calls carry type: ignore[no-untyped-call]

from relier import Relier, load_settings, rl_task
from relier.localredis import free_port
from relier.worker import service as worker_module
from relier.worker.service import WorkerService

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


def test_the_event_loop_watches_the_pool_and_wakes_the_thread_on_a_death(
    default_relier: Relier, monkeypatch: pytest.MonkeyPatch
) -> None:
    rl = default_relier
    # The thread's own look at the pool out of reach: only the loop's timer can act.
    monkeypatch.setattr(worker_module, "_CHILD_BACKSTOP_S", 3600.0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    hub = Hub()  # type: ignore[no-untyped-call]
    service = WorkerService(
        rl, WORKER, "test", lambda: [child.pid] if child.poll() is None else [],
        SimpleNamespace(hub=hub),
    )  # fmt: skip
    task = noop.push()
    assert rl.scripts.claim(task.id, WORKER, 2, pid=child.pid, token="t").run
    service.start()
    try:
        assert hub.timer._queue, "no pool check on the event loop's timer"
        hub.fire_timers(max_delay=0)  # type: ignore[no-untyped-call]
        assert task.state() == "RUNNING"  # alive: nothing to do
        child.kill()
        child.wait(5)
        deadline = time.monotonic() + 10
        while task.state() == "RUNNING" and time.monotonic() < deadline:
            hub.fire_timers(max_delay=0)  # type: ignore[no-untyped-call]
            time.sleep(0.01)
        assert task.state() == "PENDING"
    finally:
        service.finish()
        hub.close()  # type: ignore[no-untyped-call]
        if child.poll() is None:
            child.kill()
            child.wait(5)
