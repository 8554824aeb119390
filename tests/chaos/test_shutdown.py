"""SIGTERM: rolling deploys lose nothing and hand work back at once.

Contract (DESIGN.md, "ungraceful deploys"): on SIGTERM a worker stops taking
work, hands reserved-but-not-started tasks back at once (< 100 ms), finishes
in-flight tasks within the grace period, hands the rest back; nothing lost.
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from relier.clock import now_ms
from relier.testing import WorkerFactory
from tests.chaos import apps
from tests.chaos.conftest import APP, Report
from tests.chaos.ledger import Ledger, count_events, events, restarts, stats, wait_until

# Prefetching more than one task per pool process: a SIGTERMed worker holds
# reserved tasks that it has to hand back.
PREFETCH = ("--prefetch-multiplier", "2")


def _handoff_figures(
    ledger: Ledger, signalled: dict[str, int]
) -> tuple[list[float], list[float], dict[str, int]]:
    """(SIGTERM → handoff ms, handoff → restart ms, handoffs per kind) over every task."""
    to_handoff, to_restart, kinds = [], [], {"handoff_reserved": 0, "handoff": 0}
    for history in ledger.histories().values():
        for handoff, started in restarts(history, "handoff"):
            kinds[handoff["kind"]] += 1
            to_handoff.append(handoff["t"] - signalled[handoff["from"].split("@")[0]])
            to_restart.append(started["t"] - handoff["t"])
    return to_handoff, to_restart, kinds


def _owner_node(ledger: Ledger, task_id: str) -> str:
    [first] = wait_until(lambda: events(ledger.history(task_id), "started"), 10, "a start")
    return str(first["owner"]).split("@")[0]


def test_rolling_restart_under_load_loses_nothing_and_runs_each_task_once(
    rl_worker: WorkerFactory, ledger: Ledger, chaos_report: Report
) -> None:
    rng = random.Random(4)
    w1 = rl_worker(APP, *PREFETCH, concurrency=2)
    w2 = rl_worker(APP, *PREFETCH, concurrency=2)
    handles = apps.work.push_many([(round(rng.uniform(0.05, 0.3), 3),) for _ in range(200)])
    ledger.add(*(h.id for h in handles))
    signalled, stop_s = {}, {}
    time.sleep(1.0)
    for old, name in ((w1, "w1"), (w2, "w2")):
        signalled[name] = now_ms()
        started = time.monotonic()
        assert old.terminate(timeout=30) == 0
        stop_s[name] = round(time.monotonic() - started, 2)
        rl_worker(APP, *PREFETCH, concurrency=2)
        time.sleep(0.5)

    states = ledger.wait_final(30)
    assert list(states.values()) == ["SUCCEEDED"] * 200, ledger.unfinished(states)
    histories = ledger.histories()
    assert count_events(histories, "succeeded") == dict.fromkeys(ledger.ids, 1)
    # A graceful stop finishes what runs and hands back what never started:
    # no body runs twice.
    assert ledger.executions() == dict.fromkeys(ledger.ids, 1)
    assert sum(count_events(histories, "resurrected").values()) == 0
    to_handoff, to_restart, kinds = _handoff_figures(ledger, signalled)
    chaos_report(
        "rolling_restart",
        tasks=200,
        lost=0,
        double_runs=0,
        handoffs=kinds,
        sigterm_to_handoff_ms=stats(to_handoff),
        handoff_to_restart_ms=stats(to_restart),
        stop_seconds=stop_s,
    )
    # Both workers held prefetched tasks when told to stop: they came back.
    assert kinds["handoff_reserved"] >= 2 and kinds["handoff"] == 0
    assert max(to_handoff) < 100, to_handoff
    assert max(to_restart) < 1000, to_restart


def test_a_task_longer_than_the_grace_period_is_handed_back_and_finishes_elsewhere(
    rl_worker: WorkerFactory, rl_env: dict[str, str], ledger: Ledger, chaos_report: Report
) -> None:
    env = {**rl_env, "RELIER_SHUTDOWN_GRACE": "2"}
    workers = {"w1": rl_worker(APP, concurrency=1, env=env)}
    workers["w2"] = rl_worker(APP, concurrency=1, env=env)
    handle = apps.hold.push(30.0, 0.05)
    ledger.add(handle.id)
    node = _owner_node(ledger, handle.id)
    leaving = workers[node]
    signalled = {node: now_ms()}
    started = time.monotonic()
    leaving.terminate(timeout=15)
    stop_s = time.monotonic() - started

    assert handle.result(timeout=10)["attempt"] == 2
    history = ledger.history(handle.id)
    [(handoff, restart)] = restarts(history, "handoff")
    assert handoff["kind"] == "handoff" and handoff["was"] == "RUNNING"
    assert handoff["from"].startswith(f"{node}@")
    assert restart["owner"].split("@")[0] != node
    assert [e["fence"] for e in events(history, "succeeded")] == [2]
    assert ledger.executions() == {handle.id: 2}
    # A handoff is not a crash: it does not count toward the poison-pill limit.
    assert int(ledger.job(handle.id).get("res") or 0) == 0
    chaos_report(
        "grace_exceeded",
        grace_s=2,
        stop_seconds=round(stop_s, 2),
        handoff_after_sigterm_ms=handoff["t"] - signalled[node],
        handoff_to_restart_ms=restart["t"] - handoff["t"],
    )
    assert 2.0 <= stop_s < 2 + 3
    assert restart["t"] - handoff["t"] < 1000


def test_reserved_tasks_handed_back_on_sigterm_restart_at_once_despite_a_backlog(
    rl_worker: WorkerFactory, ledger: Ledger, chaos_report: Report
) -> None:
    # w1 runs one long task and holds 3 more; w2 works through a backlog.
    leaving = rl_worker(APP, "--prefetch-multiplier", "4", concurrency=1)
    held = [apps.linger.push("w1", 4.0) for _ in range(4)]
    ledger.add(*(h.id for h in held))
    wait_until(
        lambda: sorted(ledger.states().values()) == ["RESERVED"] * 3 + ["RUNNING"],
        10,
        lambda: f"1 running and 3 reserved tasks, not {ledger.states()}",
    )
    rl_worker(APP, concurrency=3)
    backlog = apps.work.push_many([(0.3,)] * 20)
    ledger.add(*(h.id for h in backlog))
    signalled = {"w1": now_ms()}
    leaving.signal(signal.SIGTERM)

    states = ledger.wait_final(30)
    assert list(states.values()) == ["SUCCEEDED"] * 24, ledger.unfinished(states)
    assert leaving.wait(10) == 0
    to_handoff, to_restart, kinds = _handoff_figures(ledger, signalled)
    chaos_report(
        "handoff_with_backlog",
        backlog=20,
        handoffs=kinds,
        sigterm_to_handoff_ms=stats(to_handoff),
        handoff_to_restart_ms=stats(to_restart),
    )
    assert kinds == {"handoff_reserved": 3, "handoff": 0}
    assert ledger.executions() == dict.fromkeys(ledger.ids, 1)
    assert max(to_handoff) < 100, to_handoff
    # Handed back means runnable now: not behind the backlog, nor only once
    # the draining worker exits and kombu restores its unacked messages.
    assert max(to_restart) < 1000, to_restart


@pytest.mark.parametrize("second", ["SIGTERM", "SIGINT", "SIGQUIT"])
def test_a_second_signal_during_the_drain_loses_nothing(
    second: str, rl_worker: WorkerFactory, ledger: Ledger, chaos_report: Report
) -> None:
    leaving = rl_worker(APP, "--prefetch-multiplier", "4", concurrency=2)
    handles = [apps.linger.push("w1", 4.0) for _ in range(8)]
    ledger.add(*(h.id for h in handles))
    wait_until(
        lambda: sorted(ledger.states().values()) == ["RESERVED"] * 6 + ["RUNNING"] * 2,
        10,
        lambda: f"2 running and 6 reserved tasks, not {ledger.states()}",
    )
    rl_worker(APP, concurrency=2)
    running = [i for i, s in ledger.states().items() if s == "RUNNING"]
    assert len(running) == 2
    started = time.monotonic()
    leaving.signal(signal.SIGTERM)
    time.sleep(0.3)
    leaving.signal(getattr(signal, second))
    leaving.wait(30)
    stop_s = time.monotonic() - started

    states = ledger.wait_final(20)
    assert list(states.values()) == ["SUCCEEDED"] * 8, ledger.unfinished(states)
    histories = ledger.histories()
    assert count_events(histories, "succeeded") == dict.fromkeys(ledger.ids, 1)
    executions = ledger.executions()
    chaos_report(
        f"sigterm_then_{second.lower()}",
        stop_seconds=round(stop_s, 2),
        running_rerun=sum(1 for i in running if executions[i] == 2),
        lost=0,
    )
    # Stopping a worker is nobody's crash: nothing counts toward poison pills.
    crashes = [e for h in histories.values() for e in events(h, "resurrected")]
    assert crashes == [], f"a shutdown was taken for crashes: {crashes}"
    assert [int(ledger.job(i).get("res") or 0) for i in ledger.ids] == [0] * 8
    assert {i: n for i, n in executions.items() if i not in running} == {
        i: 1 for i in ledger.ids if i not in running
    }
    # A running task either finished in the drain (once) or, cut short by a
    # cold shutdown, ran again on the other worker.
    assert {executions[i] for i in running} <= {1, 2}
