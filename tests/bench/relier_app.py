"""Relier tasks the benchmark workers run (``rl worker -A tests.bench.relier_app``).

``BENCH_QUIET_TASKS=1`` silences Celery's two INFO lines per task ("received",
"succeeded"), as :mod:`tests.bench.plain_app` does for plain Celery's workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import relier
from relier import rl_task

RELEASE_KEY = "bench:release:"
STORM_KEY = "bench:storm:done"

if os.environ.get("BENCH_QUIET_TASKS") == "1":
    for _name in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(_name).setLevel(logging.WARNING)


@rl_task(name="bench.hold", max_retries=0)
def hold(token: str, max_seconds: float) -> str:
    """Runs until ``bench:release:<token>`` exists (at most ``max_seconds``).

    A long task the benchmark kills; once it has measured the recovery it
    releases the resurrected run, so the worker is free for the next round.
    """
    client = relier.current().redis
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and not client.exists(RELEASE_KEY + token):
        time.sleep(0.05)
    return token


@rl_task(name="bench.sleep", max_retries=0)
def sleep(seconds: float) -> float:
    """Sleeps without touching Redis, so in-flight tasks add no Redis load themselves."""
    time.sleep(seconds)
    return seconds


@rl_task(name="bench.async_sleep", max_retries=0)
async def async_sleep(seconds: float) -> float:
    """``await asyncio.sleep(seconds)`` on the worker process's own event loop."""
    await asyncio.sleep(seconds)
    return seconds


@rl_task(name="bench.storm", max_retries=0)
def storm(n: int, seconds: float) -> int:
    """Sleeps ``seconds``, then appends ``n`` to ``bench:storm:done`` (one per completed
    run: the kill-storm benchmark counts deliveries and duplicates there)."""
    time.sleep(seconds)
    relier.current().redis.rpush(STORM_KEY, n)
    return n


# The push benchmarks (admission, idempotency, push_latency) only push these; no worker
# runs them, except ``noop`` in the throughput, lifecycle_commands and memory benchmarks.
RATE_REJECT = "1/h"
RATE_ADMIT = "100000/s"


@rl_task(name="bench.noop", max_retries=0)
def noop(n: int, note: str) -> int:
    """A plain task: no idempotency, no admission."""
    return n


@rl_task(name="bench.noop_idempotent", idempotent=True, max_retries=0)
def noop_idempotent(n: int, note: str) -> int:
    """:func:`noop`, idempotent: its key is the canonical JSON of its arguments."""
    return n


@rl_task(name="bench.rate_reject", rate_limit=RATE_REJECT, max_retries=0)
def rate_reject(n: int, note: str) -> int:
    """One call an hour: after the first push, the GCRA refuses every push."""
    return n


@rl_task(name="bench.rate_admit", rate_limit=RATE_ADMIT, rate_burst=100, max_retries=0)
def rate_admit(n: int, note: str) -> int:
    """A limit one process pushing one call at a time never reaches: every push is admitted."""
    return n
