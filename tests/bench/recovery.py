"""Kill-to-restart latency: how long a killed task waits before it runs again.

Four cases, each a series of runs on a private Redis:

* **pool-child death, Relier**: one worker (prefork, concurrency 2) runs
  ``bench.hold``; the benchmark SIGKILLs the pool process running it (the pid
  the journal records at claim). Latency = kill -> the next ``started`` event
  in the task's history. Target: p99 < 1 s.
* **whole-worker death, Relier**: two workers with default settings (lease
  2000 ms, renew 500 ms, scan 500 ms); the task runs on one of them, whose
  whole process group gets SIGKILL. Latency = kill -> ``started`` on the
  other worker. A fresh worker replaces the dead one before the next run.
  Left alone, the task lands on the longest-running worker, which also holds
  the resurrector lock; every other run is steered to the other worker, so
  both kinds of death are measured. Target: p99 < 3 s.
* the same two kills with **plain Celery** (``acks_late=True``,
  ``reject_on_worker_lost=True``, same Redis): latency = kill -> the task's
  next start, which the task itself records. Waits are bounded
  (``--plain-wait``): after a whole-worker kill, plain Celery gets the
  message back only when the Redis visibility timeout (1 h by default)
  expires, so it is reported as not recovered.

For Relier the detail table splits the latency at the ``resurrected`` event
(kill -> re-queued, then re-queued -> started). Percentiles interpolate
linearly between closest ranks (so with 30 runs, p99 lies between the two
slowest runs). Timestamps are wall-clock on one machine:
the kill time is taken just before ``kill()``, the restart time is the one
the worker wrote (the ``started`` event's ``now_ms()``, or ``time.time()``
in the plain task).

Run: ``python -m tests.bench.recovery [--runs 30] [--worker-runs 15]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
import uuid
from typing import Any

from celery import Celery

from relier import Relier, load_settings
from relier.ops.dlq import read_history

from . import plain_app, relier_app
from ._harness import (
    BenchError,
    Stack,
    Worker,
    exit_cleanly_on_sigterm,
    percentile,
    summary,
    table,
    wait_for,
)

CHILD_TARGET_S = 1.0
WORKER_TARGET_S = 3.0
HOLD_MAX_S = 120.0
# Kill at a random moment, not in step with the worker's 50 ms watcher or 500 ms ticks.
_JITTER_S = (0.1, 0.6)
# Latencies come from the timestamps the workers write, not from when the benchmark
# notices them: poll gently so the benchmark takes little CPU from the workers.
_POLL_S = 0.02


def _started(relier: Relier, task_id: str) -> list[dict[str, Any]]:
    return [e for e in read_history(relier, task_id) if e.get("e") == "started"]


def _running(relier: Relier, task_id: str) -> tuple[str, int] | None:
    state, owner, pid = relier.redis.hmget(relier.keys.task(task_id).job, "state", "owner", "pid")
    if state == b"RUNNING" and owner and pid:
        return owner.decode(), int(pid)
    return None


def _succeeded(relier: Relier, task_id: str) -> bool:
    return bool(relier.redis.hget(relier.keys.task(task_id).job, "state") == b"SUCCEEDED")


def _pause() -> None:
    time.sleep(random.uniform(*_JITTER_S))


def _after_kill(relier: Relier, task_id: str, t_kill: float) -> dict[str, Any]:
    """Wait for the killed task's next start; the kill -> re-queue -> start timings."""
    again = wait_for("the task to start again", lambda: _started(relier, task_id)[1:], 30, _POLL_S)
    events = read_history(relier, task_id)
    requeued = [e for e in events if e.get("e") == "resurrected"]
    return {
        "latency": again[0]["t"] / 1000 - t_kill,
        "requeue": requeued[0]["t"] / 1000 - t_kill if requeued else float("nan"),
        "kind": str(requeued[0].get("kind")) if requeued else "?",
        "owner": again[0].get("owner"),
    }


def _owner(relier: Relier, task_id: str) -> str:
    """The worker id running ``task_id``, once it runs."""
    owner: str = wait_for("a task to start", lambda: _running(relier, task_id), 30)[0]
    return owner


def _wait_succeeded(relier: Relier, task_id: str) -> None:
    wait_for("a task to succeed", lambda: _succeeded(relier, task_id), 30)


