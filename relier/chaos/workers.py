"""``rl chaos`` scenarios that damage workers or their work, and the helpers all share.

Every scenario takes a :class:`relier.chaos.ChaosRun`, records what it did,
verified and measured on it, and ends with ``run.finish()`` (the ledger's
claims: nothing lost, nothing unexpected, nothing committed twice).
Signals go only to worker processes on this host (``/proc`` lists their
pool processes); the workers' lease timing is read from this process's
settings, so run ``rl chaos`` with the workers' ``RELIER_*`` settings. The
Redis scenarios are in :mod:`relier.chaos.redis_faults`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from relier.chaos import probes
from relier.chaos.base import (
    ChaosRun,
    ProbeWorker,
    lease_s,
    process_alive,
    restart_latency,
    task_state,
    wait_for,
)
from relier.chaos.ledger import Expect, after, summary
from relier.clock import now_ms
from relier.errors import AdmissionRejectedError
from relier.ops.dlq import read_history
from relier.tasks.admission import parse_rate

__all__ = ["load_spike", "poison_pill", "sigterm", "worker_kill", "zombie"]


# -- processes on this host -----------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _pick_local(workers: list[ProbeWorker]) -> ProbeWorker:
    return next(w for w in workers if w.local)


# -- worker-kill ----------------------------------------------------------


def worker_kill(run: ChaosRun) -> None:
    """SIGKILL the pool process running a probe (an OOM kill), twice; the probe re-runs."""
    target = _pick_local(run.require(local=1))
    for _ in range(run.tasks or 10):
        run.push(probes.ping)
    requeued: list[float] = []
    restarted: list[float] = []
    killed: list[str] = []
    for _ in range(2):
        (task_id,) = run.land(target, seconds=30.0)
        pid = int(run.job(task_id, "pid")[0] or 0)
        if pid not in _children(target.pid):
            run.check(False, f"probe {task_id} runs in pid {pid}, a pool process of {target.pid}")
            return
        at = now_ms()
        os.kill(pid, signal.SIGKILL)
        killed.append(task_id)
        run.did(
            f"SIGKILLed pool process {pid} of worker {target.worker_id} while it ran probe "
            f"{task_id}"
        )
        wait_for(lambda: task_state(run, task_id) in ("SUCCEEDED", "DEAD"), run.timeout)  # noqa: B023
        back, again = restart_latency(run, task_id, at, "resurrected")
        if back is not None:
            requeued.append(back)
        if again is not None:
            restarted.append(again)
    run.finish()
    verdict = run.ledger.verdict()
    for task_id in killed:
        job, history = verdict.jobs[task_id], verdict.histories[task_id]
        kinds = [e.get("kind") for e in history if e["e"] == "resurrected"]
        run.check(
            job.get("state") == "SUCCEEDED" and kinds == ["child"] and job.get("res") == "1",
            f"probe {task_id} was re-queued once as a pool-process crash (resurrected kinds "
            f"{kinds}, res {job.get('res')}) and succeeded on attempt {job.get('attempt')}",
        )
        run.check(
            verdict.runs[task_id] == 2,
            f"probe {task_id}'s body ran twice (killed, then the re-run): {verdict.runs[task_id]}",
        )
    alive = any(w.worker_id == target.worker_id for w in run.workers())
    run.check(alive, f"worker {target.worker_id} is still alive (it replaced its pool process)")
    run.figure("kill_to_requeued_ms", summary(requeued))
    run.figure("kill_to_restarted_ms", summary(restarted))


# -- zombie ---------------------------------------------------------------


def zombie(run: ChaosRun) -> None:
    """SIGSTOP a worker past its lease; its probe runs elsewhere; SIGCONT: its commit is refused."""
    target = _pick_local(run.require(count=2, local=1))
    # Held long enough that it cannot end on the target before the SIGSTOP lands.
    (task_id,) = run.land(target, seconds=10.0)
    pids = [target.pid, *_children(target.pid)]
    at = now_ms()
    _signal_all(pids, signal.SIGSTOP)
    run.cleanups.append(lambda: _signal_all(pids, signal.SIGCONT))
    run.did(
        f"SIGSTOPped worker {target.worker_id} (main process {target.pid} and "
        f"{len(pids) - 1} pool processes) while it ran probe {task_id}"
    )
    ran = wait_for(lambda: task_state(run, task_id) == "SUCCEEDED", lease_s(run) * 3 + run.timeout)
    frozen_s = (now_ms() - at) / 1000
    cont_at = now_ms()
    _signal_all(pids, signal.SIGCONT)
    probes.release(run.relier, [task_id])  # the woken attempt stops holding and commits
    run.did(f"SIGCONTed it after {frozen_s:.1f} s (the lease is {lease_s(run):.1f} s)")
    if not run.check(bool(ran), f"probe {task_id} succeeded elsewhere while the worker was frozen"):
        run.finish()
        return
    stale = wait_for(lambda: after(read_history(run.relier, task_id), "stale_commit", cont_at), 15)
    awake = wait_for(lambda: any(w.worker_id == target.worker_id for w in run.workers()), 15)
    run.finish()
    job = run.ledger.verdict().jobs[task_id]
    result = json.loads(job.get("result", "{}"))
    run.check(
        result.get("worker") != target.worker_id and int(job.get("fence", 0)) >= 2,
        f"the committed result is the survivor's ({result.get('worker')}, fence "
        f"{result.get('fence')}), not the frozen worker's",
    )
    run.check(
        bool(stale),
        f"the woken worker's late commit was refused by the fence (stale_commit, fence "
        f"{stale.get('fence') if stale else '?'})",
    )
    run.check(bool(awake), f"worker {target.worker_id} renewed its lease again after SIGCONT")
    back, again = restart_latency(run, task_id, at, "resurrected")
    run.figure("stop_to_requeued_ms", back)
    run.figure("stop_to_restarted_elsewhere_ms", again)
    if stale:
        run.figure("cont_to_stale_commit_refused_ms", int(stale["t"]) - cont_at)


# -- sigterm --------------------------------------------------------------


def sigterm(run: ChaosRun) -> None:
    """SIGTERM a worker holding probes: it hands back what it did not start and exits."""
    target = _pick_local(run.require(count=2, local=1))
    (running,) = run.land(target, seconds=1.0)
    for _ in range(run.tasks or 10):
        run.push(probes.ping)
    at = now_ms()
    os.kill(target.pid, signal.SIGTERM)
    run.did(f"SIGTERMed worker {target.worker_id} (pid {target.pid}) while it ran a probe")
    grace = run.settings.shutdown_grace
    exited = wait_for(lambda: not process_alive(target.pid), grace + run.timeout, 0.01)
    exit_ms = now_ms() - at
    run.check(bool(exited), f"worker {target.worker_id} exited ({exit_ms} ms after SIGTERM)")
    run.finish()
    verdict = run.ledger.verdict()
    handbacks = [
        (task_id, e)
        for task_id, history in verdict.histories.items()
        for e in history
        if e["e"] == "handoff" and e.get("from") == target.worker_id and e["t"] >= at
    ]
    later = [
        int(s["t"]) - int(e["t"])
        for task_id, e in handbacks
        if (s := after(verdict.histories[task_id], "started", int(e["t"]))) is not None
    ]
    run.did(f"the worker handed {len(handbacks)} probes back; it stays stopped (restart it)")
    result = json.loads(verdict.jobs[running].get("result", "{}"))
    finished_there = result.get("worker") == target.worker_id
    handed = any(task_id == running for task_id, _ in handbacks)
    run.check(
        finished_there or handed,
        "the probe running at SIGTERM "
        + (
            "finished on the stopping worker, within the grace period"
            if finished_there
            else f"was handed back and ran on {result.get('worker')}"
        ),
    )
    listed = any(w.worker_id == target.worker_id for w in run.workers())
    run.check(not listed, "the stopped worker is no longer listed as alive")
    run.figure("sigterm_to_exit_ms", exit_ms)
    run.figure("handed_back", len(handbacks))
    if handbacks:
        run.figure("sigterm_to_handback_ms", min(int(e["t"]) for _, e in handbacks) - at)
        run.figure("handback_to_restarted_ms", summary([float(v) for v in later]))


# -- poison-pill ----------------------------------------------------------


def poison_pill(run: ChaosRun) -> None:
    """One probe that ends its own process every time, among normal ones."""
    run.require()
    pill = run.push(probes.crash, expect=Expect("DEAD", "poison_pill"))
    for _ in range(run.tasks or 20):
        run.push(probes.ping)
    run.did(f"pushed poison pill {pill} (os._exit in its body) among {run.tasks or 20} probes")
    run.finish()
    verdict = run.ledger.verdict()
    job, runs = verdict.jobs[pill], verdict.runs[pill]
    in_dlq = run.relier.redis.zscore(run.relier.keys.dlq, pill) is not None
    run.check(
        job.get("state") == "DEAD" and job.get("reason") == "poison_pill" and in_dlq,
        f"the pill is in the DLQ with reason poison_pill (state {job.get('state')}, reason "
        f"{job.get('reason')}, in rl:dlq: {in_dlq})",
    )
    run.check(
        runs >= 1 and job.get("res") == str(runs),
        f"each of its {runs} runs killed its process and was counted once (res {job.get('res')})",
    )
    innocent = [i for i, j in verdict.jobs.items() if i != pill and j.get("res", "0") != "0"]
    run.check(not innocent, f"no neighbour was counted as a crash ({len(innocent)} were)")
    run.figure("pill_executions", runs)
    if job.get("finished") and job.get("created"):
        run.figure("push_to_dlq_ms", int(float(job["finished"])) - int(float(job["created"])))


# -- load-spike -----------------------------------------------------------


def _used_memory(run: ChaosRun) -> int:
    return int(run.relier.redis.info("memory")["used_memory"])


def load_spike(run: ChaosRun) -> None:
    """A burst far above a rate-limited probe's limit: rejections carry an exact retry-after."""
    run.require()
    interval_ms = parse_rate(probes.LIMITED_RATE)
    burst = probes.LIMITED_BURST
    n = run.tasks or 300
    queue = run.relier.keys.queue(probes.QUEUE)
    memory_before = _used_memory(run)
    admitted: list[str] = []
    rejected: list[AdmissionRejectedError] = []
    depth_max = 0
    started = time.monotonic()
    for i in range(n):
        try:
            admitted.append(run.push(probes.limited, i))
        except AdmissionRejectedError as exc:
            rejected.append(exc)
        if i % 25 == 0:
            depth_max = max(depth_max, int(run.relier.redis.llen(queue)))
    elapsed = time.monotonic() - started
    depth_max = max(depth_max, int(run.relier.redis.llen(queue)))
    memory_after = _used_memory(run)
    run.did(
        f"pushed {n} calls of relier.chaos.limited ({probes.LIMITED_RATE}, burst {burst}) in "
        f"{elapsed:.2f} s: {len(admitted)} admitted, {len(rejected)} rejected"
    )
    allowed = burst + elapsed * 1000 / interval_ms + 1
    run.check(
        len(admitted) <= allowed and len(rejected) > 0,
        f"admitted at most burst + rate x time ({len(admitted)} <= {allowed:.0f}), the rest "
        "rejected",
    )
    waits = [e.retry_after for e in rejected]
    bound = burst * interval_ms / 1000
    run.check(
        all(e.reason == "rate" and 0 < e.retry_after <= bound + 1e-3 for e in rejected),
        f"every rejection is a rate rejection with 0 < retry_after <= {bound:.2f} s",
    )
    # Honour one retry_after: the same push must then be admitted.
    try:
        run.push(probes.limited, -1)
        honoured = "(none needed: admitted at once)"
        ok = True
    except AdmissionRejectedError as exc:
        time.sleep(exc.retry_after + 0.002)
        try:
            run.push(probes.limited, -1)
            honoured, ok = f"({exc.retry_after * 1000:.0f} ms) was admitted", True
        except AdmissionRejectedError as again:
            honoured = (
                f"({exc.retry_after * 1000:.0f} ms) was rejected again (now "
                f"{again.retry_after * 1000:.0f} ms)"
            )
            ok = False
    run.check(ok, f"a rejected call retried after its retry_after {honoured}")
    run.check(
        depth_max <= len(admitted) + 1,
        f"the probe queue never held more than the admitted calls (max depth {depth_max})",
    )
    growth = memory_after - memory_before
    limit = (len(admitted) + 1) * 16_384 + 1_048_576
    run.check(
        growth <= limit,
        f"Redis memory grew by {growth} bytes, within {limit} (rejected calls store nothing)",
    )
    run.finish()
    run.figure("admitted", len(admitted))
    run.figure("rejected", len(rejected))
    run.figure("burst_seconds", round(elapsed, 3))
    run.figure(
        "retry_after_ms",
        summary([w * 1000 for w in waits]) | {"min": round(min(waits) * 1000, 1) if waits else 0},
    )
    run.figure("queue_depth_max", depth_max)
    run.figure("redis_memory_growth_bytes", growth)
