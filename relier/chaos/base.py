"""What every chaos scenario shares: the run, its probe workers, its verdicts and exit codes.

The scenarios (:mod:`relier.chaos.workers`, :mod:`relier.chaos.redis_faults`)
build on this module; :mod:`relier.chaos.runner` picks and runs them.

Keys: none of its own.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relier.chaos import probes
from relier.chaos.ledger import Expect, Ledger, after
from relier.cli.format import EXIT_UNAVAILABLE
from relier.clock import now_ms
from relier.hub import Relier
from relier.ops.dlq import read_history
from relier.ops.workers import list_workers
from relier.worker.children import process_alive

__all__ = [
    "ENABLE_HINT",
    "EXIT_CANNOT_RUN",
    "EXIT_FAIL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_APPLICABLE",
    "EXIT_PASS",
    "STALE_MS",
    "CannotRun",
    "ChaosRun",
    "NotApplicable",
    "ProbeWorker",
    "ScenarioResult",
    "lease_s",
    "process_alive",
    "restart_latency",
    "task_state",
    "wait_for",
]

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_CANNOT_RUN = 2
EXIT_NOT_APPLICABLE = 4
EXIT_INTERRUPTED = 130

STALE_MS = 86_400_000
"""A probe-worker listing this old, of a worker no longer in ``rl:workers``, is dropped."""

ENABLE_HINT = (
    "start the workers with RELIER_CHAOS=1 (`RELIER_CHAOS=1 rl worker -A yourapp ...`; with "
    "`celery worker` add `-I relier.chaos.probes`): they then run the probe tasks, on the "
    f"{probes.QUEUE} queue only"
)


def _runs_worker(pid: int) -> bool:
    """Whether ``pid`` is a Celery worker process here (never signal a recycled pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # `rl worker ...`/`celery worker ...`, or celeryd's title when setproctitle is installed.
    return b"worker" in command or b"celeryd" in command


class CannotRun(Exception):
    """The scenario's preconditions do not hold here (exit 2)."""


class NotApplicable(Exception):
    """The scenario does not apply to this cluster (exit 4)."""


@dataclass(frozen=True, slots=True)
class ProbeWorker:
    """A live worker that runs the probes; ``local`` when it is a process on this host."""

    worker_id: str
    node: str
    host: str
    pid: int
    local: bool


@dataclass
class ScenarioResult:
    """What a scenario did, verified and measured, and its verdict."""

    scenario: str
    status: str = "PASS"
    did: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return {
            "PASS": EXIT_PASS,
            "FAIL": EXIT_FAIL,
            "NOT APPLICABLE": EXIT_NOT_APPLICABLE,
            "REDIS UNAVAILABLE": EXIT_UNAVAILABLE,
        }.get(self.status, EXIT_CANNOT_RUN)


class ChaosRun:
    """One scenario's run: the cluster, the ledger, and what it reports."""

    def __init__(
        self,
        relier: Relier,
        result: ScenarioResult,
        tasks: int | None,
        timeout: float,
        app: str | None,
        echo: bool,
    ) -> None:
        self.relier = relier
        self.settings = relier.settings
        self.result = result
        self.tasks = tasks
        self.timeout = timeout
        self.app = app
        self.echo = echo
        self.ledger = Ledger(relier)
        self.cleanups: list[Callable[[], None]] = []

    # -- reporting --------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)

    def did(self, text: str) -> None:
        self.result.did.append(text)
        self._say(f"  did: {text}")

    def check(self, ok: bool, text: str) -> bool:
        """Record one verified claim (or its failure)."""
        (self.result.verified if ok else self.result.failed).append(text)
        self._say(f"  {'verified' if ok else 'FAILED'}: {text}")
        return ok

    def figure(self, name: str, value: Any, unit: str = "") -> None:
        self.result.figures[name] = value
        shown = json.dumps(value) if isinstance(value, dict) else str(value)
        self._say(f"  measured: {name} = {shown}{(' ' + unit) if unit else ''}")

    # -- the cluster ------------------------------------------------------
    def workers(self) -> list[ProbeWorker]:
        """Live workers that run the probes; drops listings of workers long gone.

        A worker missing from ``rl:workers`` may be one that froze or was cut
        off and lists itself again when it wakes: only its entry older than
        :data:`STALE_MS` goes.
        """
        listed = {w.worker_id: w for w in list_workers(self.relier)}
        registered = probes.probe_workers(self.relier)
        old = now_ms() - STALE_MS
        gone = [
            wid
            for wid, info in registered.items()
            if wid not in listed and int(info.get("started", 0)) < old
        ]
        if gone:
            self.relier.redis.hdel(self.relier.keys.chaos_workers, *gone)
        here = socket.gethostname()
        out = []
        for wid, info in registered.items():
            lease = listed.get(wid)
            if lease is None or not lease.alive:
                continue
            # As the worker listed itself (the same as its lease says).
            host, pid = str(info.get("host") or lease.host), int(info.get("pid") or lease.pid)
            local = host == here and _runs_worker(pid)
            out.append(ProbeWorker(wid, lease.node, host, pid, local))
        return sorted(out, key=lambda w: w.worker_id)

    def require(self, count: int = 1, local: int = 0) -> list[ProbeWorker]:
        """The probe workers, when there are at least ``count`` with ``local`` on this host."""
        found = self.workers()
        if not found:
            raise CannotRun(f"no live worker runs the chaos probes: {ENABLE_HINT}")
        if len(found) < count:
            raise CannotRun(
                f"this scenario needs {count} workers running the probes (one to damage, one "
                f"to take its work over); found {len(found)}: {ENABLE_HINT}"
            )
        here = [w for w in found if w.local]
        if len(here) < local:
            hosts = sorted({w.host for w in found})
            raise CannotRun(
                f"this scenario signals a worker process, so it needs one on this host "
                f"({socket.gethostname()}); the probe workers run on {', '.join(hosts)}. Run "
                "rl chaos on a worker host"
            )
        return found

    def push(self, task: Any, *args: Any, expect: Expect | None = None) -> str:
        handle = task.push(*args)
        self.ledger.add(handle.id, expect)
        return str(handle.id)

    def job(self, task_id: str, *fields: str) -> list[str | None]:
        raw = self.relier.redis.hmget(self.relier.keys.task(task_id).job, list(fields))
        return [None if v is None else v.decode() for v in raw]

    def land(self, target: ProbeWorker, seconds: float, count: int = 1) -> list[str]:
        """Push ``hold`` probes until ``count`` of them run on ``target``; their ids.

        Probes that land elsewhere sleep 0.05 s and end; the ledger has them all.
        """
        running: list[str] = []
        pending: list[str] = []
        deadline = time.monotonic() + max(10.0, self.timeout / 2)
        while len(running) < count:
            if time.monotonic() > deadline:
                raise CannotRun(
                    f"could not get a probe to run on {target.worker_id} within "
                    f"{max(10.0, self.timeout / 2):.0f} s (is it busy with other work, or not "
                    f"consuming {probes.QUEUE}?)"
                )
            if len(pending) < 2:
                pending.append(self.push(probes.hold, target.worker_id, seconds, 0.05))
            for task_id in list(pending):
                state, owner = self.job(task_id, "state", "owner")
                if state == "RUNNING" and owner == target.worker_id:
                    running.append(task_id)
                    pending.remove(task_id)
                elif state in ("SUCCEEDED", "DEAD"):
                    pending.remove(task_id)
            time.sleep(0.02)
        # The others may still be waiting in the target's prefetch: end their hold.
        probes.release(self.relier, pending)
        return running

    def finish(self, wait: float | None = None) -> None:
        """Wait for every probe to end, then check the ledger's claims."""
        ended = self.ledger.wait_final(self.timeout if wait is None else wait)
        verdict = self.ledger.verdict()
        self.result.figures["ledger"] = {
            "tasks": verdict.tasks,
            "succeeded": verdict.states["SUCCEEDED"],
            "dead": verdict.states["DEAD"],
            "lost": len(verdict.lost),
            "unexpected": len(verdict.wrong),
            "double_commits": len(verdict.double_commits),
            "stale_commits": verdict.stale_commits,
            "executions": verdict.executions,
        }
        if not ended:
            self._say(f"  (probes still unfinished after {self.timeout:.0f} s)")
        self.check(
            not verdict.lost,
            f"every probe ended SUCCEEDED or DEAD ({len(verdict.lost)} of {verdict.tasks} lost"
            + (f": {', '.join(verdict.lost[:3])}" if verdict.lost else "")
            + ")",
        )
        self.check(
            not verdict.wrong,
            f"each probe ended as expected ({len(verdict.wrong)} unexpected"
            + (f": {', '.join(verdict.wrong[:3])}" if verdict.wrong else "")
            + ")",
        )
        self.check(
            not verdict.double_commits,
            f"no probe committed twice ({len(verdict.double_commits)} with two `succeeded` events)",
        )
        self._say(f"  ledger: {verdict.line()}")
        # What became of a few lost or unexpected probes: their journal, for the post-mortem.
        shown = {}
        for task_id in (verdict.lost + verdict.wrong)[:3]:
            job = verdict.jobs[task_id]
            fields = {
                k: job[k] for k in ("state", "owner", "attempt", "reason", "error") if k in job
            }
            events = [e["e"] for e in verdict.histories[task_id]]
            shown[task_id] = {"job": fields, "events": events}
            self._say(f"  unfinished or unexpected: {task_id} {fields} events {events}")
        if shown:
            self.result.figures["not_as_expected"] = shown


# -- helpers of every scenario ----------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it is truthy (its value) or ``timeout`` s pass (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def task_state(run: ChaosRun, task_id: str) -> str | None:
    return run.job(task_id, "state")[0]


def lease_s(run: ChaosRun) -> float:
    return run.settings.lease_ttl_ms / 1000


def restart_latency(
    run: ChaosRun, task_id: str, at_ms: int, cause: str
) -> tuple[int | None, int | None]:
    """(ms from ``at_ms`` to the ``cause`` event, to the next start after it)."""
    history = read_history(run.relier, task_id)
    event = after(history, cause, at_ms)
    if event is None:
        return None, None
    started = after(history, "started", int(event["t"]))
    return int(event["t"]) - at_ms, (int(started["t"]) - at_ms if started else None)
