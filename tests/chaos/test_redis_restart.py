"""Redis restarts under load (AOF, ``appendfsync always``): producers and
workers reconnect by themselves and nothing is lost."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from relier import RedisUnavailableError, Relier
from relier.clock import now_ms
from relier.testing import RedisServer, WorkerFactory
from tests.chaos import apps
from tests.chaos.conftest import APP, Report
from tests.chaos.ledger import Ledger, count_events, events

TASKS = 300
RATE = 50  # pushes per second: the outage lands mid-stream


# 1 s: a quick restart; 3 s: longer than the 2 s worker lease, whose keys
# expire while Redis is down: that must not be taken for dead workers.
@pytest.mark.parametrize("outage", [1.0, 3.0])
def test_redis_restart_under_load_loses_nothing(
    outage: float,
    rl_redis: RedisServer,
    rl: Relier,
    rl_worker: WorkerFactory,
    ledger: Ledger,
    chaos_report: Report,
) -> None:
    rl.redis.config_set("appendfsync", "always")
    workers = [rl_worker(APP, concurrency=2) for _ in range(2)]
    rng = random.Random(5)
    refused = [0]
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            for _ in range(TASKS):
                # A caller-chosen id makes the retry of a push whose reply was
                # lost harmless: the second push finds the task and adds nothing.
                task_id = str(uuid.uuid4())
                call = apps.work.with_options(task_id=task_id)
                seconds = round(rng.uniform(0.02, 0.1), 3)
                while True:
                    try:
                        call.push(seconds)
                        break
                    except RedisUnavailableError:
                        refused[0] += 1
                        time.sleep(0.05)
                ledger.add(task_id)
                time.sleep(1 / RATE)
        except BaseException as exc:
            failures.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(2.0)
    down_at = now_ms()
    rl_redis.stop()
    time.sleep(outage)
    rl_redis.start()
    up_at = now_ms()
    producer.join(60)
    assert not producer.is_alive() and failures == []

    states = ledger.wait_final(30)
    drained_at = now_ms()
    assert len(states) == TASKS
    assert list(states.values()) == ["SUCCEEDED"] * TASKS, ledger.unfinished(states)
    histories = ledger.histories()
    assert count_events(histories, "succeeded") == dict.fromkeys(ledger.ids, 1)
    # Leases that lapsed while Redis was down are not death verdicts.
    assert sum(count_events(histories, "resurrected").values()) == 0
    assert ledger.executions() == dict.fromkeys(ledger.ids, 1)
    # Both workers survived, reconnected and took work after the restart.
    assert [w.is_alive() for w in workers] == [True, True], [w.tail(5) for w in workers]
    after = {
        str(e["owner"]).split("@")[0]
        for h in histories.values()
        for e in events(h, "started")
        if e["t"] > up_at
    }
    assert after == {"w1", "w2"}
    chaos_report(
        f"redis_restart_{outage:.0f}s",
        tasks=TASKS,
        lost=0,
        outage_ms=up_at - down_at,
        pushes_refused_during_outage=refused[0],
        up_to_drained_ms=drained_at - up_at,
    )
