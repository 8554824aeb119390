"""``rl chaos SCENARIO``: break a running cluster on purpose and check nothing was lost.

Runs against the Redis of the settings (``RELIER_REDIS_URL``) and the
workers registered there that opted in to the probes (``RELIER_CHAOS=1``,
see :mod:`relier.chaos_probes`). Each scenario pushes probe tasks, does one
kind of damage (a signal to a worker on this host, a Redis restart, a cut
network, a poison pill, a burst of pushes), waits for the probes to end,
and checks them against a ledger read back from the journal
(:mod:`relier._chaos_ledger`). It prints ``did:``, ``verified:`` (or
``FAILED:``) and ``measured:`` lines and a final verdict.

Exit codes: 0 PASS; 1 FAIL (a check failed); 2 the scenario cannot run here
(no worker runs the probes, none is on this host, bad usage); 3 Redis
unreachable; 4 NOT APPLICABLE (``redis-restart`` on a Redis this host
cannot restart). ``rl chaos all`` runs every scenario and exits 0 only if
each one passed or was not applicable.

Keys: the probes' (:mod:`relier.chaos_probes`); it owns none of its own.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import chaos_probes as probes
from ._chaos_ledger import Expect, Ledger
from ._cli_format import EXIT_UNAVAILABLE
from .app import Relier
from .clock import now_ms
from .connection import translate_errors
from .errors import RedisUnavailableError
from .leases import list_workers

__all__ = [
    "EXIT_CANNOT_RUN",
    "EXIT_FAIL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_APPLICABLE",
    "EXIT_PASS",
    "SCENARIOS",
    "ChaosRun",
    "ProbeWorker",
    "ScenarioResult",
    "run_chaos",
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
    "`celery worker` add `-I relier.chaos_probes`): they then run the probe tasks, on the "
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


def _ping(run: ChaosRun) -> None:
    """Fail fast when the listed workers do not in fact run probes."""
    probe_id = probes.ping.push().id
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (state,) = run.job(probe_id, "state")
        if state == "SUCCEEDED":
            return
        if state == "DEAD":
            break
        time.sleep(0.02)
    (state, reason) = run.job(probe_id, "state", "reason")
    raise CannotRun(
        f"a ping probe did not succeed within 10 s (state {state}, reason {reason}): the "
        f"listed workers do not consume {probes.QUEUE}: {ENABLE_HINT}"
    )


def _scenarios() -> dict[str, Callable[[ChaosRun], None]]:
    from . import _chaos_redis as r
    from . import _chaos_workers as w

    return {
        "worker-kill": w.worker_kill,
        "sigterm": w.sigterm,
        "zombie": w.zombie,
        "redis-restart": r.redis_restart,
        "poison-pill": w.poison_pill,
        "load-spike": w.load_spike,
        "partition": r.partition,
    }


SCENARIOS = (
    "worker-kill",
    "sigterm",
    "zombie",
    "redis-restart",
    "poison-pill",
    "load-spike",
    "partition",
)
# `rl chaos all`: the scenarios that leave every worker running first, SIGTERM last.
ALL_ORDER = (
    "poison-pill",
    "load-spike",
    "worker-kill",
    "zombie",
    "partition",
    "redis-restart",
    "sigterm",
)


def _run_one(
    relier: Relier, name: str, tasks: int | None, timeout: float, app: str | None, echo: bool
) -> ScenarioResult:
    result = ScenarioResult(name)
    run = ChaosRun(relier, result, tasks, timeout, app, echo)
    if echo:
        print(f"rl chaos {name}", flush=True)
    started = time.monotonic()
    try:
        with translate_errors(relier.settings.redis_url):
            run.require()
            _ping(run)
            _scenarios()[name](run)
    except CannotRun as exc:
        result.status, result.reason = "CANNOT RUN", str(exc)
    except NotApplicable as exc:
        result.status, result.reason = "NOT APPLICABLE", str(exc)
    except RedisUnavailableError as exc:
        result.status, result.reason = "REDIS UNAVAILABLE", str(exc)
    except Exception as exc:  # a scenario's own error is a FAIL with its cause, not a traceback
        run.check(False, f"the scenario raised {type(exc).__name__}: {exc}")
    finally:
        # No probe of this run may keep holding a worker after it.
        run.cleanups.insert(0, lambda: probes.release(relier, run.ledger.ids))
        for cleanup in reversed(run.cleanups):
            try:
                cleanup()
            except Exception as exc:  # a failed clean-up must not hide the verdict
                run.check(False, f"clean-up: {type(exc).__name__}: {exc}")
    if result.status == "PASS" and result.failed:
        result.status = "FAIL"
    result.seconds = round(time.monotonic() - started, 2)
    if echo:
        if result.reason:
            print(f"{result.status}: {result.reason}", flush=True)
        else:
            print(f"{result.status} ({name}, {result.seconds:.1f} s)", flush=True)
    return result


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_chaos(
    relier: Relier,
    scenario: str,
    tasks: int | None = None,
    timeout: float = 30.0,
    app: str | None = None,
    as_json: bool = False,
) -> int:
    """Run ``scenario`` (or ``all``) against the cluster; print the results; the exit code.

    Ctrl-C or SIGTERM stops the run after its clean-up (a stopped worker is
    continued, the partition worker stopped) and returns 130.
    """
    names = ALL_ORDER if scenario == "all" else (scenario,)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = [_run_one(relier, n, tasks, timeout, app, not as_json) for n in names]
    except KeyboardInterrupt:
        print("rl chaos: interrupted; cleaned up", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)
    if scenario == "all":
        code = EXIT_PASS
        if any(r.status == "FAIL" for r in results):
            code = EXIT_FAIL
        elif any(r.status == "REDIS UNAVAILABLE" for r in results):
            code = EXIT_UNAVAILABLE
        elif any(r.status == "CANNOT RUN" for r in results):
            code = EXIT_CANNOT_RUN
        if not as_json:
            print("summary: " + ", ".join(f"{r.scenario} {r.status}" for r in results))
            print("PASS" if code == EXIT_PASS else "FAIL")
    else:
        code = results[0].exit_code
    if as_json:
        rows = [
            {
                "scenario": r.scenario,
                "status": r.status,
                "exit_code": r.exit_code,
                "did": r.did,
                "verified": r.verified,
                "failed": r.failed,
                "figures": r.figures,
                "reason": r.reason,
                "seconds": r.seconds,
            }
            for r in results
        ]
        doc: Any = rows[0] if scenario != "all" else {"exit_code": code, "scenarios": rows}
        json.dump(doc, sys.stdout, sort_keys=True)
        print()
    return code
