"""A frozen worker (SIGSTOP: a VM pause, a stop-the-world GC, a laptop lid)
outlives its lease: its task runs again elsewhere, and when it wakes up it
must not commit over the survivor's result (fence tokens)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from relier.clock import now_ms
from relier.ops.workers import list_workers
from relier.testing import WorkerFactory, WorkerProcess
from tests.chaos import apps
from tests.chaos.conftest import APP, Report
from tests.chaos.ledger import Ledger, events, restarts, wait_until


@dataclass
class Thawed:
    task_id: str
    zombie: WorkerProcess
    survivor: WorkerProcess
    stopped_at: int


def _freeze_until_rerun_then_thaw(
    rl_worker: WorkerFactory, fast_env: dict[str, str], ledger: Ledger
) -> Thawed:
    """Two workers; freeze the one running a 3 s task until the other has run it, then wake it.

    Returns once the zombie's pool process tried to commit.
    """
    workers = [rl_worker(APP, concurrency=1, env=fast_env) for _ in range(2)]
    handle = apps.hold.push(3.0, 0.2)
    ledger.add(handle.id)
    [first] = wait_until(lambda: events(ledger.history(handle.id), "started"), 10, "the start")
    [zombie] = [w for w in workers if first["pid"] in w.children()]
    [survivor] = [w for w in workers if w is not zombie]
    stopped_at = now_ms()
    os.killpg(zombie.pid, signal.SIGSTOP)
    try:
        assert handle.result(timeout=10)["pid"] in survivor.children()
    finally:
        os.killpg(zombie.pid, signal.SIGCONT)
    wait_until(lambda: events(ledger.history(handle.id), "stale_commit"), 10, "the zombie's commit")
    return Thawed(handle.id, zombie, survivor, stopped_at)


def test_a_frozen_workers_commit_is_refused_after_its_task_ran_elsewhere(
    rl_worker: WorkerFactory, fast_env: dict[str, str], ledger: Ledger, chaos_report: Report
) -> None:
    thawed = _freeze_until_rerun_then_thaw(rl_worker, fast_env, ledger)
    task_id = thawed.task_id
    history = ledger.history(task_id)
    started = events(history, "started")
    assert [e["fence"] for e in started] == [1, 2]
    assert started[1]["pid"] in thawed.survivor.children()
    # One commit, the survivor's; the zombie's attempt (fence 1) was refused.
    assert [e["fence"] for e in events(history, "succeeded")] == [2]
    [stale] = events(history, "stale_commit")
    assert stale["fence"] == 1 and stale["state"] == "SUCCEEDED"
    assert history.index(stale) > history.index(events(history, "succeeded")[0])
    result = ledger.result(task_id)
    assert result["fence"] == 2 and result["pid"] == started[1]["pid"]
    assert ledger.states() == {task_id: "SUCCEEDED"}
    assert ledger.executions() == {task_id: 2}
    [(resurrected, restart)] = restarts(history, "resurrected")
    # The frozen worker was running this one task: the death names it.
    assert resurrected["kind"] == "worker_sole" and resurrected["was"] == "RUNNING"
    chaos_report(
        "sigstop_zombie",
        stop_to_requeue_ms=resurrected["t"] - thawed.stopped_at,
        stop_to_restart_ms=restart["t"] - thawed.stopped_at,
        stale_commits=1,
        commits=1,
        settings="lease 1000 ms, renew 200, scan 200",
    )
    assert restart["t"] - thawed.stopped_at < 3000


def test_a_woken_zombie_worker_is_watched_again(
    rl_worker: WorkerFactory, fast_env: dict[str, str], ledger: Ledger, chaos_report: Report
) -> None:
    thawed = _freeze_until_rerun_then_thaw(rl_worker, fast_env, ledger)
    zombie = thawed.zombie
    # The zombie was declared dead and reaped. Awake, it renews its lease and
    # takes work again: if it dies now, that work must come back too.
    thawed.survivor.terminate()
    handle = apps.hold.push(30.0, 0.05)
    ledger.add(handle.id)
    [first] = wait_until(lambda: events(ledger.history(handle.id), "started"), 10, "the start")
    assert first["pid"] in zombie.children()
    r, keys = ledger.rl.redis, ledger.rl.keys
    listed = [w.worker_id for w in list_workers(ledger.rl) if w.alive]
    seen = (
        f"leases held: {r.keys(keys.worker('*'))}, listed in {keys.workers}: "
        f"{r.zrange(keys.workers, 0, -1)}, the task's owner: {first['owner']}"
    )
    killed_at = now_ms()
    zombie.kill()
    rl_worker(APP, concurrency=1, env=fast_env)
    states = ledger.wait_final(10)
    assert states == {thawed.task_id: "SUCCEEDED", handle.id: "SUCCEEDED"}, seen
    assert listed == [first["owner"]], seen
    [(_, restart)] = restarts(ledger.history(handle.id), "resurrected")
    chaos_report("woken_zombie_killed", kill_to_restart_ms=restart["t"] - killed_at)
