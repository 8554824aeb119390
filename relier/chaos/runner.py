"""``rl chaos SCENARIO``: break a running cluster on purpose and check nothing was lost.

Runs against the Redis of the settings (``RELIER_REDIS_URL``) and the
workers registered there that opted in to the probes (``RELIER_CHAOS=1``,
see :mod:`relier.chaos.probes`). Each scenario pushes probe tasks, does one
kind of damage (a signal to a worker on this host, a Redis restart, a cut
network, a poison pill, a burst of pushes), waits for the probes to end,
and checks them against a ledger read back from the journal
(:mod:`relier.chaos.ledger`). It prints ``did:``, ``verified:`` (or
``FAILED:``) and ``measured:`` lines and a final verdict.

Exit codes: 0 PASS; 1 FAIL (a check failed); 2 the scenario cannot run here
(no worker runs the probes, none is on this host, bad usage); 3 Redis
unreachable; 4 NOT APPLICABLE (``redis-restart`` on a Redis this host
cannot restart). ``rl chaos all`` runs every scenario and exits 0 only if
each one passed or was not applicable.

Keys: the probes' (:mod:`relier.chaos.probes`); it owns none of its own.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from relier.chaos import probes
from relier.chaos import redis_faults as r
from relier.chaos import workers as w
from relier.chaos.base import (
    ENABLE_HINT,
    EXIT_CANNOT_RUN,
    EXIT_FAIL,
    EXIT_INTERRUPTED,
    EXIT_NOT_APPLICABLE,
    EXIT_PASS,
    CannotRun,
    ChaosRun,
    NotApplicable,
    ProbeWorker,
    ScenarioResult,
)
from relier.cli.format import EXIT_UNAVAILABLE
from relier.errors import RedisUnavailableError
from relier.hub import Relier
from relier.journal.connection import translate_errors

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
