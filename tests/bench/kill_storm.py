"""Delivery under a kill storm: Relier against plain Celery, the same tasks, the same kills.

For each system in turn, on one Redis: two workers (prefork, concurrency 2) and
``--storm-tasks`` calls of a task that sleeps ``--storm-task-seconds`` and then
appends its number to the Redis list ``bench:storm:done`` (Relier ``push_many``;
plain Celery ``send_task``). Then, every ``--storm-interval`` seconds for
``--storm-window`` seconds, the benchmark sends SIGKILL: every
``--storm-worker-every``-th time to a whole worker (its process group, like an OOM
kill of its container; a replacement is started at once), otherwise to one pool
process of a worker. Only workers whose pool is up are picked. Which worker and
which pool process come from a random generator seeded the same for both systems.
After the window, it waits until every task is done, or until nothing has completed
for ``--storm-settle`` seconds.

Counted from the list: **delivered** (distinct tasks that ran to the end), **lost**
(pushed, never ran to the end), **duplicated** (runs to the end beyond the first: a
task killed after its body and before its acknowledgement runs again under both
systems). For Relier the journal's final states are reported too (every task must
end SUCCEEDED or DEAD in the DLQ).

Plain Celery runs with ``acks_late=True`` and ``task_reject_on_worker_lost=True``
(:mod:`tests.bench.plain_app`): a pool process's task is re-queued when Celery sees
the process die, but the messages a dead worker held (running and prefetched) come
back only when kombu's visibility timeout (1 hour by default) expires, far past the
settle time.

Target: Relier loses nothing (every task delivered). Plain Celery: reported.

Run: ``python -m tests.bench.kill_storm [--storm-tasks 300] [--storm-window 15] [--markdown]``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from celery import Celery

from relier import Relier, load_settings

from . import plain_app, relier_app
from ._harness import Stack, Worker, bound, child_pids, exit_cleanly_on_sigterm, table

SEED = 8
STORM_KEY = relier_app.STORM_KEY
_POLL_S = 0.2


@dataclass(frozen=True, slots=True)
class Storm:
    """The storm's settings (the ``--storm-*`` options)."""

    tasks: int = 300
    task_seconds: float = 0.2
    window: float = 15.0
    interval: float = 1.0
    worker_every: int = 5
    settle: float = 15.0


def _done(stack: Stack) -> Counter[int]:
    return Counter(int(n) for n in stack.client.lrange(STORM_KEY, 0, -1))


def _start_two(stack: Stack, start: Callable[[str], Worker], label: str) -> Any:
    """Two ready workers, and a function that starts one more (not waiting for it)."""
    serial = 0

    def spawn() -> Worker:
        nonlocal serial
        serial += 1
        return start(f"{label}{serial}")

    alive = [spawn(), spawn()]
    for worker in alive:
        stack.wait_ready(worker)
    return alive, spawn


def _kill_loop(alive: list[Worker], spawn: Callable[[], Worker], storm: Storm) -> Counter[str]:
    rng = random.Random(SEED)
    kills: Counter[str] = Counter()
    began = time.monotonic()
    for k in range(int(storm.window / storm.interval)):
        time.sleep(max(0.0, began + (k + 1) * storm.interval - time.monotonic()))
        # Only workers whose pool is up: a replacement still starting holds no task.
        ready = [(w, pids) for w in alive if (pids := child_pids(w.pid))]
        if not ready:
            kills["none (no worker up)"] += 1
            continue
        victim, pids = ready[rng.randrange(len(ready))]
        if (k + 1) % storm.worker_every == 0:
            victim.kill_group()
            alive.remove(victim)
            alive.append(spawn())
            kills["worker"] += 1
            continue
        try:
            os.kill(pids[rng.randrange(len(pids))], signal.SIGKILL)
            kills["pool process"] += 1
        except ProcessLookupError:  # it died in between (replaced after a hard timeout...)
            kills["none (process gone)"] += 1
    return kills


def _drain(
    stack: Stack, tasks: int, settle: float, finished: Callable[[], bool]
) -> tuple[Counter[int], float]:
    """Wait for every task, or ``settle`` s without a new completion; the ledger and
    the time (monotonic) of the last completion seen."""
    last_count, last_change = -1, time.monotonic()
    while True:
        done = _done(stack)
        total = sum(done.values())
        now = time.monotonic()
        if total != last_count:
            last_count, last_change = total, now
        if len(done) >= tasks and finished():
            return done, last_change
        if now - last_change > settle:
            return done, last_change
        time.sleep(_POLL_S)


def _one(
    stack: Stack,
    system: str,
    start: Callable[[str], Worker],
    push: Callable[[], Any],
    finished: Callable[[], bool],
    storm: Storm,
) -> dict[str, Any]:
    stack.client.delete(STORM_KEY)
    alive, spawn = _start_two(stack, start, system[0].lower())
    t0 = time.monotonic()
    push()
    kills = _kill_loop(alive, spawn, storm)
    done, last = _drain(stack, storm.tasks, storm.settle, finished)
    stack.stop_workers()
    stack.workers.clear()
    runs = sum(done.values())
    measured = {
        "system": system,
        "tasks": storm.tasks,
        "delivered": len(done),
        "lost": storm.tasks - len(done),
        "duplicated": runs - len(done),
        "kills": dict(kills),
        "last_s": last - t0,
    }
    print(
        f"  {system:12s} delivered {len(done)}/{storm.tasks}, duplicated {runs - len(done)}, "
        f"kills {dict(kills)}, last completion at {last - t0:.1f} s",
        file=sys.stderr,
    )
    return measured


