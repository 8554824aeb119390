"""Poison pills: a task that kills its pool process every time goes to the
DLQ after exactly ``max_resurrections`` deaths; the tasks running beside it
on the same worker are never blamed."""

from __future__ import annotations

import random

from relier.ops.dlq import get_dead, list_dead
from relier.testing import WorkerFactory
from tests.chaos import apps
from tests.chaos.conftest import APP, Report
from tests.chaos.ledger import Ledger, count_events, events, stats

MAX_RESURRECTIONS = 3  # the default


def test_a_poison_pill_goes_to_the_dlq_after_3_deaths_and_its_neighbours_succeed(
    rl_worker: WorkerFactory, ledger: Ledger, chaos_report: Report
) -> None:
    rng = random.Random(6)
    rl_worker(APP, concurrency=3)
    # Two long neighbours are running in the worker's other pool processes
    # when the pill first kills its own; a hundred short ones follow it.
    beside = [apps.work.push(1.5) for _ in range(2)]
    pill = apps.crash.push()
    normal = apps.work.push_many([(round(rng.uniform(0.02, 0.1), 3),) for _ in range(100)])
    neighbours = [h.id for h in beside + normal]
    ledger.add(pill.id, *neighbours)

    states = ledger.wait_final(30)
    assert states == {pill.id: "DEAD", **dict.fromkeys(neighbours, "SUCCEEDED")}
    assert list_dead(ledger.rl) == [pill.id]
    dead = get_dead(ledger.rl, pill.id)
    assert dead.reason == "poison_pill" and dead.attempts == MAX_RESURRECTIONS
    history = ledger.history(pill.id)
    deaths = events(history, "resurrected")
    assert [(e["kind"], e["count"], e["was"]) for e in deaths] == [
        ("child", n, "RUNNING") for n in range(1, MAX_RESURRECTIONS + 1)
    ]
    assert len(events(history, "started")) == MAX_RESURRECTIONS
    assert history[-1]["e"] == "dead" and history[-1]["reason"] == "poison_pill"
    assert ledger.job(pill.id)["res"] == str(MAX_RESURRECTIONS)
    assert ledger.executions([pill.id]) == {pill.id: MAX_RESURRECTIONS}

    histories = ledger.histories(neighbours)
    assert count_events(histories, "succeeded") == dict.fromkeys(neighbours, 1)
    assert sum(count_events(histories, "resurrected").values()) == 0
    assert ledger.executions(neighbours) == dict.fromkeys(neighbours, 1)
    # The scenario is real: neighbours were running in the same worker when
    # the pill's process died.
    overlapping = {
        task_id
        for task_id, h in histories.items()
        for death in deaths
        if events(h, "started")[0]["t"] < death["t"] < events(h, "succeeded")[0]["t"]
    }
    assert set(h.id for h in beside) <= overlapping
    death_to_restart = [
        nxt["t"] - death["t"]
        for death, nxt in zip(deaths, events(history, "started")[1:], strict=False)
    ]
    chaos_report(
        "poison_pill",
        deaths=len(deaths),
        neighbours=len(neighbours),
        neighbours_running_during_a_death=len(overlapping),
        neighbours_dead=0,
        death_to_restart_ms=stats(death_to_restart),
    )
