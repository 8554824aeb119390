"""Async concurrency: many tasks that each ``await asyncio.sleep(1)`` on one worker process.

Relier runs an async task's coroutine on the worker process's one persistent event
loop (:mod:`relier.worker.loop`); the Celery pool thread that took the delivery claims the
task, hands the coroutine to that loop and waits for its outcome. So the number of
coroutines in flight in one process is the number of pool threads: one worker
``--pool threads --concurrency N`` (one process, N threads, prefetch N) runs up to N
at once, all on one loop. There is no pool that runs async tasks without a thread
each (Celery's own pools are prefork, threads, solo, and gevent/eventlet, which are
not installed here and which Relier does not support for its loop).

Plain Celery's equivalent: the same worker options, and the task runs its coroutine
with ``asyncio.run`` (a new event loop per call), the usual way to call async code
from a Celery task.

For each system in turn, on one Redis: one worker (``--pool threads --concurrency
--concurrency``, default 1000), ready and idle; the benchmark pushes ``--tasks``
(default 1000) calls of a task that awaits ``asyncio.sleep(1)`` (Relier
``push_many``; plain Celery ``send_task``) and times from the start of the push to
the moment every task ran and was acknowledged (queue and kombu's ``unacked`` empty).
Concurrency reached = tasks x 1 s / that time.

Target: Relier finishes 1,000 such tasks in < 15 s.

Run: ``python -m tests.bench.async_concurrency [--tasks 1000] [--concurrency 1000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from celery import Celery

from relier import Relier, load_settings

from . import plain_app, relier_app
from ._harness import BenchError, Stack, bound, exit_cleanly_on_sigterm, table, wait_finished

TARGET_S = 15.0
TARGET_TASKS = 1000
SLEEP_S = 1.0
RELIER_QUEUE = "celery"
_TIMEOUT_S = 180.0


def _relier(stack: Stack, relier: Relier, tasks: int, concurrency: int) -> dict[str, Any]:
    stack.relier_worker("ac", concurrency, "threads")
    t0 = time.monotonic()
    with bound(relier, relier_app.async_sleep):
        handles = relier_app.async_sleep.push_many([(SLEEP_S,)] * tasks)
    pushed = time.monotonic() - t0
    ended = wait_finished(stack.client, RELIER_QUEUE, _TIMEOUT_S, 0.02)
    with relier.redis.pipeline(transaction=False) as pipe:
        for handle in handles:
            pipe.hget(relier.keys.task(handle.id).job, "state")
        states = pipe.execute()
    stack.stop_workers()
    stack.workers.clear()
    done = sum(1 for s in states if s == b"SUCCEEDED")
    if done != tasks:
        raise BenchError(f"Relier: {done} of {tasks} async tasks SUCCEEDED")
    return {"seconds": ended - t0, "push_s": pushed}


def _plain(stack: Stack, sender: Celery, tasks: int, concurrency: int) -> dict[str, Any]:
    stack.plain_worker("acp", concurrency, "threads")
    t0 = time.monotonic()
    with sender.producer_or_acquire() as producer:
        for _ in range(tasks):
            sender.send_task(
                "bench_plain.async_sleep", args=[SLEEP_S], queue=plain_app.QUEUE, producer=producer
            )
    pushed = time.monotonic() - t0
    ended = wait_finished(stack.client, plain_app.QUEUE, _TIMEOUT_S, 0.02)
    stack.stop_workers()
    stack.workers.clear()
    return {"seconds": ended - t0, "push_s": pushed}


def run(tasks: int = TARGET_TASKS, concurrency: int = 1000) -> dict[str, Any]:
    """Run both systems; returns their wall times and the verdict."""
    started = time.monotonic()
    with Stack("async") as stack:
        stack.extra_env["BENCH_QUIET_TASKS"] = "1"
        relier = Relier(load_settings(redis_url=stack.url))
        sender = Celery("bench_sender", broker=stack.url)
        try:
            r = _relier(stack, relier, tasks, concurrency)
            _progress("Relier", tasks, r)
            p = _plain(stack, sender, tasks, concurrency)
            _progress("plain Celery", tasks, p)
        finally:
            sender.close()
            relier.close()
    # The target is for 1,000 tasks: scale a smaller or larger run's time to it.
    ok = tasks >= TARGET_TASKS and r["seconds"] < TARGET_S
    return {
        "benchmark": "async_concurrency",
        "tasks": tasks,
        "concurrency": concurrency,
        "relier": r,
        "plain": p,
        "verdict": "PASS" if ok else "FAIL",
        "elapsed_s": time.monotonic() - started,
    }


def _progress(system: str, tasks: int, m: dict[str, Any]) -> None:
    print(
        f"  {system:12s} {tasks} x sleep({SLEEP_S:g}) done in {m['seconds']:.2f} s "
        f"(push {m['push_s']:.2f} s)",
        file=sys.stderr,
    )


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    r, p = result["relier"], result["plain"]
    measured = (
        f"{r['seconds']:.2f} s (plain Celery {p['seconds']:.2f} s), {result['concurrency']} threads"
    )
    check = f"{result['tasks']:,} x await sleep(1) on one worker process (Relier)"
    target = f"< {TARGET_S:.0f} s for {TARGET_TASKS:,}"
    return [["async_concurrency", check, measured, target, result["verdict"]]]


def report(result: dict[str, Any], markdown: bool = False) -> str:
    headers = ["system", "tasks", "push s", "push -> all done s", "mean in flight"]
    headers.append("/ plain Celery")
    body = []
    base = result["plain"]["seconds"]
    for system, m in (("Relier", result["relier"]), ("plain Celery", result["plain"])):
        body.append([
            system, str(result["tasks"]), f"{m['push_s']:.2f}", f"{m['seconds']:.2f}",
            f"{result['tasks'] * SLEEP_S / m['seconds']:.0f}", f"{m['seconds'] / base:.2f}x",
        ])  # fmt: skip
    return (
        f"{table(headers, body, markdown)}\n\n"
        f"One worker process per system, --pool threads --concurrency "
        f"{result['concurrency']}; each task awaits asyncio.sleep({SLEEP_S:g}) (Relier: on the "
        f"process's loop; plain Celery: asyncio.run per task). Mean in flight = tasks x "
        f"{SLEEP_S:g} s / time. Target: Relier < "
        f"{TARGET_S:.0f} s for {TARGET_TASKS:,} tasks: {result['verdict']}."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.async_concurrency", description=__doc__
    )
    parser.add_argument("--tasks", type=int, default=TARGET_TASKS, help="async tasks")
    parser.add_argument("--concurrency", type=int, default=1000, help="pool threads")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(args.tasks, args.concurrency)
    print(report(result, args.markdown))
    return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
