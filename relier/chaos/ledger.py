"""The ledger of ``rl chaos``: every probe's fate, read back from the journal.

A probe is *lost* unless its journal state is final (SUCCEEDED or DEAD);
it is *wrong* when it is final but not what the scenario expected (a
neighbour of a poison pill in the DLQ, a pill that succeeded, a DLQ reason
other than the expected one). A *double commit* is a second ``succeeded``
event in one task's history. Body executions come from the probes' own
counters (:func:`relier.chaos_probes.executions`), so re-runs cut short by
a kill are visible beside the single commit.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from relier.chaos.probes import executions
from relier.hub import Relier

__all__ = ["Expect", "Ledger", "Verdict", "after", "summary"]

FINAL = frozenset({"SUCCEEDED", "DEAD"})
Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Expect:
    """What a probe must end as: a state, and for DEAD the DLQ reason."""

    state: str = "SUCCEEDED"
    reason: str | None = None


@dataclass
class Verdict:
    """What the journal says about every probe of a scenario."""

    tasks: int
    states: Counter[str]
    lost: list[str]
    wrong: list[str]
    double_commits: list[str]
    stale_commits: int
    executions: int
    jobs: dict[str, dict[str, str]] = field(repr=False)
    histories: dict[str, list[Event]] = field(repr=False)
    runs: dict[str, int] = field(repr=False)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.wrong or self.double_commits)

    def line(self) -> str:
        """One line for the scenario's output."""
        return (
            f"{self.tasks} probes: {self.states['SUCCEEDED']} succeeded, {self.states['DEAD']} "
            f"dead, {len(self.lost)} lost, {len(self.wrong)} unexpected, "
            f"{len(self.double_commits)} double commits, {self.stale_commits} stale commits "
            f"refused, {self.executions} body executions"
        )


class Ledger:
    """Every probe id a scenario pushed, and what each must end as."""

    def __init__(self, relier: Relier) -> None:
        self.relier = relier
        self.expected: dict[str, Expect] = {}

    def add(self, task_id: str, expect: Expect | None = None) -> None:
        self.expected[task_id] = expect or Expect()

    @property
    def ids(self) -> list[str]:
        return list(self.expected)

    def states(self, ids: list[str] | None = None) -> dict[str, str]:
        ids = self.ids if ids is None else ids
        keys = self.relier.keys
        with self.relier.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hget(keys.task(task_id).job, "state")
            raw = pipe.execute()
        return {i: (s.decode() if s else "MISSING") for i, s in zip(ids, raw, strict=True)}

    def wait_final(self, timeout: float) -> bool:
        """Wait until every probe is SUCCEEDED or DEAD; False after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            if all(s in FINAL for s in self.states().values()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def verdict(self) -> Verdict:
        ids = self.ids
        keys = self.relier.keys
        with self.relier.redis.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hgetall(keys.task(task_id).job)
                pipe.lrange(keys.task(task_id).hist, 0, -1)
            raw = pipe.execute()
        jobs: dict[str, dict[str, str]] = {}
        histories: dict[str, list[Event]] = {}
        for task_id, job, hist in zip(ids, raw[::2], raw[1::2], strict=True):
            jobs[task_id] = {
                k.decode(): v.decode(errors="replace")
                for k, v in job.items()
                if k not in (b"env", b"msg")
            }
            histories[task_id] = [json.loads(e) for e in hist]
        runs = executions(self.relier, ids)
        states: Counter[str] = Counter()
        lost, wrong, double = [], [], []
        stale = 0
        for task_id in ids:
            job, history = jobs[task_id], histories[task_id]
            state = job.get("state", "MISSING")
            states[state] += 1
            want = self.expected[task_id]
            if state not in FINAL:
                lost.append(task_id)
            elif state != want.state or (want.reason and job.get("reason") != want.reason):
                wrong.append(task_id)
            if sum(1 for e in history if e["e"] == "succeeded") > 1:
                double.append(task_id)
            stale += sum(1 for e in history if e["e"] == "stale_commit")
        return Verdict(
            tasks=len(ids),
            states=states,
            lost=lost,
            wrong=wrong,
            double_commits=double,
            stale_commits=stale,
            executions=sum(runs.values()),
            jobs=jobs,
            histories=histories,
            runs=runs,
        )


def after(history: list[Event], name: str, since_ms: int) -> Event | None:
    """The first ``name`` event at or after ``since_ms``."""
    return next((e for e in history if e["e"] == name and e["t"] >= since_ms), None)


def summary(values: list[float]) -> dict[str, float]:
    """n, p50 and max of measurements (ms); ``{"n": 0}`` when there are none."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(statistics.median(values), 1),
        "max": round(max(values), 1),
    }
