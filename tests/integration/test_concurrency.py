"""``max_concurrency`` across real workers: a cluster-wide, fenced semaphore."""

from __future__ import annotations

import json
import time
from typing import Any

from relier import Relier
from relier.testing import WorkerFactory
from tests.integration.apps import limited

APP = "tests.integration.apps.limited"


def peaks(rl: Relier, key: str, start: int = 0) -> list[int]:
    return [int(p) for p in rl.redis.lrange(f"rl-test:peaks:{key}", start, -1)]


def events(rl: Relier, task_id: str) -> list[str]:
    hist: list[Any] = rl.redis.lrange(rl.keys.task(task_id).hist, 0, -1)
    return [json.loads(e)["e"] for e in hist]


def wait_until(what: str, check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_max_concurrency_holds_across_workers_under_load(
    rl_worker: WorkerFactory, rl: Relier
) -> None:
    rl_worker(APP, concurrency=3)
    rl_worker(APP, concurrency=3)
    started = time.monotonic()
    handles = limited.hold.push_many([("load", 0.15) for _ in range(24)])
    # Unlimited work on the same workers is not held up by the waiting tasks.
    free = limited.free.push_many([(i,) for i in range(50)])
    assert [h.result(timeout=30) for h in free] == list(range(50))
    results = [h.result(timeout=60) for h in handles]
    elapsed = time.monotonic() - started
    seen = peaks(rl, "load")
    assert len(seen) == 24, "each task ran exactly once"
    assert max(seen) == 2, f"never more than 2 at once across 6 pool processes, saw {seen}"
    assert seen.count(2) >= 6, f"and the 2 slots were used in parallel: {seen}"
    assert max(results) <= 2
    # 24 tasks of 0.15 s, two at a time, take at least 1.8 s.
    assert elapsed >= 24 * 0.15 / 2
    waited = [h for h in handles if "waiting" in events(rl, h.id)]
    assert waited, "tasks over the limit waited (history event 'waiting')"
    assert rl.redis.zcard(rl.keys.semaphore(limited.hold.name)) == 0, "every slot given back"


def test_a_killed_workers_slots_come_back(rl_worker: WorkerFactory, rl: Relier) -> None:
    victim = rl_worker(APP, concurrency=2)
    handles = limited.hold.push_many([("kill", 1.0) for _ in range(6)])
    # The victim holds both slots before the survivor exists.
    wait_until("two tasks running on the victim", lambda: len(peaks(rl, "kill")) == 2)
    victim.kill()
    # The two killed executions never counted themselves out.
    rl.redis.decrby("rl-test:cur:kill", 2)
    mark = len(peaks(rl, "kill"))
    survivor_started = time.monotonic()
    rl_worker(APP, concurrency=3)
    assert all(h.result(timeout=60) in (1, 2) for h in handles)
    after = peaks(rl, "kill", mark)
    # The 2 killed tasks ran again and the 4 others ran: 6 executions.
    assert len(after) == 6, after
    assert max(after) == 2, f"the dead worker's slots came back and were used together: {after}"
    # Six 1 s tasks two at a time: ~3 s plus lease expiry; leaked slots would hang.
    assert time.monotonic() - survivor_started < 30
    resurrected = [h for h in handles if "resurrected" in events(rl, h.id)]
    assert len(resurrected) == 2
