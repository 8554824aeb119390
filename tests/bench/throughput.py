"""End-to-end throughput of no-op tasks: Relier against plain Celery, same worker.

For each system, in turns (Relier, plain Celery, Relier, ... ``--rounds`` each), on
one Redis: the benchmark fills the queue with ``--tasks`` no-op calls while no worker
runs (Relier: ``push_many``; plain Celery: ``send_task``), then starts one worker
(prefork, ``--concurrency 2``, Celery's per-task INFO log lines silenced for both)
and watches the queue from Redis. The clock starts when the queue first shrinks
(the worker took its first task; its start-up is not counted) and stops when the
queue and kombu's ``unacked`` hash are both empty: every task ran and was
acknowledged (both systems acknowledge late). Tasks/s = tasks / that time.

What differs is only what each system does per task: Relier reserves the task in
its journal when the worker receives it (``reserve.lua``), claims it before running
(``claim.lua``: state, fence, owner) and commits it after (``complete.lua``); plain
Celery runs the function and acknowledges. Plain Celery runs with
``acks_late=True``, ``task_reject_on_worker_lost=True``, prefetch multiplier 1, JSON,
no result backend (:mod:`tests.bench.plain_app`); Relier sets the same on its app
except ``reject_on_worker_lost`` (it re-queues lost tasks through its journal).

Target: Relier's tasks/s (mean of its rounds) at least 0.85x plain Celery's.

Run: ``python -m tests.bench.throughput [--tasks 2000] [--rounds 5] [--markdown]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from celery import Celery

from relier import Relier, load_settings

from . import plain_app, relier_app
from ._harness import (
    BenchError,
    Stack,
    Worker,
    bound,
    child_pids,
    cpu_seconds,
    exit_cleanly_on_sigterm,
    table,
    wait_finished,
    wait_for,
)

MIN_RATIO = 0.85
CONCURRENCY = 2
RELIER_QUEUE = "celery"  # RELIER_DEFAULT_QUEUE's default
NOTE = "bench-throughput"
_POLL_S = 0.005
_TIMEOUT_S = 300.0


def _cpu(stack: Stack, worker: Worker) -> dict[str, float]:
    """CPU seconds used so far by the worker's main process, its pool and redis-server."""
    assert stack.redis.proc is not None
    return {
        "main": cpu_seconds(worker.pid),
        "pool": sum(cpu_seconds(pid) for pid in child_pids(worker.pid)),
        "redis": cpu_seconds(stack.redis.proc.pid),
    }


def _consume(stack: Stack, queue: str, tasks: int, start: Any) -> dict[str, Any]:
    """Start the worker on a full queue; seconds from its first take to the last ack,
    and the CPU each process used per task meanwhile (ms)."""
    worker = start()
    try:
        began = wait_for(
            "the worker to take a task",
            lambda: time.monotonic() if stack.client.llen(queue) < tasks else None,
            60,
            _POLL_S,
        )
        cpu0 = _cpu(stack, worker)
        ended = wait_finished(stack.client, queue, _TIMEOUT_S, _POLL_S)
        cpu1 = _cpu(stack, worker)
    finally:
        worker.stop()
        stack.workers.remove(worker)
    cpu_ms = {k: (cpu1[k] - cpu0[k]) * 1000 / tasks for k in cpu0}
    return {"seconds": float(ended - began), "cpu_ms": cpu_ms}


def _relier_round(stack: Stack, relier: Relier, tasks: int, n: int) -> dict[str, Any]:
    with bound(relier, relier_app.noop):
        handles = relier_app.noop.push_many([(i, NOTE) for i in range(tasks)])
    measured = _consume(
        stack,
        RELIER_QUEUE,
        tasks,
        lambda: stack.relier_worker(f"tr{n}", CONCURRENCY, "prefork", wait=False),
    )
    with relier.redis.pipeline(transaction=False) as pipe:
        for handle in handles:
            pipe.hget(relier.keys.task(handle.id).job, "state")
        states = pipe.execute()
    done = sum(1 for s in states if s == b"SUCCEEDED")
    if done != tasks:
        raise BenchError(f"Relier round {n}: {done} of {tasks} tasks SUCCEEDED")
    return measured


def _plain_round(stack: Stack, sender: Celery, tasks: int, n: int) -> dict[str, Any]:
    with sender.producer_or_acquire() as producer:
        for i in range(tasks):
            sender.send_task(
                "bench_plain.noop", args=[i, NOTE], queue=plain_app.QUEUE, producer=producer
            )
    return _consume(
        stack,
        plain_app.QUEUE,
        tasks,
        lambda: stack.plain_worker(f"tp{n}", CONCURRENCY, wait=False),
    )


