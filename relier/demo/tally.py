"""The ledger that ends ``rl demo``: read back from the journal, not from the demo's memory.

Counts every distinct pushed task as SUCCEEDED, DEAD (by DLQ reason) or lost,
checks commits (one ``succeeded`` event per task, one committed task per
payment id) and measures recovery latencies from each task's history.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from relier.hub import Relier
from relier.tasks.handle import TaskHandle

__all__ = ["Kill", "Tally", "read_states", "tally"]


@dataclass
class Kill:
    """A signal the demo sent to a worker: which, which node, when (wall-clock ms)."""

    signal: str
    node: str
    at_ms: int


@dataclass
class Tally:
    """What the journal says about every task the demo pushed."""

    pushes: int
    tasks: int
    states: Counter[str]
    dead_reasons: Counter[str]
    lost: int
    double_commits: int
    payments: int
    duplicate_payment_pushes: int
    payment_runs: int
    retried: int
    resumed_from_checkpoint: int
    latencies: dict[str, list[int]] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Nothing lost and nothing committed twice."""
        return self.lost == 0 and self.double_commits == 0


def read_states(relier: Relier, handles: list[TaskHandle]) -> list[str]:
    """Each task's journal state (``MISSING`` when it has no entry)."""
    with relier.redis.pipeline(transaction=False) as pipe:
        for h in handles:
            pipe.hget(relier.keys.task(h.id).job, "state")
        return [s.decode() if s else "MISSING" for s in pipe.execute()]


def _read(relier: Relier, handles: list[TaskHandle]) -> list[tuple[dict[str, str], list[Any]]]:
    out = []
    for start in range(0, len(handles), 500):
        with relier.redis.pipeline(transaction=False) as pipe:
            for h in handles[start : start + 500]:
                tk = relier.keys.task(h.id)
                pipe.hmget(tk.job, "state", "reason", "attempt", "task", "result")
                pipe.lrange(tk.hist, 0, -1)
            replies = pipe.execute()
        for job, hist in zip(replies[::2], replies[1::2], strict=True):
            names = ("state", "reason", "attempt", "task", "result")
            fields = {k: v.decode() for k, v in zip(names, job, strict=True) if v is not None}
            out.append((fields, [json.loads(e) for e in hist]))
    return out


def tally(
    relier: Relier,
    handles: list[TaskHandle],
    pushes: int,
    payment_of: dict[str, str],
    charge_runs: dict[str, int],
    kills: list[Kill],
) -> Tally:
    """Read the journal for ``handles`` (distinct tasks) and count."""
    rows = _read(relier, handles)
    states: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    double = retried = resumed = 0
    committed_per_payment: Counter[str] = Counter()
    latencies: dict[str, list[int]] = {}
    for h, (job, history) in zip(handles, rows, strict=True):
        state = job.get("state", "MISSING")
        states[state] += 1
        if state == "DEAD":
            reasons[job.get("reason", "?")] += 1
        succeeded = sum(1 for e in history if e["e"] == "succeeded")
        double += max(0, succeeded - 1)
        if state == "SUCCEEDED":
            retried += int(job.get("attempt", "1")) > 1
            if h.id in payment_of:
                committed_per_payment[payment_of[h.id]] += 1
            if job.get("task") == "relier.demo.build_report":
                resumed += json.loads(job.get("result", "{}")).get("resumed_at", 0) > 0
        for n, event in enumerate(history):
            kill = _cause(event, kills)
            if kill is None:
                continue
            label = f"{kill.signal} {kill.node}"
            latencies.setdefault(f"{label}: signal -> re-queued", []).append(
                event["t"] - kill.at_ms
            )
            nxt = next((e for e in history[n + 1 :] if e["e"] == "started"), None)
            if nxt is not None:
                latencies.setdefault(f"{label}: signal -> restarted", []).append(
                    nxt["t"] - kill.at_ms
                )
    double += sum(n - 1 for n in committed_per_payment.values() if n > 1)
    lost = len(handles) - states["SUCCEEDED"] - states["DEAD"]
    return Tally(
        pushes=pushes,
        tasks=len(handles),
        states=states,
        dead_reasons=reasons,
        lost=lost,
        double_commits=double,
        payments=len(set(payment_of.values())),
        duplicate_payment_pushes=pushes - len(handles),
        payment_runs=sum(charge_runs.values()),
        retried=retried,
        resumed_from_checkpoint=resumed,
        latencies=latencies,
        kills=kills,
    )


def _cause(event: dict[str, Any], kills: list[Kill]) -> Kill | None:
    """The kill that made ``event`` a re-queue of a task that worker held, if any."""
    if event["e"] not in ("resurrected", "handoff") or event.get("kind") == "child":
        return None
    node = str(event.get("from", "")).split("@", 1)[0]
    return next((k for k in kills if k.node == node and event["t"] >= k.at_ms), None)


def render(t: Tally) -> list[str]:
    """The tally as the lines the demo prints."""
    lines = [
        f"  pushed            {t.pushes}   ({t.tasks} distinct tasks: "
        f"{t.duplicate_payment_pushes} payment pushes were duplicates, deduplicated)",
        f"  succeeded         {t.states['SUCCEEDED']}   ({t.retried} after a retry or a "
        f"restart, {t.resumed_from_checkpoint} slow reports resumed from a checkpoint)",
    ]
    for reason, n in sorted(t.dead_reasons.items()):
        lines.append(f"  in DLQ            {n}   reason {reason}")
    lines += [
        f"  lost              {t.lost}   (neither SUCCEEDED nor in the DLQ)",
        f"  double commits    {t.double_commits}   (tasks with more than one `succeeded` "
        "event in their journal history, plus payment ids committed by more than one task)",
        f"  payments          {t.payments} ids; their bodies ran {t.payment_runs} times (a run "
        "beyond one per id was cut short by a kill and never committed)",
    ]
    for kill in t.kills:
        if not any(label.startswith(f"{kill.signal} {kill.node}:") for label in t.latencies):
            lines.append(
                f"  recovery          {kill.signal} {kill.node}: nothing to re-queue (no task "
                "was left unfinished on it)"
            )
    for label, values in sorted(t.latencies.items()):
        lines.append(
            f"  recovery          {label}: {len(values)} tasks, median "
            f"{statistics.median(values):.0f} ms, max {max(values)} ms"
        )
    return lines
