"""Plain Celery, for comparison: the same tasks with ``acks_late`` and ``reject_on_worker_lost``.

Run with ``python -m celery -A tests.bench.plain_app worker`` and ``BENCH_REDIS_URL``
pointing at the benchmark's Redis. No Relier here: this is what a careful Celery user
gets without it. Each start of :func:`hold` appends ``{"t", "pid", "ppid"}`` to the
Redis list ``bench:plain:started:<token>``: the benchmark reads recovery times there.
"""

from __future__ import annotations

import json
import os
import time

import redis
from celery import Celery

QUEUE = "bench-plain"
STARTED_KEY = "bench:plain:started:"
RELEASE_KEY = "bench:release:"

app = Celery("bench_plain", broker=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:1/0"))
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(app.conf.broker_url)
    return _client


@app.task(name="bench_plain.hold", acks_late=True, reject_on_worker_lost=True)
def hold(token: str, max_seconds: float) -> str:
    """Records its start, then runs until ``bench:release:<token>`` exists."""
    client = _redis()
    record = {"t": time.time(), "pid": os.getpid(), "ppid": os.getppid()}
    client.rpush(STARTED_KEY + token, json.dumps(record))
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline and not client.exists(RELEASE_KEY + token):
        time.sleep(0.05)
    return token
