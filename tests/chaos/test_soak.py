"""Soak: a steady stream of short tasks on two workers while a random pool
process is SIGKILLed every 2 s. Nothing is lost, nothing commits twice.

CI runs a bounded soak (400 tasks, 12 s). The full one::

    RELIER_SOAK_TASKS=2000 RELIER_SOAK_SECONDS=60 ./scripts/test tests/chaos/test_soak.py -s
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from relier.clock import now_ms
from relier.testing import WorkerFactory
from tests.chaos import apps
from tests.chaos.conftest import APP, Report
from tests.chaos.ledger import Ledger, count_events, events, stats

TASKS = int(os.environ.get("RELIER_SOAK_TASKS", "400"))
SECONDS = float(os.environ.get("RELIER_SOAK_SECONDS", "12"))
KILL_EVERY_S = 2.0


def _running_pids(ledger: Ledger) -> set[int]:
    ids = list(ledger.ids)
    with ledger.rl.redis.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hmget(ledger.rl.keys.task(task_id).job, ["state", "pid"])
        rows = pipe.execute()
    return {int(pid) for state, pid in rows if state == b"RUNNING" and pid}


@pytest.mark.timeout(max(120, int(2 * SECONDS) + 90))
def test_soak_random_pool_process_kills_lose_nothing_and_commit_once(
    rl_worker: WorkerFactory, ledger: Ledger, chaos_report: Report
) -> None:
    rng = random.Random(8)
    workers = [rl_worker(APP, concurrency=2) for _ in range(2)]
    durations = [round(rng.uniform(0.02, 0.1), 3) for _ in range(TASKS)]
    failures: list[BaseException] = []

    def produce() -> None:
        # Spread the pushes over most of the run so kills land under load.
        pause = 0.8 * SECONDS / TASKS
        try:
            for seconds in durations:
                ledger.add(apps.work.push(seconds).id)
                time.sleep(pause)
        except BaseException as exc:
            failures.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    kills: dict[int, int] = {}  # pid -> when (ms)
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        time.sleep(KILL_EVERY_S)
        # A pool process running a task, of either worker, if any is (a kill
        # of an idle process tests little); else any process of a random one.
        busy = _running_pids(ledger)
        children = sorted(p for w in workers for p in w.children())
        pids = [p for p in children if p in busy] or sorted(rng.choice(workers).children())
        if pids:
            pid = rng.choice(pids)
            kills[pid] = now_ms()
            os.kill(pid, signal.SIGKILL)
    producer.join(30)
    assert not producer.is_alive() and failures == []

    states = ledger.wait_final(60)
    assert len(states) == TASKS
    lost = {i: s for i, s in states.items() if s not in ("SUCCEEDED", "DEAD")}
    assert lost == {}
    histories = ledger.histories()
    succeeded = count_events(histories, "succeeded")
    # Every task committed once, none twice; no attempt was a zombie.
    assert {i: succeeded[i] for i in ledger.ids} == {
        i: 1 if s == "SUCCEEDED" else 0 for i, s in states.items()
    }
    assert sum(count_events(histories, "stale_commit").values()) == 0
    dead = [i for i, s in states.items() if s == "DEAD"]
    for task_id in dead:  # only a task caught by three kills in a row may die
        job = ledger.job(task_id)
        assert (job["reason"], job["res"]) == ("poison_pill", "3")
    executions = ledger.executions()
    to_restart, hits = [], 0
    for task_id, history in histories.items():
        started = events(history, "started")
        resurrected = events(history, "resurrected")
        assert all(e["kind"] == "child" for e in resurrected)
        # Each death, and only a death, started the task again.
        assert len(started) == 1 + len(resurrected) - (1 if task_id in dead else 0)
        assert 1 <= executions[task_id] <= len(started)
        for death in resurrected:
            victim = [s for s in started if s["t"] <= death["t"]][-1]
            assert victim["pid"] in kills
            hits += 1
            nxt = [s for s in started if s["t"] >= death["t"]]
            if nxt:
                to_restart.append(nxt[0]["t"] - kills[victim["pid"]])
    chaos_report(
        "soak",
        tasks=TASKS,
        seconds=SECONDS,
        kills=len(kills),
        kills_that_hit_a_task=hits,
        succeeded=TASKS - len(dead),
        dead_poison_pills=len(dead),
        lost=0,
        double_commits=0,
        kill_to_restart_ms=stats(to_restart),
    )
    assert len(kills) >= int(SECONDS / KILL_EVERY_S) - 1
    assert hits >= len(kills) // 2
