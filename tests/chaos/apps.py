"""Tasks the chaos tests' worker subprocesses run.

Every task takes the context and counts each execution of its body in Redis
(``chaos:exec:<task id>``, see :func:`bump`), whichever process ran it, so a
test can compare body executions with what the journal says. Results name the
process and the attempt's fence, so a test can tell which attempt committed.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import redis.exceptions

import relier
from relier import TaskContext, rl_task
from relier.worker.identity import current_worker_id

EXEC_KEY = "chaos:exec:"


def bump(ctx: TaskContext) -> int:
    """Count one execution of this task's body; waits out a Redis restart.

    Each execution adds its own random token to a set: retrying the write
    after a lost reply (a Redis restart) cannot count it twice, as a retried
    INCR would.
    """
    client = relier.current().redis
    token = uuid.uuid4().hex
    deadline = time.monotonic() + 30
    while True:
        try:
            client.sadd(EXEC_KEY + ctx.task_id, token)
            return int(client.scard(EXEC_KEY + ctx.task_id))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # The Redis-restart scenario: count the execution once Redis is back.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _outcome(ctx: TaskContext, **extra: object) -> dict[str, object]:
    return {"pid": os.getpid(), "fence": ctx.fence, "attempt": ctx.attempt, **extra}


@rl_task(name="chaos.work")
def work(ctx: TaskContext, seconds: float) -> dict[str, object]:
    """Sleeps ``seconds``."""
    bump(ctx)
    time.sleep(seconds)
    return _outcome(ctx)


@rl_task(name="chaos.hold")
def hold(ctx: TaskContext, first: float, then: float) -> dict[str, object]:
    """Sleeps ``first`` seconds on the first attempt, ``then`` on any later one.

    A long first attempt is still running when the test kills or stops its
    process; the attempt that takes over ends quickly.
    """
    bump(ctx)
    time.sleep(first if ctx.attempt == 1 else then)
    return _outcome(ctx)


@rl_task(name="chaos.linger")
def linger(ctx: TaskContext, node: str, seconds: float) -> dict[str, object]:
    """Sleeps ``seconds`` on the worker named ``node`` (``w1`` for ``w1@host``), else 0.05 s.

    Tasks prefetched by a worker that dies never started there: their first
    attempt runs on the survivor, which must end them quickly.
    """
    bump(ctx)
    here = current_worker_id("").split("@", 1)[0]
    time.sleep(seconds if here == node else 0.05)
    return _outcome(ctx, node=here)


@rl_task(name="chaos.crash")
def crash(ctx: TaskContext) -> None:
    """Kills its own pool process every time (a poison pill: a segfault, an OOM kill)."""
    bump(ctx)
    os._exit(1)


@rl_task(name="chaos.gil")
def gil(ctx: TaskContext, seconds: float) -> dict[str, object]:
    """Holds the GIL in one C call (``sum`` over a ``range``) for about ``seconds``.

    A thread ticking every 10 ms proves it: it cannot tick while the call runs.
    """
    bump(ctx)
    n = 1_000_000
    while True:  # calibrate here: this process's speed is what counts
        began = time.perf_counter()
        sum(range(n))
        took = time.perf_counter() - began
        if took > 0.1:
            break
        n *= 4
    # The fastest of a few runs: a run slowed by a busy machine (CPU steal)
    # would make the real call too short for the 3 leases the test needs.
    for _ in range(2):
        began = time.perf_counter()
        sum(range(n))
        took = min(took, time.perf_counter() - began)
    n = int(n * seconds / took)
    ticks = [0]
    running = threading.Event()
    running.set()

    def tick() -> None:
        while running.is_set():
            ticks[0] += 1
            time.sleep(0.01)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    time.sleep(0.1)
    before = ticks[0]
    started = time.monotonic()
    total = sum(range(n))
    took = time.monotonic() - started
    during = ticks[0] - before
    running.clear()
    ticker.join()
    return _outcome(ctx, seconds=took, total=total, ticks_before=before, ticks_during=during)
