"""Plain Celery, for comparison: the same tasks with ``acks_late`` and ``reject_on_worker_lost``.

Run with ``python -m celery -A tests.bench.plain_app worker`` and ``BENCH_REDIS_URL``
pointing at the benchmark's Redis. No Relier here: this is what a careful Celery user
gets without it, configured as Relier configures its own Celery app (JSON only,
prefetch multiplier 1, late acknowledgement, no result backend) plus
``task_reject_on_worker_lost`` (Relier re-queues a lost task through its journal
instead). Each start of :func:`hold` appends ``{"t", "pid", "ppid"}`` to the Redis
list ``bench:plain:started:<token>``: the benchmark reads recovery times there.

``BENCH_QUIET_TASKS=1`` silences Celery's two INFO lines per task ("received",
"succeeded"), as :mod:`tests.bench.relier_app` does for Relier's workers: the
throughput benchmarks measure the tasks, not the log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

import redis
from celery import Celery

QUEUE = "bench-plain"
STARTED_KEY = "bench:plain:started:"
RELEASE_KEY = "bench:release:"
STORM_KEY = "bench:storm:done"

CONF: dict[str, Any] = {
    "task_default_queue": QUEUE,
    "task_serializer": "json",
    "accept_content": ["json"],
    "worker_prefetch_multiplier": 1,
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "task_ignore_result": True,
    "broker_connection_retry_on_startup": True,
}
app = Celery("bench_plain", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"))
app.conf.update(CONF)

if os.environ.get("BENCH_QUIET_TASKS") == "1":
    for _name in ("celery.worker.strategy", "celery.app.trace"):
        logging.getLogger(_name).setLevel(logging.WARNING)

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(app.conf.broker_url)
    return _client


def producer(url: str) -> tuple[Celery, Any]:
    """A new app on ``url`` with this module's settings, and its :func:`noop` task.

    For the benchmark process, which calls ``noop.delay(...)`` the way a plain Celery
    program does; a new app for each benchmark's Redis (kombu keeps the connections
    of an app it has used, even after its broker URL changes). Close the app after.
    """
    sender = Celery("bench_plain", broker=url)
    sender.conf.update(CONF)
    return sender, sender.task(name="bench_plain.noop", shared=False)(noop.run)


@app.task(name="bench_plain.hold", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]  # Celery ships no type hints
def hold(token: str, max_seconds: float) -> str:
    """Records its start, then runs until ``bench:release:<token>`` exists."""
    client = _redis()
    record = {"t": time.time(), "pid": os.getpid(), "ppid": os.getppid()}
    client.rpush(STARTED_KEY + token, json.dumps(record))
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and not client.exists(RELEASE_KEY + token):
        time.sleep(0.05)
    return token


@app.task(name="bench_plain.noop")  # type: ignore[untyped-decorator]  # Celery ships no type hints
def noop(n: int, note: str) -> int:
    """Does nothing: what the task system itself costs."""
    return n


@app.task(name="bench_plain.async_sleep")  # type: ignore[untyped-decorator]  # Celery ships no type hints
def async_sleep(seconds: float) -> float:
    """``await asyncio.sleep(seconds)`` the way a plain Celery task runs a coroutine:
    ``asyncio.run``, a new event loop per call."""
    asyncio.run(asyncio.sleep(seconds))
    return seconds


@app.task(name="bench_plain.storm")  # type: ignore[untyped-decorator]  # Celery ships no type hints
def storm(n: int, seconds: float) -> int:
    """Sleeps ``seconds``, then appends ``n`` to ``bench:storm:done`` (one per completed
    run: the kill-storm benchmark counts deliveries and duplicates there)."""
    time.sleep(seconds)
    _redis().rpush(STORM_KEY, n)
    return n