def _finish(relier: Relier, token: str, task_id: str) -> None:
    relier.redis.set(relier_app.RELEASE_KEY + token, 1)
    _wait_succeeded(relier, task_id)


def _child_run(relier: Relier) -> dict[str, Any]:
    token = uuid.uuid4().hex
    handle = relier_app.hold.push(token, HOLD_MAX_S)
    _, pid = wait_for("the task to start", lambda: _running(relier, handle.id), 30)
    _pause()
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    measured = _after_kill(relier, handle.id, t_kill)
    _finish(relier, token, handle.id)
    return measured


def relier_child(stack: Stack, relier: Relier, runs: int) -> dict[str, Any]:
    """Pool-child kills on one Relier worker; latencies in seconds."""
    stack.relier_worker("rchild", concurrency=2)
    measured = []
    for n in range(runs):
        measured.append(_child_run(relier))
        _progress("relier pool-child", n, runs, measured[-1]["latency"])
    stack.stop_workers()
    return {
        "latencies": [m["latency"] for m in measured],
        "requeue": [m["requeue"] for m in measured],
        "kinds": sorted({m["kind"] for m in measured}),
    }


def _leader_name(relier: Relier) -> str:
    holder = relier.redis.get(relier.keys.leader)
    return holder.decode().split("@", 1)[0] if holder else ""


def _worker_run(relier: Relier, alive: dict[str, Worker], steer: bool) -> dict[str, Any]:
    """One whole-worker kill; the killed worker leaves ``alive``.

    Left alone, the task tends to land on the longest-running worker, which
    also holds the resurrector lock. With ``steer``, two filler tasks first
    occupy the lock holder's two slots (through its own queue), so the task
    runs on, and the kill hits, the other worker; the fillers end right after
    the kill, freeing the survivor.
    """
    fillers: list[tuple[str, str]] = []
    leader = _leader_name(relier)
    if steer and leader in alive:
        for _ in range(2):
            token = uuid.uuid4().hex
            fillers.append((token, relier_app.hold.with_options(queue=leader).push(token, 60).id))
        for _, task_id in fillers:
            owner = _owner(relier, task_id)
            if owner.split("@", 1)[0] != leader:
                raise BenchError(f"filler {task_id} ran on {owner}, not on {leader}")
    token = uuid.uuid4().hex
    handle = relier_app.hold.push(token, HOLD_MAX_S)
    owner = _owner(relier, handle.id)
    victim = alive.pop(owner.split("@", 1)[0])
    _pause()
    was_leader = relier.redis.get(relier.keys.leader) == owner.encode()
    t_kill = time.time()
    victim.kill_group()
    for filler_token, _ in fillers:
        relier.redis.set(relier_app.RELEASE_KEY + filler_token, 1)
    measured = _after_kill(relier, handle.id, t_kill)
    if measured["owner"] == owner:
        raise BenchError(f"task {handle.id} restarted on its killed worker {owner}")
    _finish(relier, token, handle.id)
    for _, task_id in fillers:
        _wait_succeeded(relier, task_id)
    return {**measured, "killed_leader": was_leader}


def relier_worker(stack: Stack, relier: Relier, runs: int) -> dict[str, Any]:
    """Whole-worker kills with two Relier workers; latencies in seconds.

    Every other run is steered (see :func:`_worker_run`) so that both the
    resurrector's lock holder and the other worker get killed.
    """
    serial = 0

    def start() -> Worker:
        nonlocal serial
        serial += 1
        name = f"rw{serial}"
        return stack.relier_worker(name, 2, "prefork", "-Q", f"celery,{name}")

    alive = {w.name: w for w in (start(), start())}
    measured = []
    for n in range(runs):
        measured.append(_worker_run(relier, alive, steer=n % 2 == 1))
        note = "(killed the lock holder)" if measured[-1]["killed_leader"] else ""
        _progress("relier whole-worker", n, runs, measured[-1]["latency"], note)
        if n + 1 < runs:
            replacement = start()
            alive[replacement.name] = replacement
    stack.stop_workers()
    return {
        "latencies": [m["latency"] for m in measured],
        "requeue": [m["requeue"] for m in measured],
        "leader": [m["latency"] for m in measured if m["killed_leader"]],
        "other": [m["latency"] for m in measured if not m["killed_leader"]],
        "kinds": sorted({m["kind"] for m in measured}),
    }


