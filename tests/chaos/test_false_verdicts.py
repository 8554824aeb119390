"""No false verdicts: a pool process holding the GIL in one C call for three
times the lease is busy, not dead; its worker's main process keeps renewing."""

from __future__ import annotations

import time

from relier.ops.workers import list_workers
from relier.testing import WorkerFactory
from tests.chaos import apps
from tests.chaos.conftest import APP, Report
from tests.chaos.ledger import Ledger, count_events, events, wait_until

LEASE_S = 1.0  # fast_env
# Aims at 5 leases, so that at least 3 pass for sure: the task sizes its one C
# call from a calibration run, and on a busy machine a calibration run slowed
# by others' CPU use made a 4-lease aim hold the GIL for only 2.6 s.
HOG_S = 5 * LEASE_S


def test_a_task_holding_the_gil_for_3_leases_is_not_resurrected(
    rl_worker: WorkerFactory, fast_env: dict[str, str], ledger: Ledger, chaos_report: Report
) -> None:
    worker = rl_worker(APP, concurrency=2, env=fast_env)
    hog = apps.gil.push(HOG_S)
    ledger.add(hog.id)
    wait_until(lambda: events(ledger.history(hog.id), "started"), 10, "the hog to start")
    lease_seen = 0
    while ledger.states([hog.id])[hog.id] == "RUNNING":
        [info] = list_workers(ledger.rl)
        assert info.alive and info.pid == worker.pid
        lease_seen += 1
        time.sleep(0.1)
    beside = apps.work.push(0.05)
    ledger.add(beside.id)

    result = hog.result(timeout=15)
    beside.result(timeout=10)
    history = ledger.history(hog.id)
    assert result["seconds"] >= 3 * LEASE_S, result
    # The GIL really was held: the task's own ticker thread could not run
    # (it ticked before the call; at most a tick or two at the edges).
    assert result["ticks_before"] >= 5 and result["ticks_during"] <= 2, result
    assert result["fence"] == 1 and result["attempt"] == 1
    assert events(history, "resurrected") == [] and events(history, "stale_commit") == []
    assert len(events(history, "started")) == 1
    assert count_events(ledger.histories(), "succeeded") == dict.fromkeys(ledger.ids, 1)
    assert ledger.executions() == dict.fromkeys(ledger.ids, 1)
    chaos_report(
        "gil_hog",
        held_gil_s=round(result["seconds"], 2),
        lease_ms=int(LEASE_S * 1000),
        lease_checks_alive=lease_seen,
        resurrected=0,
        executions=1,
    )