def _states(relier: Relier, ids: list[str]) -> Counter[str]:
    with relier.redis.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hget(relier.keys.task(task_id).job, "state")
        return Counter((s or b"MISSING").decode() for s in pipe.execute())


def run(storm: Storm) -> dict[str, Any]:
    """Both systems under the same storm; returns their tallies and the verdict."""
    started = time.monotonic()
    with Stack("kill-storm") as stack:
        relier = Relier(load_settings(redis_url=stack.url))
        sender = Celery("bench_sender", broker=stack.url)
        ids: list[str] = []
        try:
            with bound(relier, relier_app.storm):

                def push_relier() -> None:
                    calls = [(n, storm.task_seconds) for n in range(storm.tasks)]
                    ids.extend(h.id for h in relier_app.storm.push_many(calls))

                def relier_finished() -> bool:
                    states = _states(relier, ids)
                    return states["SUCCEEDED"] + states["DEAD"] == len(ids)

                r = _one(
                    stack,
                    "Relier",
                    lambda name: stack.relier_worker(name, 2, "prefork", wait=False),
                    push_relier,
                    relier_finished,
                    storm,
                )
                r["states"] = dict(_states(relier, ids))

            def push_plain() -> None:
                with sender.producer_or_acquire() as producer:
                    for n in range(storm.tasks):
                        sender.send_task(
                            "bench_plain.storm",
                            args=[n, storm.task_seconds],
                            queue=plain_app.QUEUE,
                            producer=producer,
                        )

            p = _one(
                stack,
                "plain Celery",
                lambda name: stack.plain_worker(name, 2, wait=False),
                push_plain,
                lambda: True,
                storm,
            )
        finally:
            sender.close()
            relier.close()
    return {
        "benchmark": "kill_storm",
        "relier": r,
        "plain": p,
        "settings": asdict(storm),
        "verdict": "PASS" if r["lost"] == 0 else "FAIL",
        "elapsed_s": time.monotonic() - started,
    }


def _rate(m: dict[str, Any]) -> str:
    return f"{100 * m['delivered'] / m['tasks']:.1f} %"


def checks(result: dict[str, Any]) -> list[list[str]]:
    """Summary rows: benchmark, check, measured, target, result."""
    out = []
    for key, target, verdict in (("relier", "0 lost", result["verdict"]), ("plain", "-", "info")):
        m = result[key]
        measured = (
            f"{m['delivered']}/{m['tasks']} delivered ({_rate(m)}), {m['lost']} lost, "
            f"{m['duplicated']} duplicated"
        )
        out.append(["kill_storm", f"delivery under SIGKILLs ({m['system']})", measured, target])
        out[-1].append(verdict)
    return out


def report(result: dict[str, Any], markdown: bool = False) -> str:
    headers = ["system", "tasks", "delivered", "lost", "duplicated", "delivery rate"]
    headers += ["kills", "last completion s"]
    body = []
    for key in ("relier", "plain"):
        m = result[key]
        kills = ", ".join(f"{v} {k}" for k, v in sorted(m["kills"].items()))
        body.append([
            m["system"], str(m["tasks"]), str(m["delivered"]), str(m["lost"]),
            str(m["duplicated"]), _rate(m), kills, f"{m['last_s']:.1f}",
        ])  # fmt: skip
    s = result["settings"]
    states = ", ".join(f"{k} {v}" for k, v in sorted(result["relier"]["states"].items()))
    return (
        f"{table(headers, body, markdown)}\n\n"
        f"{s['tasks']} tasks of {s['task_seconds']:g} s on two workers (prefork, concurrency "
        f"2); a SIGKILL every {s['interval']:g} s for {s['window']:g} s, every "
        f"{s['worker_every']}th to a whole worker (replaced at once), the others to a pool "
        f"process; then up to {s['settle']:g} s without a completion. Relier's journal at "
        f"the end: {states}. Target: Relier loses nothing: {result['verdict']}."
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--storm-*`` options (shared with ``python -m tests.bench``)."""
    d = Storm()
    add = parser.add_argument
    add("--storm-tasks", type=int, default=d.tasks, help="kill_storm: tasks per system")
    add("--storm-task-seconds", type=float, default=d.task_seconds, help="kill_storm: task length")
    add("--storm-window", type=float, default=d.window, help="kill_storm: kill window, s")
    add("--storm-interval", type=float, default=d.interval, help="kill_storm: s between kills")
    add("--storm-worker-every", type=int, default=d.worker_every,
        help="kill_storm: every Nth kill is a whole worker")  # fmt: skip
    add("--storm-settle", type=float, default=d.settle,
        help="kill_storm: give up after this long without a completion, s")  # fmt: skip


def settings(args: argparse.Namespace) -> Storm:
    """The :class:`Storm` the ``--storm-*`` options describe."""
    return Storm(
        args.storm_tasks,
        args.storm_task_seconds,
        args.storm_window,
        args.storm_interval,
        args.storm_worker_every,
        args.storm_settle,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.kill_storm", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    result = run(settings(args))
    print(report(result, args.markdown))
    return 0 if result["verdict"] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