def _plain_starts(stack: Stack, token: str) -> list[dict[str, Any]]:
    raw = stack.client.lrange(plain_app.STARTED_KEY + token, 0, -1)
    return [json.loads(r) for r in raw]


def _plain_run(
    stack: Stack, sender: Celery, wait: float, alive: dict[int, Worker] | None
) -> float | None:
    """One kill under plain Celery: its pool process, or (``alive`` given) its worker."""
    token = uuid.uuid4().hex
    sender.send_task("bench_plain.hold", args=[token, HOLD_MAX_S], queue=plain_app.QUEUE)
    first = wait_for("the plain task to start", lambda: _plain_starts(stack, token), 30)[0]
    _pause()
    t_kill = time.time()
    if alive is not None:
        alive.pop(first["ppid"]).kill_group()
    else:
        os.kill(first["pid"], signal.SIGKILL)
    try:
        again = wait_for("a restart", lambda: _plain_starts(stack, token)[1:], wait, _POLL_S)
    except BenchError:
        return None
    finally:
        stack.client.set(plain_app.RELEASE_KEY + token, 1)
    return float(again[0]["t"]) - t_kill


def _plain_series(
    stack: Stack, sender: Celery, runs: int, wait: float, whole_worker: bool, label: str
) -> dict[str, Any]:
    serial = 0

    def start() -> Worker:
        nonlocal serial
        serial += 1
        return stack.plain_worker(f"{label}{serial}", concurrency=2)

    alive = {w.pid: w for w in ([start(), start()] if whole_worker else [start()])}
    latencies: list[float] = []
    missed = 0
    for n in range(runs):
        latency = _plain_run(stack, sender, wait, alive if whole_worker else None)
        if latency is None:
            missed += 1
            _progress(f"plain {label}", n, runs, None, f"not recovered within {wait:.0f} s")
        else:
            latencies.append(latency)
            _progress(f"plain {label}", n, runs, latency)
        if whole_worker and n + 1 < runs:
            replacement = start()
            alive[replacement.pid] = replacement
    stack.stop_workers()
    return {"latencies": latencies, "not_recovered": missed, "runs": runs, "wait_s": wait}


def _progress(case: str, n: int, runs: int, latency: float | None, note: str = "") -> None:
    shown = f"{latency:.3f} s" if latency is not None else "-"
    print(f"  {case:22s} run {n + 1:2d}/{runs}: {shown} {note}".rstrip(), file=sys.stderr)


def run(
    runs: int = 30,
    worker_runs: int = 15,
    plain_runs: int = 15,
    plain_worker_runs: int = 2,
    plain_wait: float = 20.0,
    plain: bool = True,
) -> dict[str, Any]:
    """Run every case; returns the measurements (seconds) and verdicts."""
    started = time.monotonic()
    with Stack("recovery") as stack:
        relier = Relier(load_settings(redis_url=stack.url))
        relier_app.hold.relier = relier
        try:
            child = relier_child(stack, relier, runs)
            worker = relier_worker(stack, relier, worker_runs)
        finally:
            relier_app.hold.relier = None
            relier.close()
        plain_child = plain_worker = None
        if plain:
            sender = Celery("bench_sender", broker=stack.url)
            try:
                plain_child = _plain_series(stack, sender, plain_runs, plain_wait, False, "pc")
                plain_worker = _plain_series(
                    stack, sender, plain_worker_runs, plain_wait, True, "pw"
                )
            finally:
                sender.close()
    cases = [
        _case("pool-child death", "Relier", child, CHILD_TARGET_S),
        _case("whole-worker death", "Relier", worker, WORKER_TARGET_S),
    ]
    if plain_child is not None and plain_worker is not None:
        cases += [
            _case("pool-child death", "plain Celery", plain_child, None),
            _case("whole-worker death", "plain Celery", plain_worker, None),
        ]
    return {
        "benchmark": "recovery",
        "cases": cases,
        "details": [
            ("pool-child death: kill -> re-queued", child["requeue"]),
            ("whole-worker death: kill -> re-queued", worker["requeue"]),
            ("whole-worker death, lock holder killed: kill -> restart", worker["leader"]),
            ("whole-worker death, other worker killed: kill -> restart", worker["other"]),
        ],
        "resurrect_kinds": {"pool-child": child["kinds"], "whole-worker": worker["kinds"]},
        "elapsed_s": time.monotonic() - started,
    }