def _past_first_seconds(stack: Stack) -> None:
    """Wait until Redis has run 3 s before the first push.

    A worker's first resurrector tick on a Redis run it has not seen reconciles it
    (:func:`relier.orphans.reconcile_after_restart`): every PENDING task last touched
    before the start that Redis's whole-second uptime implies, plus a second of
    slack, gets a second message, in case the restart lost its first. Tasks pushed
    in a new Redis's first two seconds count as such, and a full queue would then be
    delivered twice. After a real Redis restart that is what Relier does; the
    benchmark measures the steady state.
    """
    wait_for(
        "Redis to have run 3 s",
        lambda: int(stack.client.info("server")["uptime_in_seconds"]) >= 3,
        10,
        0.1,
    )


def run(tasks: int = 2000, rounds: int = 5) -> dict[str, Any]:
    """Alternate Relier and plain Celery rounds; returns tasks/s per round and the verdict."""
    started = time.monotonic()
    relier_rates: list[float] = []
    plain_rates: list[float] = []
    cpu: dict[str, list[dict[str, float]]] = {"relier": [], "plain": []}
    with Stack("throughput") as stack:
        stack.extra_env["BENCH_QUIET_TASKS"] = "1"
        relier = Relier(load_settings(redis_url=stack.url))
        sender = Celery("bench_sender", broker=stack.url)
        _past_first_seconds(stack)
        try:
            for n in range(rounds):
                m = _relier_round(stack, relier, tasks, n)
                relier_rates.append(tasks / m["seconds"])
                cpu["relier"].append(m["cpu_ms"])
                _progress("Relier", n, rounds, tasks, m)
                m = _plain_round(stack, sender, tasks, n)
                plain_rates.append(tasks / m["seconds"])
                cpu["plain"].append(m["cpu_ms"])
                _progress("plain Celery", n, rounds, tasks, m)
        finally:
            sender.close()
            relier.close()
    ratio = statistics.mean(relier_rates) / statistics.mean(plain_rates)
    return {
        "benchmark": "throughput",
        "tasks": tasks,
        "relier": relier_rates,
        "plain": plain_rates,
        "cpu_ms": {
            system: {k: statistics.mean(r[k] for r in rounds_) for k in rounds_[0]}
            for system, rounds_ in cpu.items()
        },
        "ratio": ratio,
        "verdict": "PASS" if ratio >= MIN_RATIO else "FAIL",
        "elapsed_s": time.monotonic() - started,
    }


def _progress(system: str, n: int, rounds: int, tasks: int, m: dict[str, Any]) -> None:
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in m["cpu_ms"].items())
    print(
        f"  {system:12s} round {n + 1}/{rounds}: {tasks} tasks in {m['seconds']:.2f} s "
        f"= {tasks / m['seconds']:,.0f}/s (CPU ms per task: {cpu})",
        file=sys.stderr,
    )


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    r, p = statistics.mean(result["relier"]), statistics.mean(result["plain"])
    measured = f"{r:,.0f} / {p:,.0f} tasks/s = {result['ratio']:.2f}x"
    check = "no-op tasks/s, Relier / plain Celery"
    return [["throughput", check, measured, f">= {MIN_RATIO}x", result["verdict"]]]


def report(result: dict[str, Any], markdown: bool = False) -> str:
    rounds = len(result["relier"])
    headers = ["system", *(f"round {n + 1} tasks/s" for n in range(rounds)), "mean tasks/s"]
    headers.append("/ plain Celery")
    body = []
    base = statistics.mean(result["plain"])
    for system, rates in (("Relier", result["relier"]), ("plain Celery", result["plain"])):
        mean = statistics.mean(rates)
        body.append([system, *(f"{r:,.0f}" for r in rates), f"{mean:,.0f}", f"{mean / base:.2f}x"])
    cpu_headers = ["CPU ms per task", "worker main process", "pool processes", "redis-server"]
    cpu_headers.append("all")
    cpu_rows = []
    for system, key in (("Relier", "relier"), ("plain Celery", "plain")):
        c = result["cpu_ms"][key]
        cpu_rows.append([system, *(f"{c[k]:.2f}" for k in ("main", "pool", "redis"))])
        cpu_rows[-1].append(f"{sum(c.values()):.2f}")
    return (
        f"{table(headers, body, markdown)}\n\n"
        f"{table(cpu_headers, cpu_rows, markdown)}\n\n"
        f"{result['tasks']:,} no-op tasks per round, one worker (prefork, concurrency "
        f"{CONCURRENCY}) per round, the queue filled before it starts. CPU time (user + "
        f"system, from /proc) per task, mean of the rounds, over the timed window. "
        f"Ratio {result['ratio']:.2f} (target >= {MIN_RATIO}): {result['verdict']}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.throughput", description=__doc__)
    parser.add_argument("--tasks", type=int, default=2000, help="no-op tasks per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per system")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.tasks, args.rounds)
    print(report(result, args.markdown))
    return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
