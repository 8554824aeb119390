"""SIGKILL: a pool process or a whole worker dies (an OOM kill) mid-task.

Contract (DESIGN.md, "worker OOM-killed / SIGKILL"): every in-flight and
every reserved-but-not-started task runs again on a healthy process, same
payload; pool-process death re-queued in < 1 s, whole-worker death in < 3 s
with default settings.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from relier.clock import now_ms
from relier.testing import WorkerFactory
from tests.chaos import apps
from tests.chaos.conftest import APP, Report
from tests.chaos.ledger import Ledger, count_events, events, restarts, stats, wait_until

ROUNDS = 5


def _first_start(ledger: Ledger, task_id: str) -> dict[str, Any]:
    start: dict[str, Any] = wait_until(
        lambda: next(iter(events(ledger.history(task_id), "started")), None),
        10,
        f"{task_id} to start",
    )
    return start


def test_pool_process_sigkill_reruns_its_task_on_another_process_within_1s(
    rl_worker: WorkerFactory, ledger: Ledger, chaos_report: Report
) -> None:
    # One worker, both pool processes busy: the victim's task must restart in
    # the process that replaces the dead one while its neighbour still runs.
    worker = rl_worker(APP, concurrency=2)
    victims, neighbours, kills = [], [], {}
    for _ in range(ROUNDS):
        victim = apps.hold.push(2.0, 0.05)
        neighbour = apps.work.push(1.5)
        ledger.add(victim.id, neighbour.id)
        victims.append(victim.id)
        neighbours.append(neighbour.id)
        pid = _first_start(ledger, victim.id)["pid"]
        assert pid in worker.children()
        # Kill inside the body, not between the claim and the body (a fresh
        # replacement process takes a few ms to get there): the victim's
        # count of 2 executions below depends on it.
        vid = victim.id
        wait_until(
            lambda vid=vid: ledger.executions([vid]) == {vid: 1}, 5, "the victim's body to run"
        )
        kills[victim.id] = (now_ms(), pid)
        os.kill(pid, signal.SIGKILL)
        assert victim.result(timeout=15)["pid"] != pid
        neighbour.result(timeout=15)

    states = ledger.wait_final(10)
    assert list(states.values()) == ["SUCCEEDED"] * (2 * ROUNDS), ledger.unfinished(states)
    histories = ledger.histories()
    assert count_events(histories, "succeeded") == dict.fromkeys(ledger.ids, 1)
    to_requeue, to_restart = [], []
    for task_id in victims:
        killed_at, pid = kills[task_id]
        [(resurrected, started)] = restarts(histories[task_id], "resurrected")
        assert resurrected["kind"] == "child" and resurrected["was"] == "RUNNING"
        assert resurrected["count"] == 1 and ledger.job(task_id)["res"] == "1"
        assert started["pid"] != pid and started["attempt"] == 2 and started["fence"] == 2
        to_requeue.append(resurrected["t"] - killed_at)
        to_restart.append(started["t"] - killed_at)
    chaos_report(
        "pool_process_sigkill",
        kill_to_requeue_ms=stats(to_requeue),
        kill_to_restart_ms=stats(to_restart),
        tasks=len(ledger.ids),
        lost=0,
    )
    # The neighbour in the other pool process never noticed.
    assert ledger.executions(neighbours) == dict.fromkeys(neighbours, 1)
    assert sum(count_events(histories, "resurrected")[n] for n in neighbours) == 0
    assert ledger.executions(victims) == dict.fromkeys(victims, 2)
    assert max(to_restart) < 1000, to_restart


def test_worker_sigkill_reruns_running_and_prefetched_tasks_elsewhere(
    rl_worker: WorkerFactory, ledger: Ledger, chaos_report: Report
) -> None:
    # Prefetch 3 per pool process: 2 tasks run, 4 wait reserved in the worker.
    doomed = rl_worker(APP, "--prefetch-multiplier", "3", concurrency=2)
    handles = [apps.linger.push("w1", 30.0) for _ in range(6)]
    ledger.add(*(h.id for h in handles))
    [doomed_owned] = wait_until(
        lambda: ledger.rl.redis.keys(ledger.rl.keys.owned("*")), 10, "the worker to own tasks"
    )
    wait_until(
        lambda: sorted(ledger.states().values()) == ["RESERVED"] * 4 + ["RUNNING"] * 2,
        10,
        "2 running and 4 reserved tasks",
    )
    assert ledger.rl.redis.scard(doomed_owned) == 6
    running = [i for i, s in ledger.states().items() if s == "RUNNING"]
    survivor = rl_worker(APP, concurrency=2)

    killed_at = now_ms()
    doomed.kill()
    states = ledger.wait_final(20)
    assert list(states.values()) == ["SUCCEEDED"] * 6, ledger.unfinished(states)

    histories = ledger.histories()
    assert count_events(histories, "succeeded") == dict.fromkeys(ledger.ids, 1)
    assert count_events(histories, "resurrected") == dict.fromkeys(ledger.ids, 1)
    assert ledger.executions() == {i: 2 if i in running else 1 for i in ledger.ids}
    to_requeue, to_restart = [], []
    survivors_pids = set(survivor.children())
    for task_id, history in histories.items():
        [(resurrected, started)] = restarts(history, "resurrected")
        # Several tasks were running: the death cannot blame one, so it is
        # counted apart from the poison-pill count.
        assert resurrected["kind"] == "worker"
        assert resurrected["was"] == ("RUNNING" if task_id in running else "RESERVED")
        job = ledger.job(task_id)
        assert int(job.get("res") or 0) == 0
        assert int(job.get("res_w") or 0) == (1 if task_id in running else 0)
        assert started["pid"] in survivors_pids
        assert ledger.result(task_id)["node"] == "w2"
        to_requeue.append(resurrected["t"] - killed_at)
        to_restart.append(started["t"] - killed_at)
    assert not ledger.rl.redis.exists(doomed_owned)
    chaos_report(
        "worker_sigkill",
        kill_to_requeue_ms=stats(to_requeue),
        kill_to_restart_ms=stats(to_restart),
        running=len(running),
        reserved=6 - len(running),
        lost=0,
        settings="defaults (lease 2000 ms, renew 500, scan 500)",
    )
    assert max(to_restart) < 5000, to_restart