def _case(name: str, system: str, data: dict[str, Any], target: float | None) -> dict[str, Any]:
    lat = data["latencies"]
    runs = data.get("runs", len(lat))
    case: dict[str, Any] = {"case": name, "system": system, "runs": runs, **summary(lat)}
    case["recovered"] = len(lat)
    case["under_1s"] = sum(1 for x in lat if x < 1.0)
    case["wait_s"] = data.get("wait_s")
    case["target_s"] = target
    if target is None:
        case["verdict"] = "info"
    else:
        ok = len(lat) == runs and case["p99"] < target
        case["verdict"] = "PASS" if ok else "FAIL"
    return case


def _s(value: float) -> str:
    return f"{value:.3f}"


def rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The detail table: one row per case."""
    headers = ["case", "system", "recovered", "p50 s", "p95 s", "p99 s", "max s", "target"]
    headers.append("result")
    out = []
    for c in result["cases"]:
        target = f"p99 < {c['target_s']:.0f} s" if c["target_s"] is not None else "-"
        recovered = f"{c['recovered']}/{c['runs']}"
        if c["recovered"] == 0:
            never = f"not recovered within {c['wait_s']:.0f} s"
            out.append([c["case"], c["system"], recovered, never, "", "", "", target, c["verdict"]])
            continue
        if c["recovered"] < c["runs"]:
            recovered += f" (rest not within {c['wait_s']:.0f} s)"
        stats = [_s(c["p50"]), _s(c["p95"]), _s(c["p99"]), _s(c["max"])]
        out.append([c["case"], c["system"], recovered, *stats, target, c["verdict"]])
    return headers, out


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    out = []
    for c in result["cases"]:
        if c["recovered"] == 0:
            measured = f"not recovered within {c['wait_s']:.0f} s (0/{c['runs']})"
        else:
            measured = f"p50 {_s(c['p50'])} s, p99 {_s(c['p99'])} s (n={c['recovered']})"
            if c["recovered"] < c["runs"]:
                measured += f", {c['runs'] - c['recovered']} not within {c['wait_s']:.0f} s"
        target = f"p99 < {c['target_s']:.0f} s" if c["target_s"] is not None else "-"
        check = f"{c['case']}: kill -> restart ({c['system']})"
        out.append(["recovery", check, measured, target, c["verdict"]])
    return out


def report(result: dict[str, Any], markdown: bool = False) -> str:
    headers, body = rows(result)
    detail = [
        [name, str(len(v)), _s(percentile(v, 50)), _s(max(v))] if v else [name, "0", "-", "-"]
        for name, v in result["details"]
    ]
    kinds = "; ".join(f"{k}: {', '.join(v)}" for k, v in result["resurrect_kinds"].items())
    under = "; ".join(
        f"{c['case']}, {c['system']}: {c['under_1s']} of {c['runs']}" for c in result["cases"]
    )
    return (
        f"{table(headers, body, markdown)}\n\n"
        f"{table(['Relier, in detail', 'n', 'p50 s', 'max s'], detail, markdown)}\n\n"
        f"Restarted within 1 s of the kill: {under}.\n"
        f"Resurrection kinds recorded in the journal: {kinds}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.recovery", description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="pool-child kills (Relier)")
    parser.add_argument("--worker-runs", type=int, default=15, help="whole-worker kills (Relier)")
    parser.add_argument("--plain-runs", type=int, default=15, help="pool-child kills (Celery)")
    parser.add_argument(
        "--plain-worker-runs", type=int, default=2, help="whole-worker kills (plain Celery)"
    )
    parser.add_argument(
        "--plain-wait", type=float, default=20.0, help="how long to wait for plain Celery, s"
    )
    parser.add_argument("--no-plain", action="store_true", help="skip the plain Celery cases")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(
        args.runs,
        args.worker_runs,
        args.plain_runs,
        args.plain_worker_runs,
        args.plain_wait,
        not args.no_plain,
    )
    print(report(result, args.markdown))
    return 0 if all(c["verdict"] != "FAIL" for c in result["cases"]) else 1


if __name__ == "__main__":
    sys.exit(main())
