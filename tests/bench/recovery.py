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
  Target: p99 < 3 s.
* the same two kills with **plain Celery** (``acks_late=True``,
  ``reject_on_worker_lost=True``, same Redis): latency = kill -> the task's
  next start, which the task itself records. Waits are bounded
  (``--plain-wait``): after a whole-worker kill, plain Celery gets the
  message back only when the Redis visibility timeout (1 h by default)
  expires, so it is reported as not recovered.

Percentiles interpolate linearly between closest ranks (so with 30 runs, p99
lies between the two slowest runs). Timestamps are wall-clock on one machine:
the kill time is taken just before ``kill()``, the restart time is the one
the worker wrote (``now_ms()`` in ``claim.lua``'s event, or ``time.time()``
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
from relier.dlq import read_history

from . import plain_app, relier_app
from ._harness import BenchError, Stack, Worker, summary, table, wait_for

CHILD_TARGET_S = 1.0
WORKER_TARGET_S = 3.0
HOLD_MAX_S = 120.0
# Kill at a random moment, not in step with the worker's 50 ms watcher or 500 ms ticks.
_JITTER_S = (0.1, 0.6)


def _started(relier: Relier, task_id: str) -> list[dict[str, Any]]:
    return [e for e in read_history(relier, task_id) if e.get("e") == "started"]


def _running(relier: Relier, task_id: str) -> tuple[str, int] | None:
    state, owner, pid = relier.redis.hmget(relier.keys.task(task_id).job, "state", "owner", "pid")
    if state == b"RUNNING" and owner and pid:
        return owner.decode(), int(pid)
    return None


def _succeeded(relier: Relier, task_id: str) -> bool:
    return bool(relier.redis.hget(relier.keys.task(task_id).job, "state") == b"SUCCEEDED")


def _kinds(relier: Relier, task_id: str) -> list[str]:
    events = read_history(relier, task_id)
    return [str(e.get("kind")) for e in events if e.get("e") == "resurrected"]


def _pause() -> None:
    time.sleep(random.uniform(*_JITTER_S))


def _child_run(relier: Relier) -> tuple[float, list[str]]:
    token = uuid.uuid4().hex
    handle = relier_app.hold.push(token, HOLD_MAX_S)
    _, pid = wait_for("the task to start", lambda: _running(relier, handle.id), 30)
    _pause()
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    again = wait_for("the task to start again", lambda: _started(relier, handle.id)[1:], 20, 0.002)
    latency = again[0]["t"] / 1000 - t_kill
    kinds = _kinds(relier, handle.id)
    relier.redis.set(relier_app.RELEASE_KEY + token, 1)
    wait_for("the task to succeed", lambda: _succeeded(relier, handle.id), 30)
    return latency, kinds


def relier_child(stack: Stack, relier: Relier, runs: int) -> dict[str, Any]:
    """Pool-child kills on one Relier worker; latencies in seconds."""
    stack.relier_worker("rchild", concurrency=2)
    latencies: list[float] = []
    kinds: set[str] = set()
    for n in range(runs):
        latency, run_kinds = _child_run(relier)
        latencies.append(latency)
        kinds.update(run_kinds)
        _progress("relier pool-child", n, runs, latency)
    stack.stop_workers()
    return {"latencies": latencies, "resurrect_kinds": sorted(kinds)}


def _worker_run(relier: Relier, alive: dict[str, Worker]) -> tuple[float, bool, list[str]]:
    """One whole-worker kill; the killed worker leaves ``alive``."""
    token = uuid.uuid4().hex
    handle = relier_app.hold.push(token, HOLD_MAX_S)
    owner, _ = wait_for("the task to start", lambda: _running(relier, handle.id), 30)
    victim = alive.pop(owner.split("@", 1)[0])
    _pause()
    was_leader = relier.redis.get(relier.keys.leader) == owner.encode()
    t_kill = time.time()
    victim.kill_group()
    again = wait_for(
        "the task to start on the other worker", lambda: _started(relier, handle.id)[1:], 30, 0.002
    )
    if again[0].get("owner") == owner:
        raise BenchError(f"task {handle.id} restarted on its killed worker {owner}")
    latency = again[0]["t"] / 1000 - t_kill
    kinds = _kinds(relier, handle.id)
    relier.redis.set(relier_app.RELEASE_KEY + token, 1)
    wait_for("the task to succeed", lambda: _succeeded(relier, handle.id), 30)
    return latency, was_leader, kinds


def relier_worker(stack: Stack, relier: Relier, runs: int) -> dict[str, Any]:
    """Whole-worker kills with two Relier workers; latencies in seconds."""
    serial = 0

    def start() -> Worker:
        nonlocal serial
        serial += 1
        return stack.relier_worker(f"rw{serial}", concurrency=2)

    alive = {w.name: w for w in (start(), start())}
    latencies: list[float] = []
    killed_leader: list[bool] = []
    kinds: set[str] = set()
    for n in range(runs):
        latency, was_leader, run_kinds = _worker_run(relier, alive)
        latencies.append(latency)
        killed_leader.append(was_leader)
        kinds.update(run_kinds)
        note = "(killed the leader)" if was_leader else ""
        _progress("relier whole-worker", n, runs, latency, note)
        if n + 1 < runs:
            replacement = start()
            alive[replacement.name] = replacement
    stack.stop_workers()
    leader_lat = [x for x, k in zip(latencies, killed_leader, strict=True) if k]
    other_lat = [x for x, k in zip(latencies, killed_leader, strict=True) if not k]
    return {
        "latencies": latencies,
        "killed_leader": sum(killed_leader),
        "leader_max": max(leader_lat, default=None),
        "other_max": max(other_lat, default=None),
        "resurrect_kinds": sorted(kinds),
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
        again = wait_for("a restart", lambda: _plain_starts(stack, token)[1:], wait, 0.002)
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
    plain_runs: int = 10,
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
        "relier_worker_killed_leader": worker["killed_leader"],
        "relier_worker_leader_max": worker["leader_max"],
        "relier_worker_other_max": worker["other_max"],
        "resurrect_kinds": {"child": child["resurrect_kinds"], "worker": worker["resurrect_kinds"]},
        "elapsed_s": time.monotonic() - started,
    }


def _case(name: str, system: str, data: dict[str, Any], target: float | None) -> dict[str, Any]:
    lat = data["latencies"]
    runs = data.get("runs", len(lat))
    case: dict[str, Any] = {"case": name, "system": system, "runs": runs, **summary(lat)}
    case["recovered"] = len(lat)
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
    text = table(headers, body, markdown)
    n_leader = result["relier_worker_killed_leader"]
    n_worker = next(c["runs"] for c in result["cases"] if c["case"] == "whole-worker death")
    note = (
        f"Whole-worker runs where the killed worker held the resurrector lock: {n_leader} of "
        f"{n_worker}"
    )
    if result["relier_worker_leader_max"] is not None:
        note += f" (max {result['relier_worker_leader_max']:.3f} s"
        if result["relier_worker_other_max"] is not None:
            note += f"; others max {result['relier_worker_other_max']:.3f} s"
        note += ")"
    return f"{text}\n\n{note}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.recovery", description=__doc__)
    parser.add_argument("--runs", type=int, default=30, help="pool-child kills (Relier)")
    parser.add_argument("--worker-runs", type=int, default=15, help="whole-worker kills (Relier)")
    parser.add_argument("--plain-runs", type=int, default=10, help="pool-child kills (Celery)")
    parser.add_argument(
        "--plain-worker-runs", type=int, default=2, help="whole-worker kills (plain Celery)"
    )
    parser.add_argument(
        "--plain-wait", type=float, default=20.0, help="how long to wait for plain Celery, s"
    )
    parser.add_argument("--no-plain", action="store_true", help="skip the plain Celery cases")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
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
